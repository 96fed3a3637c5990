/**
 * What every runc command gets: the state root, the log, and the parsed flags.
 *
 * @module
 */
import type { Flags } from "./args.ts";
import type { RuncLog } from "./log.ts";

/** The global settings of one invocation. */
export interface RuncContext {
  /** `--root`, the state directory of every container of this runtime. */
  readonly root: string;
  readonly log: RuncLog;
  /** The command's own flags. */
  readonly flags: Flags;
  /** Its positional arguments. */
  readonly args: readonly string[];
}

/** A string flag, or undefined. */
export function str(flags: Flags, name: string): string | undefined {
  const v = flags[name];
  return typeof v === "string" ? v : undefined;
}

/** A repeatable flag's values. */
export function list(flags: Flags, name: string): string[] {
  const v = flags[name];
  return Array.isArray(v) ? v : typeof v === "string" ? [v] : [];
}

/** Writes `text` to `path` atomically (pid files: readers must never see half a number). */
export function writeAtomic(path: string, text: string): void {
  const tmp = `${path}.tsbox-tmp`;
  Deno.writeTextFileSync(tmp, text);
  Deno.renameSync(tmp, path);
}
