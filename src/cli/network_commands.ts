/**
 * `network create|ls|inspect|rm|prune|connect|disconnect`. Declares flags only; the work is in network_actions.ts,
 * loaded when a command runs.
 *
 * @module
 */
import type { Command } from "commander";
import { setExitCode } from "./exit.ts";
import { FORMAT_HELP } from "./formats.ts";
import { globalsOf } from "./globals.ts";

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

const actions = () => import("./network_actions.ts");

/** Defines `network` and its subcommands on the program. */
export function defineNetworkCommands(program: Command): void {
  const network = program.command("network").description("Manage networks");
  network.command("create")
    .description("Create a bridge network")
    .argument("<name>", "network name")
    .option("-d, --driver <driver>", "network driver (only bridge)", "bridge")
    .option(
      "--subnet <cidr>",
      "IPv4 subnet (default: the next free /24 of 10.90.0.0/15); again for an IPv6 one",
      collect,
    )
    .option("--gateway <ip>", "the bridge's address (default: the subnet's first)", collect)
    .option("--ipv6", "IPv6 too (a unique local /64 unless an IPv6 --subnet is given)")
    .option("--internal", "no route out: containers reach only each other")
    .option("--label <key=value>", "set metadata on the network (repeatable)", collect)
    .action(async (name, opts, self) =>
      (await actions()).networkCreateCommand(globalsOf(self), name, opts)
    );
  network.command("ls").alias("list")
    .description("List networks")
    .option("-q, --quiet", "only display network ids")
    .option("--no-trunc", "do not truncate the ids")
    .option("--format <format>", FORMAT_HELP)
    .action(async (opts, self) => (await actions()).networkLsCommand(globalsOf(self), opts));
  network.command("inspect")
    .description("Display detailed information on one or more networks")
    .argument("<names...>", "network names or ids")
    .option("-f, --format <template>", "format the output using a Go template, or json")
    .action(async (names, opts, self) =>
      setExitCode(await (await actions()).networkInspectCommand(globalsOf(self), names, opts))
    );
  network.command("rm").alias("remove")
    .description("Remove one or more networks (refused while a container uses one)")
    .argument("<names...>", "network names or ids")
    .action(async (names, _opts, self) =>
      setExitCode(await (await actions()).networkRmCommand(globalsOf(self), names))
    );
  network.command("prune")
    .description("Remove all networks no container uses")
    .option("-f, --force", "do not prompt for confirmation")
    .action(async (opts, self) =>
      setExitCode(await (await actions()).networkPruneCommand(globalsOf(self), opts))
    );
  network.command("connect")
    .description("Connect a container to a network")
    .argument("<network>", "network name or id")
    .argument("<container>", "container name or id")
    .option("--alias <name>", "another name on the network (repeatable)", collect)
    .option("--ip <address>", "IPv4 address (default: the next free one)")
    .option("--ip6 <address>", "IPv6 address (networks made with --ipv6)")
    .action(async (net, container, opts, self) =>
      (await actions()).networkConnectCommand(globalsOf(self), net, container, opts)
    );
  network.command("disconnect")
    .description("Disconnect a container from a network")
    .argument("<network>", "network name or id")
    .argument("<container>", "container name or id")
    .option("-f, --force", "no error when it is not connected")
    .action(async (net, container, opts, self) =>
      (await actions()).networkDisconnectCommand(globalsOf(self), net, container, opts)
    );
  network.exitOverride().showHelpAfterError();
  for (const cmd of network.commands) cmd.exitOverride().showHelpAfterError();
}
