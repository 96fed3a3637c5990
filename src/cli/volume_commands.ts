/**
 * `volume create|ls|inspect|rm|prune`. Declares flags only; the work is in volume_actions.ts,
 * loaded when a command runs.
 *
 * @module
 */
import type { Command } from "commander";
import { setExitCode } from "./exit.ts";
import { FORMAT_HELP } from "./formats.ts";
import { collectFilter } from "./filters.ts";
import { globalsOf } from "./globals.ts";

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

const actions = () => import("./volume_actions.ts");

/** Defines `volume` and its subcommands on the program. */
export function defineVolumeCommands(program: Command): void {
  const volume = program.command("volume").description("Manage volumes");
  volume.command("create")
    .description("Create a volume")
    .argument("[name]", "volume name (a random 64-hex name when omitted)")
    .option("-d, --driver <driver>", "volume driver (only local)", "local")
    .option("--label <key=value>", "set metadata on the volume (repeatable)", collect)
    .option(
      "-o, --opt <key=value>",
      "local driver option: type=, device=, o= (repeatable)",
      collect,
    )
    .action(async (name, opts, self) =>
      (await actions()).volumeCreateCommand(globalsOf(self), name, opts)
    );
  volume.command("ls").alias("list")
    .description("List volumes")
    .option("-q, --quiet", "only display volume names")
    .option(
      "-f, --filter <key=value>",
      "filter: name=, driver=, label=K[=V], label!=, dangling=true|false (repeatable)",
      collectFilter,
    )
    .option("--format <format>", FORMAT_HELP)
    .action(async (opts, self) => (await actions()).volumeLsCommand(globalsOf(self), opts));
  volume.command("inspect")
    .description("Display detailed information on one or more volumes")
    .argument("<names...>", "volume names")
    .option("-f, --format <template>", "format the output using a Go template, or json")
    .action(async (names, opts, self) =>
      setExitCode(await (await actions()).volumeInspectCommand(globalsOf(self), names, opts))
    );
  volume.command("rm").alias("remove")
    .description("Remove one or more volumes (refused while a container uses one)")
    .argument("<names...>", "volume names")
    .option("-f, --force", "do not fail on a volume that does not exist")
    .action(async (names, opts, self) =>
      setExitCode(await (await actions()).volumeRmCommand(globalsOf(self), names, opts))
    );
  volume.command("prune")
    .description("Remove unused anonymous volumes (all unused volumes with -a)")
    .option("-a, --all", "remove all unused volumes, not only anonymous ones")
    .option("-f, --force", "do not prompt for confirmation")
    .action(async (opts, self) =>
      setExitCode(await (await actions()).volumePruneCommand(globalsOf(self), opts))
    );
  volume.exitOverride().showHelpAfterError();
  for (const cmd of volume.commands) cmd.exitOverride().showHelpAfterError();
}
