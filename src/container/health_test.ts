import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { UsageError } from "../errors.ts";
import {
  applyProbeResult,
  formatGoDuration,
  healthConfigFrom,
  healthFilterValue,
  type HealthState,
  healthSuffix,
  healthTiming,
  nextProbeDelay,
  parseGoDuration,
  probeCommand,
  probeOutput,
  startingHealth,
  timeoutOutput,
} from "./health.ts";

Deno.test("Go durations: parsed as time.ParseDuration, with its errors", () => {
  assertEquals(parseGoDuration("300ms"), 300e6);
  assertEquals(parseGoDuration("1m30s"), 90e9);
  assertEquals(parseGoDuration("1.5h"), 5400e9);
  assertEquals(parseGoDuration(".5s"), 500e6);
  assertEquals(parseGoDuration("0"), 0);
  assertEquals(parseGoDuration("-2s"), -2e9);
  assertEquals(parseGoDuration("10us"), 10e3);
  for (
    const [text, message] of [
      ["5", 'time: missing unit in duration "5"'],
      ["5d", 'time: unknown unit "d" in duration "5d"'],
      ["", 'time: invalid duration ""'],
      ["s", 'time: invalid duration "s"'],
      ["1s x", 'time: unknown unit "s x" in duration "1s x"'],
    ]
  ) {
    assertThrows(() => parseGoDuration(text), Error, message);
  }
});

Deno.test("Go durations: formatted as Duration.String", () => {
  assertEquals(formatGoDuration(300e6), "300ms");
  assertEquals(formatGoDuration(30e9), "30s");
  assertEquals(formatGoDuration(1.5e9), "1.5s");
  assertEquals(formatGoDuration(90e9), "1m30s");
  assertEquals(formatGoDuration(3600e9), "1h0m0s");
  assertEquals(formatGoDuration(0), "0s");
  assertEquals(formatGoDuration(1500), "1.5µs");
});

const IMAGE = {
  Test: ["CMD", "/bin/check"],
  Interval: 10e9,
  Timeout: 2e9,
  StartPeriod: 5e9,
  Retries: 5,
};

Deno.test("healthcheck: the image's when no flag is given; none without either", () => {
  assertEquals(healthConfigFrom(IMAGE, { healthcheck: true }), IMAGE);
  assertEquals(healthConfigFrom(undefined, { healthcheck: true }), undefined);
  assertEquals(healthConfigFrom(undefined, {}), undefined);
});

Deno.test("healthcheck: flags override the image field by field (docker's merge)", () => {
  assertEquals(
    healthConfigFrom(IMAGE, { healthCmd: "test -e /ready", healthInterval: "300ms" }),
    {
      Test: ["CMD-SHELL", "test -e /ready"],
      Interval: 300e6,
      Timeout: 2e9,
      StartPeriod: 5e9,
      StartInterval: undefined,
      Retries: 5,
    },
  );
  // A timing flag alone keeps the image's test.
  assertEquals(healthConfigFrom(IMAGE, { healthRetries: "1" })?.Test, ["CMD", "/bin/check"]);
  assertEquals(healthConfigFrom(IMAGE, { healthRetries: "1" })?.Retries, 1);
  // Without an image healthcheck, the flags are the whole of it.
  assertEquals(healthConfigFrom(undefined, { healthCmd: "true", healthTimeout: "1s" }), {
    Test: ["CMD-SHELL", "true"],
    Interval: 0,
    Timeout: 1e9,
    StartPeriod: 0,
    StartInterval: 0,
    Retries: 0,
  });
});

Deno.test("healthcheck: --no-healthcheck is NONE, and refused with any --health-* flag", () => {
  assertEquals(healthConfigFrom(IMAGE, { healthcheck: false })?.Test, ["NONE"]);
  assertEquals(probeCommand(healthConfigFrom(IMAGE, { healthcheck: false })), undefined);
  assertThrows(
    () => healthConfigFrom(IMAGE, { healthcheck: false, healthCmd: "true" }),
    UsageError,
    "--no-healthcheck conflicts with --health-* options",
  );
  assertThrows(
    () => healthConfigFrom(undefined, { healthcheck: false, healthRetries: "2" }),
    UsageError,
    "--no-healthcheck conflicts with --health-* options",
  );
});

