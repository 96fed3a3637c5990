import * as node from "node:path";
import { join, normalize } from "./path.ts";
import { assertEquals } from "../tests/assert.ts";

const SAMPLES = [
  "",
  ".",
  "./",
  "..",
  "../",
  "/",
  "//",
  "/..",
  "/../a",
  "a",
  "a/",
  "a//b",
  "a/./b",
  "a/../b",
  "a/..",
  "a/../",
  "a/../..",
  "../a/../../b/",
  "/a/b/../../..",
  "/var/lib/tsbox/",
  "x/./y/.//z/..",
  "..a/.b/...",
];

Deno.test("normalize matches node:path on edge cases", () => {
  for (const p of SAMPLES) assertEquals(normalize(p), node.posix.normalize(p), p);
});

Deno.test("join matches node:path on edge cases", () => {
  for (const a of SAMPLES) {
    for (const b of SAMPLES) {
      assertEquals(join(a, b), node.posix.join(a, b), `${a} + ${b}`);
    }
  }
  assertEquals(join(), node.posix.join());
  assertEquals(join("..", "layers", "abc"), "../layers/abc");
  assertEquals(join("/root", "containers", "id", "log.json"), "/root/containers/id/log.json");
});
