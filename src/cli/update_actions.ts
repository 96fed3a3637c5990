/**
 * `update`'s work for the command line: each container updated in turn, errors printed as
 * docker prints them, exit code 1 if any failed.
 *
 * @module
 */
import { TsboxError } from "../errors.ts";
import { requireContainer } from "../container/state.ts";
import { assertSomeFlag, updateContainer, type UpdateFlags } from "../container/update.ts";
import { Store } from "../store/mod.ts";
import type { GlobalOptions } from "./globals.ts";

/** Runs `tsbox update`; returns its exit code. */
export async function updateCommand(
  g: GlobalOptions,
  names: string[],
  flags: UpdateFlags,
): Promise<number> {
  try {
    assertSomeFlag(flags);
  } catch (err) {
    // docker's CLI refuses this itself, with exit code 1 (not a flag error's 125).
    console.error((err as Error).message);
    return 1;
  }
  const store = await Store.open(g.root);
  try {
    let failed = 0;
    for (const name of names) {
      try {
        await updateContainer(
          store,
          requireContainer(store, name),
          flags,
          (message) => console.error(`WARNING: ${message}`),
        );
        console.log(name);
      } catch (err) {
        if (!(err instanceof TsboxError)) throw err;
        console.error(`Error response from daemon: ${err.message}`);
        failed = 1;
      }
    }
    return failed;
  } finally {
    store.close();
  }
}
