/**
 * `tsbox events [--since T] [--until T] [-f KEY=VALUE]... [--format F]` (and `system
 * events`), like `docker events`. The work is in events_actions.ts.
 *
 * @module
 */
import type { Command } from "commander";
import { collectFilter } from "./filters.ts";
import { FORMAT_HELP } from "./formats.ts";
import { globalsOf } from "./globals.ts";

/** Defines `events` and `system events` on the program. */
export function defineEventsCommand(program: Command): void {
  const define = (cmd: Command) =>
    cmd.description("Get real time events from tsbox")
      .option("--since <time>", "show events since a timestamp, unix time or duration (10m)")
      .option("--until <time>", "stream events until this timestamp")
      .option(
        "-f, --filter <key=value>",
        "container, image, event, type, label (repeatable)",
        collectFilter,
      )
      .option("--format <format>", FORMAT_HELP)
      .action(async (flags, self) => {
        const { eventsCommand } = await import("./events_actions.ts");
        await eventsCommand(globalsOf(self), flags);
      });
  define(program.command("events"));
  const system = program.commands.find((c) => c.name() === "system");
  if (system) define(system.command("events")).exitOverride().showHelpAfterError();
}
