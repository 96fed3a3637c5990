/**
 * Names for shell completion (`tsbox __complete containers|images|volumes`): one per line,
 * read from the state database. Prints nothing rather than failing, and never creates a store:
 * a tab press must not leave directories behind or print errors into the command line.
 *
 * @module
 */
import { join } from "../path.ts";
import { Store } from "../store/mod.ts";
import { familiar } from "../image/images.ts";
import type { GlobalOptions } from "./globals.ts";

const QUERIES: Record<string, string> = {
  containers: "SELECT name FROM containers ORDER BY name",
  images: "SELECT name FROM tags ORDER BY name",
  volumes: "SELECT name FROM volumes ORDER BY name",
};

/** Prints the names of `kind` in the store of `g`. */
export async function printNames(g: GlobalOptions, kind: string): Promise<void> {
  const sql = QUERIES[kind];
  if (!sql) return;
  let store: Store;
  try {
    await Deno.stat(join(g.root, "tsbox.db"));
    store = await Store.open(g.root);
  } catch {
    return; // no store here, or not ours to read
  }
  try {
    const names = store.db.all<{ name: string }>(sql).map((r) => r.name);
    const out = kind === "images" ? names.map(familiar) : names;
    if (out.length > 0) console.log(out.join("\n"));
  } catch {
    // A store being migrated or locked: no names this time.
  } finally {
    store.close();
  }
}
