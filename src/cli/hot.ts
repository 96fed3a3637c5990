/**
 * The fast path of the CLI: the hot commands (`ps`, `inspect`, `start`, `stop`, `rm`, `exec`,
 * `run`), once hot_parse.ts has parsed them, run without loading commander, whose npm boot
 * (Deno's node layer) costs about three times a whole `deno run` of a hello world (design.md).
 * Command lines hot_parse.ts does not take go to commander (mod.ts), which stays the one source
 * of help, flags and usage errors.
 *
 * @module
 */
import { exitCode } from "./exit.ts";
import { globalsFrom } from "./globals.ts";
import { HOT_ACTIONS, type HotAction } from "./hot_actions.ts";
import type { HotInvocation } from "./hot_parse.ts";
import { reportError, wantsDebug } from "./report.ts";

/** Runs a parsed hot command (`args`: the whole command line) and returns the exit code. */
export async function runHot(
  hot: Extract<HotInvocation, { kind: "command" }>,
  args: readonly string[],
): Promise<number> {
  const action: HotAction = HOT_ACTIONS[hot.command as keyof typeof HOT_ACTIONS];
  try {
    await action(globalsFrom(hot.programOpts), hot.args, hot.opts);
    return exitCode();
  } catch (err) {
    return reportError(err, wantsDebug(args), `tsbox ${hot.command}`);
  }
}
