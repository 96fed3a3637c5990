/**
 * The store a command works on, opened from the global options and closed however the command
 * ends.
 *
 * @module
 */
import { Store } from "../store/mod.ts";
import type { GlobalOptions } from "./globals.ts";

/** Runs `fn` on the store of `g.root`, closing it afterwards. */
export async function withStore<T>(
  g: GlobalOptions,
  fn: (store: Store) => Promise<T> | T,
): Promise<T> {
  const store = await Store.open(g.root, { warn: (message) => console.error(message) });
  try {
    return await fn(store);
  } finally {
    store.close();
  }
}
