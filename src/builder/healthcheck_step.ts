/**
 * HEALTHCHECK: the image config's `Healthcheck` from the instruction (NONE, or CMD with its
 * `--interval`, `--timeout`, `--start-period`, `--start-interval`, `--retries` flags).
 *
 * @module
 */
import type { ContainerConfig } from "../../registry/manifest.ts";
import { TsboxError } from "../errors.ts";
import type { Instruction } from "./dockerfile.ts";
import { execForm } from "./exec_form.ts";

/** Parses a Go duration (`30s`, `1m30s`, `500ms`) into nanoseconds. */
export function durationNs(text: string): number {
  const units: Record<string, number> = {
    ns: 1,
    us: 1e3,
    "µs": 1e3,
    ms: 1e6,
    s: 1e9,
    m: 6e10,
    h: 3.6e12,
  };
  let total = 0;
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g;
  let consumed = 0;
  for (const m of text.matchAll(re)) {
    total += Number(m[1]) * units[m[2]];
    consumed += m[0].length;
  }
  if (consumed !== text.length || text === "") throw new TsboxError(`invalid duration ${text}`);
  return Math.round(total);
}

/** The `Healthcheck` a HEALTHCHECK instruction sets; `fail` reports a malformed one. */
export function healthcheckOf(
  ins: Instruction,
  fail: (detail: string) => never,
): ContainerConfig["Healthcheck"] {
  const args = ins.args.trim();
  const [kind, ...rest] = args.split(/\s+/);
  if (kind.toUpperCase() === "NONE") return { Test: ["NONE"] };
  if (kind.toUpperCase() !== "CMD") fail("HEALTHCHECK must be NONE or CMD");
  const cmdText = args.slice(kind.length).trim();
  const json = execForm(cmdText);
  const hc: NonNullable<ContainerConfig["Healthcheck"]> = {
    Test: json ? ["CMD", ...json] : ["CMD-SHELL", rest.length ? cmdText : ""],
  };
  for (const f of ins.flags) {
    if (f.name === "interval") hc.Interval = durationNs(f.value);
    else if (f.name === "timeout") hc.Timeout = durationNs(f.value);
    else if (f.name === "start-period") hc.StartPeriod = durationNs(f.value);
    else if (f.name === "start-interval") hc.StartInterval = durationNs(f.value);
    else if (f.name === "retries") hc.Retries = Number(f.value);
  }
  return hc;
}
