/**
 * `tsbox system boot`: start, after a reboot, the containers docker's daemon would start
 * (container/boot_start.ts). Meant for a boot unit (contrib/systemd/tsbox-boot.service).
 *
 * @module
 */
import type { Command } from "commander";
import { globalsOf } from "./globals.ts";

/**
 * Adds `boot` to the `system` command (made here when no other file made it first: another
 * file defines `system df`/`prune`, so this one only adds its subcommand).
 */
export function defineSystemBootCommand(program: Command): void {
  const found = program.commands.find((c) => c.name() === "system") as unknown as
    | Command
    | undefined;
  const system = found ?? program.command("system").description("Manage tsbox");
  const boot = system.command("boot")
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
  boot.exitOverride().showHelpAfterError();
  system.exitOverride();
}
