/**
 * The command line: one commander program whose subcommands live one per file beside this one.
 * Each file only declares its flags; the work is imported when the command runs, so that
 * `tsbox run` does not pay for loading the registry client or the Dockerfile parser.
 *
 * @module
 */
import { Command, CommanderError, Option } from "commander";
import { VERSION } from "../version.ts";
import { collect, goBoolFlags } from "./arg_parsers.ts";
import { exitCode } from "./exit.ts";
import { DEFAULT_ROOT } from "./globals.ts";
import { defineBuildCommand } from "./build_command.ts";
import { defineExchangeCommands } from "./exchange_commands.ts";
import { defineImageCommands } from "./image_commands.ts";
import { defineRunCommand } from "./run_command.ts";
import { defineInfoCommand } from "./info_command.ts";
import { defineContainerCommands } from "./container_commands.ts";
import { defineExecCommand } from "./exec_command.ts";
import { defineAttachCommand } from "./attach_command.ts";
import { definePortCommand } from "./port_command.ts";
import { commandPath, dockerUsageErrors } from "./usage.ts";
import { reportError, wantsDebug } from "./report.ts";
import { defineVolumeCommands } from "./volume_commands.ts";
import { defineSystemCommands } from "./system_commands.ts";
import { defineServiceCommand } from "./service_command.ts";
import { defineCompletionCommand } from "./completion_command.ts";
import { defineCommitCommand } from "./commit_command.ts";
import { defineUpdateCommand } from "./update_command.ts";
import { defineImportCommand } from "./import_command.ts";
import { defineEventsCommand } from "./events_command.ts";
import { defineNetworkCommands } from "./network_commands.ts";
import { defineSystemBootCommand } from "./system_boot_command.ts";
import { defineGenerateCommand } from "./generate_command.ts";
import { defineSystemCheckCommand } from "./system_check_command.ts";
import { defineRenameCommand } from "./rename_command.ts";

/** Builds the program with every command defined. */
export function buildProgram(): Command {
  const program = new Command("tsbox")
    .description("A small container engine: pull, run and build OCI images.")
    .version(VERSION, "-v, --version", "print the version")
    .addOption(
      new Option("--root <dir>", "root of the image store and container state")
        .env("TSBOX_ROOT")
        .default(DEFAULT_ROOT),
    )
    .addOption(
      new Option(
        "--runroot <dir>",
        "runtime directory of the store, on tmpfs (default /run/tsbox/<hash of --root>)",
      ).env("TSBOX_RUNROOT"),
    )
    .option("-D, --debug", "show debug output and stack traces")
    .option(
      "--insecure-registry <host>",
      "reach this registry over plain HTTP (repeatable; also TSBOX_INSECURE_REGISTRIES)",
      collect,
    )
    .option(
      "--userns-remap <default|user[:group]>",
      "run containers in a user namespace mapped onto this /etc/subuid and /etc/subgid range",
    )
    .enablePositionalOptions()
    .exitOverride();
  defineImageCommands(program);
  defineExchangeCommands(program);
  defineRunCommand(program);
  defineInfoCommand(program);
  defineContainerCommands(program);
  defineExecCommand(program);
  defineAttachCommand(program);
  defineCommitCommand(program);
  defineUpdateCommand(program);
  defineRenameCommand(program);
  defineImportCommand(program);
  definePortCommand(program);
  defineVolumeCommands(program);
  defineSystemCommands(program);
  defineServiceCommand(program);
  defineEventsCommand(program);
  defineCompletionCommand(program);
  defineNetworkCommands(program);
  defineBuildCommand(program);
  // After every other command group: `boot` and `check` join the `system` defined above.
  defineSystemBootCommand(program);
  defineSystemCheckCommand(program);
  defineGenerateCommand(program);
  for (const cmd of program.commands) cmd.exitOverride();
  return program as unknown as Command;
}

/** Runs the CLI with `args` (without the program name) and returns the exit code. */
export async function runCli(args: string[]): Promise<number> {
  const program = buildProgram();
  // The command being parsed or run, for the `See 'tsbox run --help'.` of a usage error.
  let current: Command = program;
  dockerUsageErrors(program, (cmd) => current = cmd);
  const debug = wantsDebug(args);
  try {
    // `cp -a=false` as pflag takes it (podman's tests and docker users write it so).
    const parsed = ["cp", "container cp"].reduce(
      (a, cmd) => goBoolFlags(a, cmd.split(" "), ["-a", "--archive"]),
      args,
    );
    await program.parseAsync(parsed, { from: "user" });
    return exitCode();
  } catch (err) {
    if (err instanceof CommanderError) {
      // help and version end here with code 0; usage errors were already printed (usage.ts).
      // docker exits 1 for an unknown command and 125 for a bad flag.
      if (err.code === "commander.unknownCommand") return 1;
      return err.exitCode === 0 ? 0 : 125;
    }
    return reportError(err, debug, commandPath(current));
  }
}
