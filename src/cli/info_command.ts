/**
 * `tsbox info`: cgroup layout, storage driver, security features in effect and the user
 * namespace mapping, as `docker info` reports them.
 *
 * @module
 */
import type { Command } from "commander";
import { printOne } from "./formats.ts";
import { globalsOf } from "./globals.ts";

/** Defines `info` and `version` on the program. */
export function defineInfoCommand(program: Command): void {
  program.command("info")
    .description("Display system-wide information")
    .option("-f, --format <template>", "format the output using a Go template, or json")
    .action(async (opts, cmd) => {
      const { infoData, infoText } = await import("./info_actions.ts");
      if (opts.format) await printOne(opts.format, await infoData(globalsOf(cmd)));
      else console.log(infoText(globalsOf(cmd)));
    });
  program.command("version")
    .description("Show the tsbox version information")
    .option("-f, --format <template>", "format the output using a Go template, or json")
    .action(async (opts) => {
      const { versionData, versionText } = await import("./info_actions.ts");
      if (opts.format) await printOne(opts.format, versionData());
      else console.log(versionText());
    });
}
