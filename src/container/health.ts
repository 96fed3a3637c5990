/**
 * Health checks as docker has them (moby daemon/health.go), as pure functions: the container's
 * healthcheck from the image's HEALTHCHECK and the `--health-*` flags, the probe's command, when
 * the next probe runs, how a probe's result moves the state (starting, healthy, unhealthy), and
 * how `ps` shows and filters it. The supervisor drives these (health_monitor.ts runs the probes);
 * nothing here touches a process, a clock or the database.
 *
 * @module
 */
import type { HealthConfig } from "../../registry/manifest.ts";
import { UsageError } from "../errors.ts";

export type { HealthConfig };

/** docker's health states (`none` is a filter value only: no healthcheck at all). */
export type HealthStatus = "starting" | "healthy" | "unhealthy";

/** One probe in `State.Health.Log` (docker's HealthcheckResult). */
export interface HealthLogEntry {
  /** RFC 3339 time the probe started. */
  readonly Start: string;
  /** RFC 3339 time it ended. */
  readonly End: string;
  /** 0 healthy; anything else a failure; -1 when it timed out or could not be run. */
  readonly ExitCode: number;
  /** Its stdout and stderr together, cut at 4096 bytes ("..." added). */
  readonly Output: string;
}

/** `State.Health`, as the state database keeps it and `inspect` shows it. */
export interface HealthState {
  readonly Status: HealthStatus;
  /** Consecutive failures counted (failures in the start period are not). */
  readonly FailingStreak: number;
  /** The last {@link MAX_LOG_ENTRIES} probes, oldest first. */
  readonly Log: readonly HealthLogEntry[];
}

/** The outcome of one probe, in ms since the epoch. */
export interface ProbeResult {
  readonly start: number;
  readonly end: number;
  readonly exitCode: number;
  readonly output: string;
}

/** The timings of a healthcheck with docker's defaults applied, in milliseconds. */
export interface HealthTiming {
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly startPeriodMs: number;
  readonly startIntervalMs: number;
  readonly retries: number;
}

/** Probes kept in the log (docker's maxLogEntries). */
export const MAX_LOG_ENTRIES = 5;
/** Output kept per probe, in bytes (docker's maxOutputLen). */
export const MAX_OUTPUT_BYTES = 4096;

const NS_PER_MS = 1e6;
const DEFAULT_INTERVAL_NS = 30e9;
const DEFAULT_TIMEOUT_NS = 30e9;
const DEFAULT_START_INTERVAL_NS = 5e9;
const DEFAULT_RETRIES = 3;
/** docker's container.MinimumDuration: shorter non-zero durations are refused. */
const MINIMUM_NS = 1e6;

// ---------------------------------------------------------------------------------------------
// Go durations (the flags take Go's time.ParseDuration syntax, inspect shows nanoseconds).

const UNIT_NS: Record<string, number> = {
  ns: 1,
  us: 1e3,
  "µs": 1e3,
  "μs": 1e3,
  ms: 1e6,
  s: 1e9,
  m: 60e9,
  h: 3600e9,
};

/** Go's time.ParseDuration ("1m30s", "300ms", "1.5h"): nanoseconds, or Go's error text. */
export function parseGoDuration(text: string): number {
  const quoted = JSON.stringify(text);
  let s = text;
  let sign = 1;
  if (s.startsWith("-") || s.startsWith("+")) {
    if (s[0] === "-") sign = -1;
    s = s.slice(1);
  }
  if (s === "0") return 0;
  if (s === "") throw new Error(`time: invalid duration ${quoted}`);
  let total = 0;
  while (s !== "") {
    const m = /^(\d*)(?:\.(\d*))?/.exec(s)!;
    const [number, whole, frac] = m;
    if (whole === "" && (frac ?? "") === "") throw new Error(`time: invalid duration ${quoted}`);
    s = s.slice(number.length);
    const unit = /^[^\d.]*/.exec(s)![0];
    if (unit === "") throw new Error(`time: missing unit in duration ${quoted}`);
    const scale = UNIT_NS[unit];
    if (scale === undefined) {
      throw new Error(`time: unknown unit ${JSON.stringify(unit)} in duration ${quoted}`);
    }
    s = s.slice(unit.length);
    total += Number(`${whole || "0"}.${frac || "0"}`) * scale;
  }
  return sign * Math.round(total);
}

/** Go's Duration.String for nanoseconds: "300ms", "30s", "1m30s", "1h0m0s". */
export function formatGoDuration(ns: number): string {
  if (ns === 0) return "0s";
  const sign = ns < 0 ? "-" : "";
  let u = Math.abs(ns);
  const num = (x: number) => String(Number(x.toFixed(9)));
  if (u < 1e3) return `${sign}${u}ns`;
  if (u < 1e6) return `${sign}${num(u / 1e3)}µs`;
  if (u < 1e9) return `${sign}${num(u / 1e6)}ms`;
  const h = Math.floor(u / 3600e9);
  u -= h * 3600e9;
  const m = Math.floor(u / 60e9);
  u -= m * 60e9;
  let out = `${num(u / 1e9)}s`;
  if (h > 0 || m > 0) out = `${m}m${out}`;
  if (h > 0) out = `${h}h${out}`;
  return sign + out;
}

