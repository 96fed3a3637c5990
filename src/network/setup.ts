/**
 * Bringing a network's host side up and down as one step each: bridge, IPv4 forwarding and
 * firewall elements, under the host-wide network lock.
 *
 * @module
 */
import { Netlink } from "../../ffi/netlink.ts";
import { IFF_UP } from "../../ffi/netlink_msg.ts";
import {
  ensureBridge,
  ensureIp6Forward,
  ensureIpForward,
  removeBridge,
  withHostNetworkLock,
} from "./bridge.ts";
import { addNetworkRules, removeNetworkRules, tableExists } from "./firewall.ts";
import { absoluteRoot, parseOwnerAlias, reapOrphanBridges } from "./owners.ts";
import type { NetworkRecord } from "./records.ts";

/**
 * {@link ensureNetworkUp}'s work, for a caller that holds the host network lock. The firewall
 * elements come before the bridge is up, so that a bridge found up implies its elements. Bridges
 * of stores that are gone are removed first (owners.ts): their subnets become free again.
 * `owner` is the root of the store `net` belongs to, written on its bridge.
 */
export function bringNetworkUp(net: NetworkRecord, owner?: string): number {
  reapOrphanBridges();
  if (!net.internal) ensureIpForward();
  if (!net.internal && net.subnet6 !== undefined) ensureIp6Forward();
  addNetworkRules(net);
  return ensureBridge({ ...net, owner });
}

/**
 * Makes sure `net`'s bridge exists with its gateway address and is up, that the host forwards
 * IPv4 (networks with a route out) and that the firewall has the network's elements. Returns
 * the bridge's interface index. `owner`: the store's root (see {@link bringNetworkUp}).
 */
export function ensureNetworkUp(net: NetworkRecord, owner?: string): number {
  return withHostNetworkLock(() => bringNetworkUp(net, owner));
}

/**
 * The start path's cheap check: the bridge's index when it is there and up and tsbox's table
 * exists (two queries, no lock, nothing written); undefined when {@link ensureNetworkUp} is due.
 */
export function readyBridge(nl: Netlink, net: NetworkRecord): number | undefined {
  const link = nl.link(net.bridge);
  if (!link || link.kind !== "bridge" || (link.flags & IFF_UP) === 0) return undefined;
  return tableExists() ? link.index : undefined;
}

/**
 * Removes what `net` has on the host: its firewall elements (the whole table with the last
 * network) and its bridge. Safe to repeat. IPv4 forwarding stays on, as docker leaves it.
 * `owner`, the store's root: a bridge of that name whose alias names another store is that
 * store's (its `tsbox0`, made after this store's went) and is left alone, with its elements.
 */
export function takeNetworkDown(net: NetworkRecord, owner?: string): void {
  withHostNetworkLock(() => {
    if (owner !== undefined && !ownedBy(net.bridge, owner)) return;
    removeNetworkRules(net);
    removeBridge(net.bridge);
  });
}

/** Whether bridge `name` is absent, has no owner alias, or names `root` as its owner. */
function ownedBy(name: string, root: string): boolean {
  const nl = Netlink.open();
  try {
    const alias = parseOwnerAlias(nl.link(name)?.alias);
    return alias === undefined || alias.root === absoluteRoot(root);
  } finally {
    nl.close();
  }
}
