/**
 * Signal names and numbers as the engine takes them, for `kill -s`, `stop` and images'
 * StopSignal: the runtime's table (src/runtime/oci_signals.ts), with a usage error when unknown.
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import { namedSignal, parseSignal as signalNumber } from "../runtime/oci_signals.ts";

/** `SIGTERM`, `TERM`, `15` or `SIGRTMIN+3` -> the signal number. */
export function parseSignal(value: string): number {
  const v = value.trim().toUpperCase().replace(/^SIG/, "");
  const n = /^\d+$/.test(v) ? signalNumber(v) : namedSignal(v);
  if (n === undefined) throw new UsageError(`invalid signal: ${value}`);
  return n;
}
