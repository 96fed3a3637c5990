/**
 * The fast path of the CLI: the hot commands (`ps`, `inspect`, `start`, `stop`, `rm`, `exec`, `pull`,
 * `run`), once hot_parse.ts has parsed them, run without loading commander, whose npm boot
 * (Deno's node layer) costs about three times a whole `deno run` of a hello world (design.md).
 * Command lines hot_parse.ts does not take go to commander (mod.ts), which stays the one source
 * of help, flags and usage errors.
 *
 * @module
 */
import { createLine } from "./create_line.ts";
import { exitCode } from "./exit.ts";
import { globalsFrom } from "./globals.ts";
import { HOT_ACTIONS, type HotAction } from "./hot_actions.ts";
import type { HotInvocation } from "./hot_parse.ts";
import { reportError, wantsDebug } from "./report.ts";
import { HOT_COMMANDS } from "./hot_spec.ts";

/** Runs a parsed hot command (`args`: the whole command line) and returns the exit code. */
export async function runHot(
  hot: Extract<HotInvocation, { kind: "command" }>,
  args: readonly string[],
): Promise<number> {
  const action: HotAction = HOT_ACTIONS[hot.command as keyof typeof HOT_ACTIONS];
  try {
    await action(globalsFrom(hot.programOpts), hot.args, actionOpts(hot));
    return exitCode();
  } catch (err) {
    return reportError(err, wantsDebug(args), `tsbox ${hot.command}`);
  }
}

/**
 * The options a hot command's action receives: commander's `opts()`, and for `run` the command
 * line recorded with the container (create_line.ts), read from the same table commander's
 * options were checked against.
 */
export function actionOpts(
  hot: Extract<HotInvocation, { kind: "command" }>,
): Record<string, unknown> {
  if (hot.command !== "run") return hot.opts;
  const options = HOT_COMMANDS.run.options.map((o) => ({
    attributeName: () => o.key,
    long: o.long,
    short: o.short,
    defaultValue: o.default,
  }));
  const [image, command] = hot.args as [string, string[]];
  const createCommand = createLine({ opts: () => hot.opts, options }, image, command);
  return { ...hot.opts, createCommand };
}
