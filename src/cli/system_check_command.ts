/**
 * `system check [--repair]`: declares the command only; the work is in
 * system_check_actions.ts, loaded when it runs. Added to the `system` command that
 * system_commands.ts may have defined already, or defining it.
 *
 * @module
 */
import type { Command } from "commander";
import { setExitCode } from "./exit.ts";
import { globalsOf } from "./globals.ts";

/** Defines `system check` (call it after any other definer of `system`). */
export function defineSystemCheckCommand(program: Command): void {
  const found = program.commands.find((c) => c.name() === "system") as unknown as
    | Command
    | undefined;
  const system = found ?? program.command("system").description("Manage tsbox");
  system.command("check")
    .description(
      "Find what the store holds that its database does not know, and records whose files are gone",
    )
    .option("--repair", "remove the leftovers found (never what a running tsbox works on)")
    .action(async (opts: { repair?: boolean }, self: Command) => {
      const { systemCheck } = await import("./system_check_actions.ts");
      setExitCode(await systemCheck(globalsOf(self), opts.repair ?? false));
    });
  system.exitOverride();
  for (const c of system.commands) c.exitOverride();
}
