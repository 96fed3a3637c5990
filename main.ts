/**
 * tsbox's command line entry point: `tsbox COMMAND [ARGS...]`.
 *
 * @module
 */
import { runCli } from "./src/cli/mod.ts";

if (import.meta.main) {
  Deno.exit(await runCli(Deno.args));
}