Deno.test("healthcheck: bad values refused with docker's messages", () => {
  const refused = (flags: Parameters<typeof healthConfigFrom>[1], message: string) =>
    assertEquals(
      assertThrows(() => healthConfigFrom(undefined, flags), UsageError).message,
      message,
    );
  refused(
    { healthInterval: "5" },
    'invalid argument "5" for "--health-interval" flag: time: missing unit in duration "5"',
  );
  refused({ healthTimeout: "-1s" }, "--health-timeout cannot be negative");
  refused({ healthRetries: "-1" }, "--health-retries cannot be negative");
  refused(
    { healthRetries: "x" },
    'invalid argument "x" for "--health-retries" flag: strconv.ParseInt: parsing "x": invalid syntax',
  );
  refused({ healthInterval: "10us" }, "Interval in Healthcheck cannot be less than 1ms");
  refused(
    { healthCmd: "true", healthStartPeriod: "1ns" },
    "StartPeriod in Healthcheck cannot be less than 1ms",
  );
});

Deno.test("probe command: CMD as is, CMD-SHELL through the shell, nothing for NONE", () => {
  assertEquals(probeCommand({ Test: ["CMD", "cat", "/x"] }), ["cat", "/x"]);
  assertEquals(probeCommand({ Test: ["CMD-SHELL", "exit 1"] }), ["/bin/sh", "-c", "exit 1"]);
  assertEquals(probeCommand({ Test: ["CMD-SHELL", "exit 1"] }, ["/bin/ash", "-ec"]), [
    "/bin/ash",
    "-ec",
    "exit 1",
  ]);
  assertEquals(probeCommand({ Test: ["NONE"] }), undefined);
  assertEquals(probeCommand({ Test: [] }), undefined);
  assertEquals(probeCommand({ Test: ["BOGUS", "x"] }), undefined);
  assertEquals(probeCommand(undefined), undefined);
});

Deno.test("timing: docker's defaults for zero fields", () => {
  assertEquals(healthTiming({ Test: ["CMD", "x"] }), {
    intervalMs: 30_000,
    timeoutMs: 30_000,
    startPeriodMs: 0,
    startIntervalMs: 5_000,
    retries: 3,
  });
  assertEquals(healthTiming({ Interval: 300e6, Retries: 2 }).intervalMs, 300);
  assertEquals(healthTiming({ Interval: 300e6, Retries: 2 }).retries, 2);
});

Deno.test("schedule: every interval; start interval while starting in the start period", () => {
  const t = healthTiming({ Interval: 10e9, StartPeriod: 60e9, StartInterval: 1e9 });
  assertEquals(nextProbeDelay(t, "starting", 0), 1000);
  assertEquals(nextProbeDelay(t, "healthy", 0), 10_000);
  // Near the end of the start period the next probe comes when it ends.
  assertEquals(nextProbeDelay(t, "starting", 55_000), 5000);
  assertEquals(nextProbeDelay(t, "starting", 60_000), 10_000);
  const plain = healthTiming({ Interval: 300e6 });
  assertEquals(nextProbeDelay(plain, "starting", 0), 300);
  assertEquals(nextProbeDelay(plain, "unhealthy", 99_000), 300);
});

function probe(start: number, exitCode: number, output = "") {
  return { start, end: start + 5, exitCode, output };
}

Deno.test("state: a success makes it healthy and clears the streak", () => {
  const t = healthTiming({ Retries: 3 });
  let h = startingHealth(undefined);
  h = applyProbeResult(h, probe(1000, 1, "no"), t, 0);
  assertEquals([h.Status, h.FailingStreak], ["starting", 1]);
  h = applyProbeResult(h, probe(2000, 0, "ok"), t, 0);
  assertEquals([h.Status, h.FailingStreak], ["healthy", 0]);
  assertEquals(h.Log.map((e) => [e.ExitCode, e.Output]), [[1, "no"], [0, "ok"]]);
  assertEquals(h.Log[1].Start, new Date(2000).toISOString());
  assertEquals(h.Log[1].End, new Date(2005).toISOString());
});

