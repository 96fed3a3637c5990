/**
 * How a failed command is told to the user, and its exit code, shared by commander's path
 * (mod.ts) and the fast path of the hot commands (hot.ts).
 *
 * @module
 */
import { TsboxError, UsageError } from "../errors.ts";

/**
 * Prints `err` as docker does and returns the exit code: a usage error with `See 'PATH
 * --help'.` (`path` names the command at fault), anything else on one line (the whole error
 * with `debug`); TsboxErrors carry their code, others exit 125.
 */
export function reportError(err: unknown, debug: boolean, path: string): number {
  if (err instanceof UsageError) {
    console.error(`tsbox: ${err.message}`);
    console.error(`See '${path} --help'.`);
    return err.exitCode;
  }
  if (debug) console.error(err);
  else console.error(`tsbox: ${(err as Error).message ?? err}`);
  return err instanceof TsboxError ? err.exitCode : 125;
}

/** Whether the command line asks for stack traces (`--debug`/`-D` anywhere, as mod.ts reads it). */
export function wantsDebug(args: readonly string[]): boolean {
  return args.includes("--debug") || args.includes("-D");
}
