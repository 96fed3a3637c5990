import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { UsageError } from "../errors.ts";
import { checkInsideRoot, OutsideRootError, parseUlimit } from "./security.ts";

Deno.test("--ulimit parsing", () => {
  assertEquals(parseUlimit("nofile=10:20").limit, { soft: 10n, hard: 20n });
  assertEquals(parseUlimit("nproc=5").limit, { soft: 5n, hard: 5n });
  assertEquals(parseUlimit("core=-1").limit.hard, 0xffffffffffffffffn);
  assertThrows(() => parseUlimit("nofile=20:10"), UsageError);
  assertThrows(() => parseUlimit("bogus=1"), UsageError);
});

Deno.test("checkInsideRoot refuses /proc, /sys and below /dev, after resolving", () => {
  // A resolver where the image's /work is a symlink to /proc/self.
  const resolve = (p: string) => `/root${p.replace(/^\/work/, "/proc/self")}`;
  checkInsideRoot(resolve, "/srv/app", "working directory");
  checkInsideRoot(resolve, "/dev", "working directory");
  for (const bad of ["/proc/self/fd/5", "/proc", "/sys/kernel", "/dev/fd/3", "/work/cwd"]) {
    assertThrows(() => checkInsideRoot(resolve, bad, "working directory"), OutsideRootError);
  }
});