Deno.test("state: `retries` failures in a row make it unhealthy, from starting or healthy", () => {
  const t = healthTiming({ Retries: 2 });
  let h = startingHealth(undefined);
  h = applyProbeResult(h, probe(10, 1), t, 0);
  assertEquals([h.Status, h.FailingStreak], ["starting", 1]);
  h = applyProbeResult(h, probe(20, 2), t, 0);
  assertEquals([h.Status, h.FailingStreak], ["unhealthy", 2]);
  h = applyProbeResult(h, probe(30, 0), t, 0);
  assertEquals(h.Status, "healthy");
  h = applyProbeResult(h, probe(40, -1), t, 0);
  assertEquals([h.Status, h.FailingStreak], ["healthy", 1]);
  h = applyProbeResult(h, probe(50, 1), t, 0);
  assertEquals([h.Status, h.FailingStreak], ["unhealthy", 2]);
});

Deno.test("state: failures in the start period do not count while starting", () => {
  const t = healthTiming({ Retries: 1, StartPeriod: 10e9 });
  const started = 1_000_000;
  let h = startingHealth(undefined);
  for (const at of [1000, 5000, 9999]) {
    h = applyProbeResult(h, probe(started + at, 1), t, started);
    assertEquals([h.Status, h.FailingStreak], ["starting", 0]);
  }
  assertEquals(h.Log.length, 3);
  h = applyProbeResult(h, probe(started + 10_000, 1), t, started);
  assertEquals([h.Status, h.FailingStreak], ["unhealthy", 1]);
  // Once healthy, a failure in the start period counts.
  let g = applyProbeResult(startingHealth(undefined), probe(started + 1, 0), t, started);
  g = applyProbeResult(g, probe(started + 2, 1), t, started);
  assertEquals([g.Status, g.FailingStreak], ["unhealthy", 1]);
});

Deno.test("state: the log keeps the last five; a restart starts over but keeps the log", () => {
  const t = healthTiming({});
  let h: HealthState = startingHealth(undefined);
  for (let i = 0; i < 7; i++) h = applyProbeResult(h, probe(i, i % 2, `run ${i}`), t, 0);
  assertEquals(h.Log.map((e) => e.Output), ["run 2", "run 3", "run 4", "run 5", "run 6"]);
  const again = startingHealth(h);
  assertEquals([again.Status, again.FailingStreak, again.Log], ["starting", 0, h.Log]);
});

Deno.test("output: cut at 4096 bytes with '...'; docker's timeout message", () => {
  const big = new TextEncoder().encode("x".repeat(5000));
  assertEquals(probeOutput(big, false), "x".repeat(4096) + "...");
  assertEquals(probeOutput(new TextEncoder().encode("ok\n"), false), "ok\n");
  assertEquals(probeOutput(new TextEncoder().encode("ok"), true), "ok...");
  assertEquals(timeoutOutput(300, ""), "Health check exceeded timeout (300ms)");
  assertEquals(timeoutOutput(30_000, "partial"), "Health check exceeded timeout (30s): partial");
});

Deno.test("ps: status suffix and --filter health=", () => {
  const h = (Status: HealthState["Status"]): HealthState => ({ Status, FailingStreak: 0, Log: [] });
  assertEquals(healthSuffix(undefined), "");
  assertEquals(healthSuffix(h("starting")), " (health: starting)");
  assertEquals(healthSuffix(h("healthy")), " (healthy)");
  assertEquals(healthSuffix(h("unhealthy")), " (unhealthy)");
  assertEquals(healthFilterValue(undefined), "none");
  assertEquals(healthFilterValue(h("healthy")), "healthy");
  assertEquals(healthFilterValue(h("starting")), "starting");
  assertEquals(healthFilterValue(h("unhealthy")), "unhealthy");
});
