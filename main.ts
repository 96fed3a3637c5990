/**
 * tsbox's command line entry point: `tsbox COMMAND [ARGS...]`.
 *
 * @module
 */
import { runCli } from "./src/cli/mod.ts";

if (import.meta.main) {
  // Hidden mode of a compiled tsbox, run in a user namespace by src/container/rmtree.ts.
  if (Deno.args[0] === "__rmtree") {
    const { rmtreeMain } = await import("./src/container/rmtree_main.ts");
    Deno.exit(await rmtreeMain(Deno.args.slice(1)));
  }
  Deno.exit(await runCli(Deno.args));
}
