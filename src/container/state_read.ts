/**
 * The containers as the read-only commands (`ps`, `inspect`) see them: the same answers as
 * state.ts's {@link listContainers} and {@link findContainer}, which reconcile every row they
 * read with its processes. Most of the time there is nothing to reconcile (the boot marker is
 * current and every row is settled, state_rows.ts), and then the rows are returned as read
 * without loading state.ts, whose reconciling pulls in the code that unmounts, removes cgroups
 * and disconnects networks. Otherwise state.ts is loaded and does all of it, as for any other
 * command.
 *
 * @module
 */
import { lazyImport } from "../lazy.ts";
import type { Store } from "../store/mod.ts";
import { bootMarkerCurrent } from "./boot_marker.ts";
import type { ContainerRecord } from "./state.ts";
import { allRows, AmbiguousContainerError, isSettled, lookupRow } from "./state_rows.ts";

/** state.ts, loaded when a row needs reconciling (by a computed name: see src/lazy.ts). */
const full = () => lazyImport<typeof import("./state.ts")>(new URL("./state.ts", import.meta.url));

/** Every container, newest first, reconciled: {@link listContainers}. */
export async function readContainers(store: Store): Promise<ContainerRecord[]> {
  if (bootMarkerCurrent(store.root)) {
    const rows = allRows(store);
    if (rows.every(isSettled)) return rows;
  }
  return (await full()).listContainers(store);
}

/**
 * A container by name, full id or unique id prefix, reconciled: {@link findContainer}
 * (undefined for no match and for a prefix of several).
 */
export async function readContainer(
  store: Store,
  ref: string,
): Promise<ContainerRecord | undefined> {
  if (bootMarkerCurrent(store.root)) {
    try {
      const row = lookupRow(store, ref);
      if (row === undefined || isSettled(row)) return row;
    } catch (err) {
      if (err instanceof AmbiguousContainerError) return undefined;
      throw err;
    }
  }
  return (await full()).findContainer(store, ref);
}
