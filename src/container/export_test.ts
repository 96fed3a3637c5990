import { makedev } from "../../ffi/fs.ts";
import { assertEquals } from "../../tests/assert.ts";
import { splitDev } from "./export.ts";

Deno.test("splitDev inverts glibc's makedev, small and large numbers alike", () => {
  const cases: [number, number][] = [[0, 0], [1, 3], [10, 300], [136, 255], [259, 1 << 19], [
    4096,
    70000,
  ]];
  for (const [major, minor] of cases) {
    assertEquals(splitDev(Number(makedev(major, minor))), { major, minor }, `${major}:${minor}`);
  }
});

Deno.test("splitDev reads a real device node's number as the kernel reports it", () => {
  // /dev/null is 1:3 on every Linux system.
  assertEquals(splitDev(Deno.statSync("/dev/null").rdev ?? -1), { major: 1, minor: 3 });
});
