/**
 * `tsbox exec [OPTIONS] CONTAINER COMMAND [ARG...]`: run a command in a running container, like
 * `docker exec`. The work is in exec_actions.ts, loaded when the command runs.
 *
 * @module
 */
import type { Command } from "commander";
import { collect } from "./arg_parsers.ts";
import { globalsOf } from "./globals.ts";
import { HOT_ACTIONS } from "./hot_actions.ts";

/** Defines `exec` on the program. */
export function defineExecCommand(program: Command): void {
  program.command("exec")
    .description("Execute a command in a running container")
    .argument("<container>", "name or id")
    .argument("<command...>", "command and arguments")
    .passThroughOptions()
    .option("-i, --interactive", "keep stdin open")
    .option("-t, --tty", "allocate a pseudo-TTY")
    .option("-d, --detach", "run the command in the background")
    .option("-e, --env <NAME[=value]>", "set an environment variable (repeatable)", collect)
    .option("-w, --workdir <dir>", "working directory inside the container")
    .option("-u, --user <user[:group]>", "user name or uid, optionally with a group or gid")
    .action((container, command, flags, cmd) =>
      HOT_ACTIONS.exec(globalsOf(cmd), [container, command], flags)
    );
}
