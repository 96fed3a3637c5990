/**
 * Bringing a network's host side up and down as one step each: bridge, IPv4 forwarding and
 * firewall elements, under the host-wide network lock.
 *
 * @module
 */
import { ensureBridge, ensureIpForward, removeBridge, withHostNetworkLock } from "./bridge.ts";
import { addNetworkRules, removeNetworkRules } from "./firewall.ts";
import type { NetworkRecord } from "./records.ts";

/**
 * Makes sure `net`'s bridge exists with its gateway address and is up, that the host forwards
 * IPv4 (networks with a route out) and that the firewall has the network's elements. Returns
 * the bridge's interface index.
 */
export function ensureNetworkUp(net: NetworkRecord): number {
  return withHostNetworkLock(() => {
    const index = ensureBridge(net);
    if (!net.internal) ensureIpForward();
    addNetworkRules(net);
    return index;
  });
}

/**
 * Removes what `net` has on the host: its firewall elements (the whole table with the last
 * network) and its bridge. Safe to repeat. IPv4 forwarding stays on, as docker leaves it.
 */
export function takeNetworkDown(net: NetworkRecord): void {
  withHostNetworkLock(() => {
    removeNetworkRules(net);
    removeBridge(net.bridge);
  });
}
