/**
 * `tsbox update [OPTIONS] CONTAINER...` (and `container update`), like `docker update`:
 * changes resource limits and the restart policy; prints each container as named. The work is
 * in src/container/update.ts.
 *
 * @module
 */
import type { Command } from "commander";
import { setExitCode } from "./exit.ts";
import { globalsOf } from "./globals.ts";

/** Defines `update` and `container update` on the program. */
export function defineUpdateCommand(program: Command): void {
  const define = (cmd: Command) =>
    cmd.description("Update configuration of one or more containers")
      .argument("<containers...>", "names or ids")
      .option("-m, --memory <bytes>", "memory limit")
      .option("--memory-swap <bytes>", "memory plus swap limit; -1 for unlimited")
      .option("--memory-reservation <bytes>", "memory soft limit")
      .option("--kernel-memory <bytes>", "kernel memory limit (deprecated: ignored, as docker)")
      .option("--cpus <n>", "number of CPUs")
      .option("-c, --cpu-shares <n>", "CPU shares (relative weight)")
      .option("--cpu-quota <us>", "CPU CFS quota in microseconds per period (-1: none)")
      .option("--cpu-period <us>", "CPU CFS period in microseconds")
      .option("--cpuset-cpus <list>", "CPUs the container may run on (0-3, 0,1)")
      .option("--cpuset-mems <list>", "memory nodes the container may use (0-3, 0,1)")
      .option("--pids-limit <n>", "limit on the number of processes (-1: unlimited)")
      .option("--blkio-weight <n>", "block IO weight, 10 to 1000 (0: none)")
      .option("--restart <policy>", "no, on-failure[:max-retries], always, unless-stopped")
      .action(async (names: string[], flags, self) => {
        const { updateCommand } = await import("./update_actions.ts");
        setExitCode(await updateCommand(globalsOf(self), names, flags));
      });
  define(program.command("update"));
  const container = program.commands.find((c) => c.name() === "container");
  if (container) define(container.command("update")).exitOverride().showHelpAfterError();
}
