import { join } from "node:path";
import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { UsageError } from "../errors.ts";
import { freeRange, mapText, parseSubIds, remapMapping, toHost } from "./userns.ts";

Deno.test("subordinate id files: parsing and the first free range", () => {
  const e = parseSubIds("alice:100000:65536\n# c\nbad line\nbob:165536:65536\n");
  assertEquals(e.map((x) => x.name), ["alice", "bob"]);
  assertEquals(freeRange(e), 231072);
  assertEquals(freeRange([]), 100000);
  assertEquals(freeRange([{ name: "x", start: 300000, count: 10 }]), 100000);
});

Deno.test("remapMapping default appends a tsbox range once; named users must exist", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const files = { subuid: join(dir, "subuid"), subgid: join(dir, "subgid") };
    await Deno.writeTextFile(files.subuid, "alice:100000:65536");
    await Deno.writeTextFile(files.subgid, "");
    const m = remapMapping("default", files);
    assertEquals(m.uid, [{ inside: 0, outside: 165536, count: 65536 }]);
    assertEquals(m.gid, [{ inside: 0, outside: 100000, count: 65536 }]);
    assertEquals(await Deno.readTextFile(files.subuid), "alice:100000:65536\ntsbox:165536:65536\n");
    assertEquals(remapMapping("default", files), m, "second use finds the same range");
    assertEquals((await Deno.readTextFile(files.subgid)).split("\n").length, 2);
    assertThrows(() => remapMapping("alice", files), UsageError, "subgid");
    assertThrows(() => remapMapping("nobody-here", files), UsageError);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("toHost and mapText", () => {
  const r = [{ inside: 0, outside: 100000, count: 65536 }];
  assertEquals(toHost(r, 0), 100000);
  assertEquals(toHost(r, 1000), 101000);
  assertEquals(toHost(r, 65536), undefined);
  assertEquals(mapText(r), "0 100000 65536\n");
});
