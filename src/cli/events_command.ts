/**
 * `tsbox events` (and `system events`): docker's event stream, past events by `--since` and
 * `--until`, `--filter`, `--format`. Declares the flags; the work is in events_actions.ts.
 *
 * @module
 */
import type { Command } from "commander";
import { collectFilter } from "./filters.ts";
import { globalsOf } from "./globals.ts";

/** Defines `events` and `system events` on the program. */
export function defineEventsCommand(program: Command): void {
  const define = (cmd: Command) =>
    cmd.description("Get real time events from the server")
      .option("--since <time>", "show all events created since timestamp")
      .option("--until <time>", "stream events until this timestamp")
      .option(
        "-f, --filter <key=value>",
        "filter: container=, image=, event=, type=, label=, volume=, network= (repeatable)",
        collectFilter,
      )
      .option("--format <format>", "format the output using a Go template, or json")
      .action(async (opts, self) =>
        (await import("./events_actions.ts")).eventsCommand(globalsOf(self), opts)
      );
  define(program.command("events"));
  const system = (program.commands.find((c) => c.name() === "system") as Command | undefined) ??
    program.command("system").description("Manage tsbox");
  define(system.command("events"));
}
