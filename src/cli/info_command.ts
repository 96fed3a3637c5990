/**
 * `tsbox info`: cgroup layout, storage driver, security features in effect and the user
 * namespace mapping, as `docker info` reports them.
 *
 * @module
 */
import type { Command } from "commander";
import { globalsOf } from "./globals.ts";

/** Defines `info` on the program. */
export function defineInfoCommand(program: Command): void {
  program.command("info")
    .description("Display system-wide information")
    .action(async (_opts, cmd) => {
      const { infoText } = await import("./info_actions.ts");
      console.log(infoText(globalsOf(cmd)));
    });
}
