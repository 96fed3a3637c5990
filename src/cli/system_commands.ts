/**
 * Housekeeping: `system df|prune`, `image prune` (added to the `image` command the image
 * commands define) and `builder prune`. Declares flags only; the work is in system_actions.ts,
 * loaded when a command runs.
 *
 * @module
 */
import type { Command } from "commander";
import { setExitCode } from "./exit.ts";
import { globalsOf } from "./globals.ts";
import { FORMAT_HELP } from "./formats.ts";

const actions = () => import("./system_actions.ts");

function finish(cmd: Command): void {
  cmd.exitOverride().showHelpAfterError();
  for (const c of cmd.commands) c.exitOverride().showHelpAfterError();
}

/** Defines `system`, `builder` and `image prune` on the program (after the image commands). */
export function defineSystemCommands(program: Command): void {
  const system = program.command("system").description("Manage tsbox");
  system.command("df")
    .description("Show tsbox disk usage")
    .option("-v, --verbose", "show detailed information on space usage")
    .option("--format <format>", FORMAT_HELP)
    .action(async (opts, self) => (await actions()).systemDfCommand(globalsOf(self), opts));
  system.command("prune")
    .description("Remove unused data")
    .option("-a, --all", "remove all unused images not just dangling ones, and all build cache")
    .option("--volumes", "prune anonymous volumes")
    .option("-f, --force", "do not prompt for confirmation")
    .action(async (opts, self) =>
      setExitCode(await (await actions()).systemPruneCommand(globalsOf(self), opts))
    );
  finish(system);

  // The image commands made `image`; its commands are typed loosely once defined.
  const found = program.commands.find((c) => c.name() === "image") as unknown as
    | Command
    | undefined;
  const image = found ?? program.command("image").description("Manage images");
  image.command("prune")
    .description("Remove unused images")
    .option("-a, --all", "remove all unused images, not just dangling ones")
    .option("-f, --force", "do not prompt for confirmation")
    .action(async (opts, self) =>
      setExitCode(await (await actions()).imagePruneCommand(globalsOf(self), opts))
    );
  finish(image);

  const builder = program.command("builder").description("Manage builds");
  builder.command("prune")
    .description("Remove build cache")
    .option("-a, --all", "remove all build cache, not just dangling entries")
    .option("-f, --force", "do not prompt for confirmation")
    .action(async (opts, self) =>
      setExitCode(await (await actions()).builderPruneCommand(globalsOf(self), opts))
    );
  finish(builder);
}
