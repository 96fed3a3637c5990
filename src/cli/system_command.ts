/**
 * `tsbox system boot`: start, after a reboot, the containers docker's daemon would start
 * (container/boot_start.ts). Meant for a boot unit (contrib/systemd/tsbox-boot.service).
 *
 * @module
 */
import type { Command } from "commander";
import { globalsOf } from "./globals.ts";

/** Defines `system` and its `boot` subcommand on the program. */
export function defineSystemCommand(program: Command): void {
  const system = program.command("system").description("Manage tsbox");
  system.command("boot")
    .description(
      "Start the containers whose restart policy brings them back after a reboot (exits 0 when it started what it could)",
    )
    .action(async (_opts, cmd) => {
      const { Store } = await import("../store/mod.ts");
      const { bootContainers } = await import("../container/boot_start.ts");
      const store = await Store.open(globalsOf(cmd).root);
      try {
        const report = await bootContainers(store);
        for (const name of report.started) console.log(name);
        for (const f of report.failed) console.error(`tsbox: system boot: ${f.name}: ${f.error}`);
      } finally {
        store.close();
      }
    });
  system.commands.forEach((c) => c.exitOverride());
  system.exitOverride();
}
