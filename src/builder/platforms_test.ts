import { assertEquals, assertRejects, assertThrows } from "../../tests/assert.ts";
import { UsageError } from "../errors.ts";
import { inPool, parsePlatforms } from "./platforms.ts";

Deno.test("--platform a,b: each normalised, in order; a repeat or a bad one refused by name", () => {
  assertEquals(parsePlatforms("linux/amd64,linux/arm64/v8"), [
    { os: "linux", architecture: "amd64" },
    { os: "linux", architecture: "arm64" },
  ]);
  assertEquals(parsePlatforms("linux/arm/v7, linux/amd64").length, 2);
  assertThrows(
    () => parsePlatforms("linux/arm64,linux/aarch64"),
    UsageError,
    "linux/arm64 is given twice",
  );
  assertThrows(
    () => parsePlatforms("linux/amd64,linux/a/b/c"),
    UsageError,
    "--platform linux/amd64,linux/a/b/c",
  );
});

/** A work function whose items each wait for the test to open their gate. */
function gated() {
  const gates = new Map<number, () => void>();
  const state = { running: 0, most: 0 };
  const work = async (n: number) => {
    state.running++;
    state.most = Math.max(state.most, state.running);
    await new Promise<void>((r) => gates.set(n, r));
    state.running--;
    if (n === 2) throw new Error("two failed");
    return n * 10;
  };
  const open = async (n: number) => {
    while (!gates.has(n)) await new Promise((r) => setTimeout(r, 1));
    gates.get(n)!();
  };
  return { gates, state, work, open };
}

Deno.test("inPool: results in the items' order, at most `limit` at once", async () => {
  const g = gated();
  const all = inPool([1, 3, 4], 2, g.work);
  for (const n of [3, 1, 4]) await g.open(n);
  assertEquals(await all, [10, 30, 40]);
  assertEquals(g.state.most, 2);
});

Deno.test("inPool: a failure starts nothing more and is thrown once the running ones settle", async () => {
  const g = gated();
  let settled = false;
  const failing = inPool([1, 2, 3], 2, g.work).finally(() => settled = true);
  await g.open(2);
  await new Promise((r) => setTimeout(r, 20));
  assertEquals(settled, false, "item 1 still runs");
  assertEquals(g.gates.has(3), false, "item 3 never started");
  await g.open(1);
  await assertRejects(() => failing, Error, "two failed");
  assertEquals(g.state.running, 0);
});
