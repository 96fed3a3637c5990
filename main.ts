/**
 * tsbox's command line entry point: `tsbox COMMAND [ARGS...]`.
 *
 * Start-up is most of what a short command costs, so this module loads almost nothing: the hot
 * command lines (src/cli/hot_parse.ts) run through src/cli/hot.ts without commander, everything
 * else (help and usage errors included) through commander in src/cli/mod.ts. Both are imported
 * by a computed name: Deno loads the module graph of every import it can read in the source
 * when the program starts, executed or not (about 9 ms for the CLI's ~200 modules), so literal
 * names here would make `--version` pay for all of them. compile.sh names them for
 * `deno compile` (--include).
 *
 * @module
 */
import type * as Cli from "./src/cli/mod.ts";
import type * as Hot from "./src/cli/hot.ts";
import type * as Rmtree from "./src/container/rmtree_main.ts";
import type * as Runc from "./src/runc/main.ts";
import { parseHot } from "./src/cli/hot_parse.ts";
import { VERSION } from "./src/version.ts";

/** Imports a module of this checkout by a name Deno does not read ahead (see above). */
function load<T>(path: string): Promise<T> {
  return import(new URL(path, import.meta.url).href);
}

if (import.meta.main) {
  const args = Deno.args;
  // Hidden mode of a compiled tsbox, run in a user namespace by src/container/rmtree.ts.
  if (args[0] === "__rmtree") {
    const { rmtreeMain } = await load<typeof Rmtree>("./src/container/rmtree_main.ts");
    Deno.exit(await rmtreeMain(args.slice(1)));
  }
  // `tsbox runc ...`: the OCI runtime with runc's command line (podman, containerd).
  if (args[0] === "runc") {
    const { runcMain } = await load<typeof Runc>("./src/runc/main.ts");
    Deno.exit(await runcMain(args.slice(1)));
  }
  const hot = parseHot(args);
  if (hot?.kind === "version") {
    console.log(VERSION); // what commander's version option prints
    Deno.exit(0);
  }
  Deno.exit(
    hot
      ? await (await load<typeof Hot>("./src/cli/hot.ts")).runHot(hot, args)
      : await (await load<typeof Cli>("./src/cli/mod.ts")).runCli(args),
  );
}
