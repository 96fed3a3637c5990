/**
 * Undoing a container's networks (network/connect.ts's disconnectContainer) without loading the
 * network stack for containers that never had one. The stack is some forty modules (netlink,
 * nftables, DNS, outbound helpers) that `run --network none`, `ps` and every supervisor of such
 * a container would otherwise read and keep resident. A container holds network state exactly
 * when it has an address lease or an outbound helper's pid file; anything else of the stack
 * (DNS watches, helper children) lives only in a process that has loaded it.
 *
 * Reaping runs inside a synchronous transaction, so the stack cannot be imported there: every
 * store of a process that loaded this module, whether opened before or after, has loaded it
 * when any container of the store holds network state ({@link preloadForStore}, a Store open
 * hook awaited at the top level here).
 *
 * @module
 */
import { TsboxError } from "../errors.ts";
import { lazyImport } from "../lazy.ts";
import { Store } from "../store/mod.ts";
import { containerDir } from "./paths.ts";

type Connect = typeof import("../network/connect.ts");

/** The outbound helpers' pid files (network/pasta.ts, network/slirp4netns.ts). */
const OUTBOUND_PID_FILES = ["pasta.pid", "slirp4netns.pid"];

let connect: Connect | undefined;

/** The network stack was needed in a synchronous path of a process that had not loaded it. */
export class NetworkNotLoadedError extends TsboxError {
  constructor(readonly containerId: string) {
    super(`container ${containerId.slice(0, 12)}: its networks could not be released here`);
    this.name = "NetworkNotLoadedError";
  }
}

/** Loads network/connect.ts (once). */
export async function loadNetworkStack(): Promise<Connect> {
  return connect ??= await lazyImport<Connect>(new URL("../network/connect.ts", import.meta.url));
}

/** Whether container `id` holds anything that disconnectContainer undoes. */
export function holdsNetwork(store: Store, id: string): boolean {
  if (connect) return true; // loaded: it may also hold in-process state (DNS watches, helpers)
  if (store.db.get("SELECT 1 AS x FROM network_leases WHERE holder = ? LIMIT 1", id)) return true;
  const dir = containerDir(store.root, id);
  return OUTBOUND_PID_FILES.some((f) => {
    try {
      Deno.lstatSync(`${dir}/${f}`);
      return true;
    } catch {
      return false;
    }
  });
}

/** disconnectContainer for a caller that cannot wait; throws when the stack is needed but not loaded. */
export function releaseNetworkSync(store: Store, id: string): void {
  if (connect) {
    connect.disconnectContainer(store, id);
    return;
  }
  if (holdsNetwork(store, id)) throw new NetworkNotLoadedError(id);
}

/** disconnectContainer, loading the stack only when container `id` holds network state. */
export async function releaseNetwork(store: Store, id: string): Promise<void> {
  if (!holdsNetwork(store, id)) return;
  (await loadNetworkStack()).disconnectContainer(store, id);
}

/** Loads the stack when any container of `store` holds network state (or may, outbound). */
async function preloadForStore(store: Store): Promise<void> {
  if (connect) return;
  let held: unknown;
  try {
    held = store.db.get("SELECT 1 AS x FROM network_leases LIMIT 1") ??
      store.db.get(`SELECT 1 AS x FROM containers WHERE config LIKE '%"outbound"%' LIMIT 1`);
  } catch {
    held = true; // cannot tell (busy, closed): have it
  }
  if (held) await loadNetworkStack();
}

await Store.addOpenHook(preloadForStore);