// ---------------------------------------------------------------------------------------------
// The container's healthcheck.

/** The `--health-*` flags of run/create as the CLI hands them over (values as typed). */
export interface HealthFlags {
  healthCmd?: string;
  healthInterval?: string;
  healthTimeout?: string;
  healthRetries?: string;
  healthStartPeriod?: string;
  healthStartInterval?: string;
  /** false with `--no-healthcheck` (commander's negated flag; true or absent otherwise). */
  healthcheck?: boolean;
}

/** `--health-retries`: an integer, with pflag's message for anything else. */
export function parseRetries(value: string): number {
  if (!/^[-+]?\d+$/.test(value)) {
    throw new UsageError(
      `invalid argument "${value}" for "--health-retries" flag: strconv.ParseInt: parsing ${
        JSON.stringify(value)
      }: invalid syntax`,
    );
  }
  return Number(value);
}

function flagDuration(value: string | undefined, flag: string): number {
  if (value === undefined) return 0;
  let ns: number;
  try {
    ns = parseGoDuration(value);
  } catch (err) {
    throw new UsageError(
      `invalid argument "${value}" for "${flag}" flag: ${(err as Error).message}`,
    );
  }
  if (ns < 0) throw new UsageError(`${flag} cannot be negative`);
  return ns;
}

/**
 * The container's healthcheck, as docker's CLI builds it from the flags and its daemon merges it
 * with the image's HEALTHCHECK: `--no-healthcheck` is `Test: ["NONE"]` (refused with any
 * `--health-*` flag); `--health-cmd` is `CMD-SHELL`; each field not given (zero) comes from the
 * image. Undefined when neither says anything. Throws docker's messages for bad values.
 */
export function healthConfigFrom(
  image: HealthConfig | undefined,
  f: HealthFlags,
): HealthConfig | undefined {
  const user: HealthConfig = {
    Test: f.healthCmd ? ["CMD-SHELL", f.healthCmd] : undefined,
    Interval: flagDuration(f.healthInterval, "--health-interval"),
    Timeout: flagDuration(f.healthTimeout, "--health-timeout"),
    StartPeriod: flagDuration(f.healthStartPeriod, "--health-start-period"),
    StartInterval: flagDuration(f.healthStartInterval, "--health-start-interval"),
    Retries: f.healthRetries === undefined ? 0 : parseRetries(f.healthRetries),
  };
  if (user.Retries! < 0) throw new UsageError("--health-retries cannot be negative");
  const given = user.Test !== undefined || user.Interval !== 0 || user.Timeout !== 0 ||
    user.StartPeriod !== 0 || user.StartInterval !== 0 || user.Retries !== 0;
  let merged: HealthConfig | undefined;
  if (f.healthcheck === false) {
    if (given) throw new UsageError("--no-healthcheck conflicts with --health-* options");
    merged = { Test: ["NONE"] };
  } else if (given) {
    merged = { ...user };
    if (!merged.Test) delete merged.Test;
  }
  if (image) {
    if (!merged) merged = { ...image };
    else {
      merged = {
        Test: merged.Test?.length ? merged.Test : image.Test,
        Interval: merged.Interval || image.Interval,
        Timeout: merged.Timeout || image.Timeout,
        StartPeriod: merged.StartPeriod || image.StartPeriod,
        StartInterval: merged.StartInterval || image.StartInterval,
        Retries: merged.Retries || image.Retries,
      };
    }
  }
  if (merged) validate(merged);
  return merged;
}

/** The daemon's checks (validateHealthCheck), with its messages. */
function validate(hc: HealthConfig): void {
  const fields: [keyof HealthConfig, string][] = [
    ["Interval", "Interval"],
    ["Timeout", "Timeout"],
    ["StartPeriod", "StartPeriod"],
    ["StartInterval", "StartInterval"],
  ];
  for (const [key, name] of fields) {
    const v = (hc[key] as number | undefined) ?? 0;
    if (v !== 0 && v < MINIMUM_NS) {
      throw new UsageError(`${name} in Healthcheck cannot be less than 1ms`);
    }
  }
  if ((hc.Retries ?? 0) < 0) throw new UsageError("Retries in Healthcheck cannot be negative");
}

/**
 * The probe's command line: `CMD` runs its arguments, `CMD-SHELL` its one string through the
 * image's SHELL (`/bin/sh -c` by default). Undefined when there is nothing to probe: no
 * healthcheck, `NONE`, an empty test, or an unknown kind (docker ignores those too).
 */
