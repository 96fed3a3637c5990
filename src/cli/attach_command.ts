/**
 * `tsbox attach [--no-stdin] [--detach-keys KEYS] [--sig-proxy=false] CONTAINER`: connect the
 * terminal to a running container, like `docker attach`. The work is in attach_actions.ts.
 *
 * @module
 */
import type { Command } from "commander";
import { setExitCode } from "./exit.ts";
import { globalsOf } from "./globals.ts";

/** Defines `attach` (and `container attach`) on the program. */
export function defineAttachCommand(program: Command): void {
  const define = (cmd: Command) =>
    cmd.description("Attach local standard input, output, and error streams to a running container")
      .argument("<container>", "name or id")
      .option("--no-stdin", "do not attach stdin")
      .option("--detach-keys <keys>", "key sequence for detaching (default ctrl-p,ctrl-q)")
      .option("--sig-proxy <bool>", "proxy received signals to the process (non-TTY)", "true")
      .action(async (container, flags, self) => {
        const { attachCommand } = await import("./attach_actions.ts");
        setExitCode(await attachCommand(globalsOf(self), container, flags));
      });
  define(program.command("attach"));
  const container = program.commands.find((c) => c.name() === "container");
  if (container) define(container.command("attach")).exitOverride().showHelpAfterError();
}
