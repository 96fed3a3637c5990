/**
 * `tsbox rename CONTAINER NEW_NAME` (and `container rename`), like `docker rename`: silent on
 * success; a refusal is told as docker's client tells it, the daemon's reason and then
 * `Error: failed to rename container named OLD`, exit 1. The work is in
 * src/container/rename.ts (shared with the Engine API).
 *
 * @module
 */
import type { Command } from "commander";
import { setExitCode } from "./exit.ts";
import { globalsOf } from "./globals.ts";
import { commandPath } from "./usage.ts";

/** Defines `rename` and `container rename` on the program. */
export function defineRenameCommand(program: Command): void {
  const define = (cmd: Command) =>
    cmd.description("Rename a container")
      .argument("[container]", "name or id")
      .argument("[new_name]", "the new name")
      // docker's own arity message (exit 1), not commander's.
      .allowExcessArguments()
      .action(async (_old, _new, _flags, self) => {
        const args = self.args;
        if (args.length !== 2) {
          const path = commandPath(self);
          console.error(
            `"${path}" requires exactly 2 arguments.\nSee '${path} --help'.\n\n` +
              `Usage:  ${path} CONTAINER NEW_NAME\n\nRename a container`,
          );
          setExitCode(1);
          return;
        }
        const oldName = args[0].trim();
        const newName = args[1].trim();
        if (oldName === "" || newName === "") {
          console.error("Error: Neither old nor new names may be empty");
          setExitCode(1);
          return;
        }
        const [{ renameContainer }, { TsboxError }, { withStore }] = await Promise.all([
          import("../container/rename.ts"),
          import("../errors.ts"),
          import("./with_store.ts"),
        ]);
        await withStore(globalsOf(self), async (store) => {
          try {
            await renameContainer(store, oldName, newName);
          } catch (err) {
            if (!(err instanceof TsboxError)) throw err;
            console.error(`Error response from daemon: ${err.message}`);
            console.error(`Error: failed to rename container named ${oldName}`);
            setExitCode(1);
          }
        });
      });
  define(program.command("rename"));
  const container = program.commands.find((c) => c.name() === "container");
  if (container) define(container.command("rename")).exitOverride().showHelpAfterError();
}
