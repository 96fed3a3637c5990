import { assertEquals } from "../../tests/assert.ts";
import { Store } from "../store/mod.ts";
import { recordEvent } from "../store/events.ts";
import { eventMatches, followEvents, parseEventTime, readEvents } from "./mod.ts";

Deno.test("the events table keeps the newest 10,000 rows, in order", async () => {
  const root = await Deno.makeTempDir({ prefix: "tsbox-ev-" });
  const store = await Store.open(root);
  try {
    store.db.transaction(() => {
      for (let i = 0; i < 10_250; i++) {
        recordEvent(store.db, { type: "volume", action: "create", actorId: `v${i}` });
      }
    });
    const all = readEvents(store);
    assertEquals(all.length <= 10_100 && all.length >= 10_000, true, String(all.length));
    assertEquals(all.at(-1)!.Actor.ID, "v10249");
    assertEquals(all.every((e, i) => i === 0 || e.timeNano >= all[i - 1].timeNano), true);
    // A follower without since/until gets only what comes after it started.
    const ac = new AbortController();
    const it = followEvents(store, {}, { signal: ac.signal, pollMs: 10 });
    const next = it.next();
    recordEvent(store.db, { type: "volume", action: "destroy", actorId: "late" });
    assertEquals((await next).value?.Actor.ID, "late");
    ac.abort();
    assertEquals((await it.next()).done, true);
  } finally {
    store.close();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("parseEventTime: unix seconds, RFC 3339, durations (microseconds)", () => {
  assertEquals(parseEventTime("1700000000.123456789"), 1700000000123456);
  assertEquals(parseEventTime("1700000000"), 1700000000000000);
  assertEquals(parseEventTime("2023-11-14T22:13:20.5Z"), 1700000000500000);
  assertEquals(parseEventTime("10m", 1e12), 1e12 - 600e6);
  assertEquals(parseEventTime("1h30s", 1e12), 1e12 - 3630e6);
});

Deno.test("eventMatches: docker's keys", () => {
  const e = {
    Type: "container",
    Action: "health_status: healthy",
    Actor: { ID: "abcdef", Attributes: { name: "web", image: "busybox:latest", team: "a" } },
    scope: "local" as const,
    time: 0,
    timeNano: 0,
  };
  const m = (pairs: [string, string[]][]) => eventMatches(new Map(pairs), e);
  assertEquals(m([["event", ["health_status"]]]), true);
  assertEquals(m([["event", ["die"]]]), false);
  assertEquals(m([["container", ["abc"]]]), true);
  assertEquals(m([["container", ["web", "x"]]]), true);
  assertEquals(m([["container", ["we"]], ["type", ["image"]]]), false);
  assertEquals(m([["image", ["busybox"]]]), true);
  assertEquals(m([["image", ["busybox:latest"]]]), true);
  assertEquals(m([["image", ["busybox:v2"]]]), false);
  assertEquals(m([["label", ["team=a"]]]), true);
  assertEquals(m([["label", ["team=b"]]]), false);
});
