import { assertEquals } from "../../tests/assert.ts";
import { eventLine } from "../cli/events_actions.ts";
import { eventMatches, parseEventFilters } from "./filter.ts";
import { makeEvent } from "./log.ts";

const die = makeEvent(
  "container",
  "die",
  "abc123",
  { exitCode: "3", image: "busybox", name: "web", tier: "front" },
  Date.UTC(2026, 0, 2, 3, 4, 5, 678),
);
const health = makeEvent("container", "health_status: healthy", "abc123", { name: "web" });
const tag = makeEvent("image", "tag", "sha256:1", { name: "busybox:v1" });

Deno.test("event filters: keys are ANDed, values ORed, as docker's", () => {
  const m = (e: typeof die, ...f: string[]) => eventMatches(e, parseEventFilters(f));
  assertEquals(m(die), true);
  assertEquals(m(die, "container=web"), true);
  assertEquals(m(die, "container=abc"), true);
  assertEquals(m(die, "container=other"), false);
  assertEquals(m(die, "event=start", "event=die"), true);
  assertEquals(m(die, "event=die", "type=image"), false);
  assertEquals(m(health, "event=health_status"), true);
  assertEquals(m(die, "label=tier=front"), true);
  assertEquals(m(die, "label=tier=back"), false);
  assertEquals(m(die, "image=busybox"), true);
  assertEquals(m(tag, "image=busybox:v1"), true);
  assertEquals(m(tag, "type=container"), false);
});

Deno.test("docker's default event line", () => {
  assertEquals(
    eventLine(die).replace(/\.\d{9}Z/, ".NZ"),
    "2026-01-02T03:04:05.NZ container die abc123 (exitCode=3, image=busybox, name=web, tier=front)",
  );
  assertEquals(eventLine(die).slice(0, 23), "2026-01-02T03:04:05.678");
});