export function probeCommand(
  hc: HealthConfig | undefined,
  shell: readonly string[] = ["/bin/sh", "-c"],
): string[] | undefined {
  const test = hc?.Test;
  if (!test || test.length === 0) return undefined;
  const args = test.slice(1);
  if (test[0] === "CMD") return args.length > 0 ? args : undefined;
  if (test[0] === "CMD-SHELL") return args.length > 0 ? [...shell, ...args] : undefined;
  return undefined;
}

/** docker's defaults applied to `hc`'s zero fields, in milliseconds. */
export function healthTiming(hc: HealthConfig): HealthTiming {
  const or = (v: number | undefined, d: number) => (v ? v : d) / NS_PER_MS;
  return {
    intervalMs: or(hc.Interval, DEFAULT_INTERVAL_NS),
    timeoutMs: or(hc.Timeout, DEFAULT_TIMEOUT_NS),
    startPeriodMs: or(hc.StartPeriod, 0),
    startIntervalMs: or(hc.StartInterval, DEFAULT_START_INTERVAL_NS),
    retries: hc.Retries && hc.Retries > 0 ? hc.Retries : DEFAULT_RETRIES,
  };
}

// ---------------------------------------------------------------------------------------------
// The schedule and the state machine.

/**
 * The health a (re)started container begins with: `starting`, no failures, the log of earlier
 * runs kept (docker's initHealthMonitor).
 */
export function startingHealth(previous: HealthState | undefined): HealthState {
  return { Status: "starting", FailingStreak: 0, Log: previous?.Log ?? [] };
}

/**
 * How long to wait before the next probe (docker's getInterval), measured from the end of the
 * last one, or from the start for the first. In the start period a container still `starting`
 * is probed every start interval, and the first probe after the period is not held back by a
 * longer interval.
 */
export function nextProbeDelay(
  t: HealthTiming,
  status: HealthStatus,
  sinceStartMs: number,
): number {
  if (sinceStartMs >= t.startPeriodMs) return t.intervalMs;
  const remaining = t.startPeriodMs - sinceStartMs;
  if (remaining < t.intervalMs) return remaining;
  return status === "starting" ? t.startIntervalMs : t.intervalMs;
}

/**
 * The state after one probe (docker's handleProbeResult): the result joins the log (the last
 * five kept); exit 0 makes it healthy and clears the streak; any other code is a failure, which
 * counts unless the container is still `starting` within its start period, and `retries`
 * counted failures in a row make it unhealthy.
 */
export function applyProbeResult(
  state: HealthState,
  result: ProbeResult,
  t: HealthTiming,
  startedAtMs: number,
): HealthState {
  const entry: HealthLogEntry = {
    Start: new Date(result.start).toISOString(),
    End: new Date(result.end).toISOString(),
    ExitCode: result.exitCode,
    Output: result.output,
  };
  const Log = [...state.Log, entry].slice(-MAX_LOG_ENTRIES);
  if (result.exitCode === 0) return { Status: "healthy", FailingStreak: 0, Log };
  const inStartPeriod = state.Status === "starting" &&
    result.start - startedAtMs < t.startPeriodMs;
  if (inStartPeriod) return { ...state, Log };
  const FailingStreak = state.FailingStreak + 1;
  return {
    Status: FailingStreak >= t.retries ? "unhealthy" : state.Status,
    FailingStreak,
    Log,
  };
}

/** A probe's output as docker keeps it: the first 4096 bytes, "..." when there was more. */
export function probeOutput(bytes: Uint8Array, truncated: boolean): string {
  const kept = bytes.subarray(0, MAX_OUTPUT_BYTES);
  const text = new TextDecoder().decode(kept);
  return truncated || bytes.length > MAX_OUTPUT_BYTES ? `${text}...` : text;
}

/** The log entry's output for a probe that ran out of time (docker's words). */
export function timeoutOutput(timeoutMs: number, output: string): string {
  const limit = formatGoDuration(Math.round(timeoutMs * NS_PER_MS));
  return output === ""
    ? `Health check exceeded timeout (${limit})`
    : `Health check exceeded timeout (${limit}): ${output}`;
}

// ---------------------------------------------------------------------------------------------
// How ps shows and filters it.

/** What `ps` adds to `Up 3 seconds` of a running container: ` (healthy)`, or "". */
export function healthSuffix(health: HealthState | undefined): string {
  if (!health) return "";
  return health.Status === "starting" ? " (health: starting)" : ` (${health.Status})`;
}

/**
 * What `ps --filter health=` compares with: the status, or `none` for a container without
 * health (no healthcheck, or never started with one). A stopped container keeps its last one.
 */
export function healthFilterValue(health: HealthState | undefined): HealthStatus | "none" {
  return health?.Status ?? "none";
}
