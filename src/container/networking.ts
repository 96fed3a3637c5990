/**
 * The container side of bridge networks, kept apart from the start/stop code: what `create`
 * records (`--network NAME`, `--ip`, `--network-alias`, `--dns*`, `--add-host`) and the two
 * calls a supervisor makes around each run (connect before PID 1 is released, disconnect once it
 * has ended). `private`, `none` and `host` containers without resolver flags load none of it.
 *
 * @module
 */
import type { Store } from "../store/mod.ts";
import { isRootless } from "../runtime/rootless.ts";
import {
  bridgeNetworkName,
  type NetConfig,
  type NetFlags,
  planNetConfig,
} from "../network/endpoints.ts";
import { containerDir } from "./paths.ts";
import type { ContainerRecord } from "./state.ts";

/**
 * The network settings to record for a new container, or undefined when it needs none. As
 * root `default`/`bridge` is the default bridge network; rootless it stays the `private`
 * namespace (no pasta yet).
 */
export async function netConfigFrom(
  store: Store,
  flags: NetFlags,
): Promise<NetConfig | undefined> {
  const bridged = !isRootless();
  const wanted = bridgeNetworkName(flags.network, bridged) !== undefined ||
    flags.ip !== undefined ||
    (flags.networkAlias?.length ?? 0) > 0 || (flags.dns?.length ?? 0) > 0 ||
    (flags.dnsSearch?.length ?? 0) > 0 || (flags.dnsOption?.length ?? 0) > 0 ||
    (flags.addHost?.length ?? 0) > 0;
  if (!wanted) return undefined;
  const { ensureDefaultNetwork, findNetwork, foreignForwardDrops, forwardDropWarning } =
    await import("../network/mod.ts");
  const net = planNetConfig(store, flags, bridged, ensureDefaultNetwork);
  // Another table's forward chain that drops by policy (docker's) would silently cut the
  // container off: said once here, at run and create, as `info` says it.
  const routed = (net?.endpoints ?? []).map((e) => findNetwork(store, e.networkId))
    .filter((n) => n !== undefined && !n.internal).map((n) => n!.subnet);
  if (routed.length > 0) {
    const drops = foreignForwardDrops();
    if (drops.length > 0) console.error(forwardDropWarning(drops, routed));
  }
  return net;
}

/** What a supervisor calls around one run of a container. */
export interface NetworkHooks {
  /** PID 1 sits in its new network namespace and is not released yet. */
  connect(pid: number): void;
  /** PID 1 has ended (or the start failed after connect). */
  disconnect(): void;
}

/** The hooks for `c`, or undefined when it has no network settings of tsbox's to apply. */
export async function networkHooks(
  store: Store,
  c: ContainerRecord,
): Promise<NetworkHooks | undefined> {
  const net = c.config.net;
  if (!net) return undefined;
  const { connectContainer, disconnectContainer } = await import("../network/connect.ts");
  const subject = {
    id: c.id,
    hostname: c.config.hostname,
    stateDir: containerDir(store.root, c.id),
    net,
  };
  return {
    connect: (pid) => void connectContainer(store, subject, pid),
    disconnect: () => void disconnectContainer(store, c.id),
  };
}
