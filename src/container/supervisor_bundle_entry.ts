/**
 * The entry point the supervisor's bundle is made from (supervisor_bundle.ts): the lazily
 * imported modules registered first, then the supervisor run as supervisor_main.ts runs it
 * (in a bundle only the entry is `import.meta.main`).
 *
 * @module
 */
import "./supervisor_bundle_lazy.ts";
import { superviseMain } from "./supervisor_main.ts";

if (import.meta.main) {
  const [root, id] = Deno.args;
  Deno.exit(await superviseMain(root, id));
}
