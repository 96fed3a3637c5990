/**
 * Container commands: create, start, stop, restart, kill, pause, unpause, rm, wait, ps, logs,
 * top, stats, cp, export, diff, and `container ...` spellings (incl. inspect, prune). Each only
 * declares flags; the work is in container_actions.ts, loaded when a command runs.
 *
 * @module
 */
import { type Command, Option } from "commander";
import { intArg } from "./arg_parsers.ts";
import { collectFilter } from "./filters.ts";
import { setExitCode } from "./exit.ts";
import { FORMAT_HELP } from "./formats.ts";
import { globalsOf } from "./globals.ts";
import { HOT_ACTIONS } from "./hot_actions.ts";
import { addRunOptions } from "./run_command.ts";

const actions = () => import("./container_actions.ts");

/** Defines the container commands on the program. */
export function defineContainerCommands(program: Command): void {
  const create = (cmd: Command) =>
    addRunOptions(
      cmd.description("Create a new container without starting it")
        .argument("<image>", "image name or id")
        .argument("[command...]", "command and arguments (default: the image's)")
        .passThroughOptions(),
    ).action(async (image, command, flags, self) => {
      const { createLine } = await import("./create_line.ts");
      const createCommand = createLine(self, image, command);
      await (await actions()).createCommand(globalsOf(self), image, command, {
        ...flags,
        createCommand,
      });
    });
  const start = (cmd: Command) =>
    cmd.description("Start one or more stopped containers")
      .argument("<containers...>", "names or ids")
      .option("-a, --attach", "attach stdout/stderr and forward signals")
      .option("-i, --interactive", "attach stdin")
      .action((names, opts, self) => HOT_ACTIONS.start(globalsOf(self), [names], opts));
  const stop = (cmd: Command) =>
    cmd.description("Stop one or more running containers")
      .argument("<containers...>", "names or ids")
      .option("-t, --timeout <seconds>", "seconds to wait before killing it")
      .option("--time <seconds>", "the same as --timeout (docker's older name)")
      .option("-s, --signal <signal>", "signal to send first (default: the container's)")
      .action((names, opts, self) => HOT_ACTIONS.stop(globalsOf(self), [names], opts));
  const restart = (cmd: Command) =>
    cmd.description("Restart one or more containers")
      .argument("<containers...>", "names or ids")
      .option("-t, --timeout <seconds>", "seconds to wait before killing it")
      .option("--time <seconds>", "the same as --timeout (docker's older name)")
      .action(async (names, opts, self) =>
        setExitCode(await (await actions()).restartCommand(globalsOf(self), names, opts))
      );
  const kill = (cmd: Command) =>
    cmd.description("Kill one or more running containers")
      .argument("<containers...>", "names or ids")
      .option("-s, --signal <signal>", "signal to send", "KILL")
      .action(async (names, opts, self) =>
        setExitCode(await (await actions()).killCommand(globalsOf(self), names, opts))
      );
  const pause = (cmd: Command) =>
    cmd.description("Pause all processes within one or more containers")
      .argument("<containers...>", "names or ids")
      .action(async (names, _opts, self) =>
        setExitCode(await (await actions()).pauseCommand(globalsOf(self), names, true))
      );
  const unpause = (cmd: Command) =>
    cmd.description("Unpause all processes within one or more containers")
      .argument("<containers...>", "names or ids")
      .action(async (names, _opts, self) =>
        setExitCode(await (await actions()).pauseCommand(globalsOf(self), names, false))
      );
  const rm = (cmd: Command) =>
    cmd.description("Remove one or more containers")
      .argument("<containers...>", "names or ids")
      .option("-f, --force", "kill a running container first")
      .option("-v, --volumes", "remove the anonymous volumes of the container")
      .action((names, opts, self) => HOT_ACTIONS.rm(globalsOf(self), [names], opts));
  const wait = (cmd: Command) =>
    cmd.description("Block until containers stop, then print their exit codes")
      .argument("<containers...>", "names or ids")
      .action(async (names, _opts, self) =>
        setExitCode(await (await actions()).waitCommand(globalsOf(self), names))
      );
  const ps = (cmd: Command) =>
    cmd.description("List containers")
      .option("-a, --all", "show all containers (default shows just running)")
      .option("-q, --quiet", "only display container ids")
      .option("--no-trunc", "do not truncate output")
      .option("-n, --last <n>", "show the n last created containers (all states)", intArg)
      .option("-l, --latest", "show the latest created container (all states)")
      .option("-s, --size", "display total file sizes")
      .option(
        "-f, --filter <key=value>",
        "filter: status=, name=, id=, label=K[=V], label!=, ancestor=, before=, since=, " +
          "exited=, volume=, network=, health= (repeatable)",
        collectFilter,
      )
      .option("--format <format>", FORMAT_HELP)
      .action((opts, self) => HOT_ACTIONS.ps(globalsOf(self), [], opts));
  const logs = (cmd: Command) =>
    cmd.description("Fetch the logs of a container")
      .argument("<container>", "name or id")
      .option("-f, --follow", "follow log output until the container exits")
      .option("-n, --tail <lines>", "number of lines to show from the end (or 'all')")
      .option("-t, --timestamps", "show timestamps")
      .option("--since <time>", "show logs since a timestamp or relative time (e.g. 42m)")
      .option("--until <time>", "show logs before a timestamp or relative time")
      .action(async (name, opts, self) =>
        (await actions()).logsCommand(globalsOf(self), name, opts)
      );
  const inspect = (cmd: Command) =>
    cmd.description("Display detailed information on one or more containers")
      .argument("<containers...>", "names or ids")
      .option("-f, --format <template>", "format the output using a Go template, or json")
      .action(async (names, opts, self) =>
        setExitCode(await (await actions()).inspectCommand(globalsOf(self), names, opts))
      );
  const top = (cmd: Command) =>
    cmd.description("Display the running processes of a container")
      .argument("<container>", "name or id")
      .argument("[ps-options...]", "ps options: -ef (default), aux, -o pid,user,args, ...")
      .passThroughOptions()
      .allowUnknownOption()
      .action(async (name, psArgs, _opts, self) =>
        (await actions()).topCommand(globalsOf(self), name, psArgs)
      );
  const stats = (cmd: Command) =>
    cmd.description("Display resource usage of containers (memory, cpu, pids)")
      .argument("[containers...]", "names or ids (default: all running)")
      .option("--no-stream", "print one sample and exit (the only mode supported)")
      .option("--format <format>", FORMAT_HELP)
      .action(async (names, opts, self) =>
        (await actions()).statsCommand(globalsOf(self), names, opts)
      );
  const cp = (cmd: Command) =>
    cmd.description("Copy files between a container and the host (CONTAINER:PATH)")
      .argument("<source>", "CONTAINER:SRC_PATH or host path")
      .argument("<dest>", "CONTAINER:DEST_PATH or host path")
      .option("-a, --archive", "archive mode: copies into the container get its user's uid/gid")
      .addOption(new Option("--no-archive", "the default (also -a=false)").hideHelp())
      .action(async (src, dest, opts, self) =>
        (await actions()).cpCommand(globalsOf(self), src, dest, opts)
      );
  const exportCmd = (cmd: Command) =>
    cmd.description("Export a container's filesystem as a tar archive")
      .argument("<container>", "name or id")
      .option("-o, --output <file>", "write to a file instead of stdout")
      .action(async (name, opts, self) =>
        (await actions()).exportCommand(globalsOf(self), name, opts)
      );
  const diff = (cmd: Command) =>
    cmd.description("Inspect changes to files on a container's filesystem")
      .argument("<container>", "name or id")
      .action(async (name, _opts, self) => (await actions()).diffCommand(globalsOf(self), name));
  const prune = (cmd: Command) =>
    cmd.description("Remove all stopped containers")
      .option("-f, --force", "do not prompt for confirmation (there is no prompt)")
      .action(async (_opts, self) => (await actions()).pruneCommand(globalsOf(self)));

  const both: [string, (c: Command) => unknown][] = [
    ["create", create],
    ["start", start],
    ["stop", stop],
    ["restart", restart],
    ["kill", kill],
    ["pause", pause],
    ["unpause", unpause],
    ["rm", rm],
    ["wait", wait],
    ["ps", ps],
    ["logs", logs],
    ["top", top],
    ["stats", stats],
    ["cp", cp],
    ["export", exportCmd],
    ["diff", diff],
  ];
  for (const [name, define] of both) define(program.command(name));
  const container = program.command("container").description("Manage containers");
  for (const [name, define] of both) define(container.command(name));
  ps(container.command("ls").alias("list"));
  inspect(container.command("inspect"));
  prune(container.command("prune"));
  for (const c of container.commands) c.exitOverride().showHelpAfterError();

  // The entry point of a detached supervisor in a compiled tsbox (see container/lifecycle.ts).
  program.command("__supervise", { hidden: true })
    .argument("<root>")
    .argument("<id>")
    .action(async (root, id) => {
      const { superviseMain } = await import("../container/supervisor_main.ts");
      setExitCode(await superviseMain(root, id));
    });
}
