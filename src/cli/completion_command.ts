/**
 * `completion bash|zsh|fish` and the hidden `__complete KIND` the scripts call for names.
 * Declares flags only; the generator (completion.ts) and the name lister
 * (completion_names.ts) load when a command runs.
 *
 * @module
 */
import { Argument, type Command } from "commander";
import { globalsOf } from "./globals.ts";

/** Defines `completion` and `__complete` on the program (after every other command). */
export function defineCompletionCommand(program: Command): void {
  program.command("completion")
    .description("Print a shell completion script: source <(tsbox completion bash)")
    .addArgument(new Argument("<shell>", "bash, zsh or fish").choices(["bash", "zsh", "fish"]))
    .action(async (shell) => {
      const { completionScript } = await import("./completion.ts");
      const text = new TextEncoder().encode(completionScript(program, shell));
      for (let off = 0; off < text.length;) off += await Deno.stdout.write(text.subarray(off));
    })
    .exitOverride()
    .showHelpAfterError();
  program.command("__complete", { hidden: true })
    .argument("<kind>", "containers, images or volumes")
    .action(async (kind, _opts, self) => {
      const { printNames } = await import("./completion_names.ts");
      await printNames(globalsOf(self), kind);
    });
}
