import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { UsageError } from "../errors.ts";
import { type CacheRecord, parseCacheFlag, recordsFor } from "./cache_io.ts";

Deno.test("parseCacheFlag: local and registry forms of buildx", () => {
  assertEquals(parseCacheFlag("type=local,src=/c", "from"), {
    type: "local",
    dir: "/c",
    mode: "min",
  });
  assertEquals(parseCacheFlag("type=local,dest=/c,mode=max", "to"), {
    type: "local",
    dir: "/c",
    mode: "max",
  });
  assertEquals(parseCacheFlag("type=registry,ref=r/x:c", "to"), {
    type: "registry",
    ref: "r/x:c",
    mode: "min",
  });
  assertEquals(parseCacheFlag("r/x:c", "from"), { type: "registry", ref: "r/x:c", mode: "min" });
  for (
    const [bad, dir] of [
      ["type=local,dest=/c", "from"],
      ["type=local,src=/c", "to"],
      ["type=gha", "to"],
      ["type=registry", "from"],
      ["type=local,dest=/c,mode=all", "to"],
      ["type=local,dest=/c,x=1", "to"],
    ] as const
  ) assertThrows(() => parseCacheFlag(bad, dir), UsageError);
});

Deno.test("recordsFor: max keeps every stage's steps, min the target's, one per key", () => {
  const state = { configJson: "{}", layers: [] };
  const recs: CacheRecord[] = [
    { key: "a", state, stage: 0 },
    { key: "b", state, stage: 1 },
    { key: "b", state, stage: 1 },
  ];
  assertEquals(recordsFor(recs, "max", 1).map((r) => r.key), ["a", "b"]);
  assertEquals(recordsFor(recs, "min", 1).map((r) => r.key), ["b"]);
});
