/**
 * Bridge networks: the default `bridge` network and user networks (`network create`), each a
 * Linux bridge with a subnet, addresses leased to containers in the state database, and elements
 * in tsbox's nftables table (masquerade, forwarding, isolation). A network's host side is made
 * when the first container attaches (netavark's way) and removed with the network.
 *
 * Small steps, one module each: cidr.ts (addresses), records.ts (the `networks` table), ipam.ts
 * (leases), bridge.ts (bridge, ip_forward, host routes, host lock), firewall.ts (nftables),
 * setup.ts (up/down), attach.ts (a container's veth pair).
 *
 * @module
 */
import { TsboxError, UsageError } from "../errors.ts";
import type { Store } from "../store/mod.ts";
import { Netlink } from "../../ffi/netlink.ts";
import {
  DEFAULT_POOLS,
  formatIPv4,
  formatSubnet,
  overlaps,
  parseHostAddress,
  parseSubnet,
  pickSubnet,
  type Subnet,
} from "./cidr.ts";
import { hostSubnets, hostSubnets6, withHostNetworkLock } from "./bridge.ts";
import { type Lease, leasesOf } from "./ipam.ts";
import {
  DEFAULT_NETWORK,
  deleteNetworkRecord,
  findNetwork,
  insertNetwork,
  listNetworkRecords,
  NETWORK_NAME,
  NetworkExistsError,
  type NetworkRecord,
  newNetworkId,
  PREDEFINED,
  recordedSubnets,
  requireNetwork,
  SubnetOverlapError,
} from "./records.ts";
import { bringNetworkUp, takeNetworkDown } from "./setup.ts";
import {
  addressAt6,
  contains6,
  formatIPv6,
  formatSubnet6,
  overlaps6,
  parseIPv6,
  parseSubnet6,
  ulaFor,
} from "./cidr6.ts";

export { attachContainer, type Attachment, detachContainer, type NetnsTarget } from "./attach.ts";
export { address6Of, type Lease, leasesHeldBy, leasesOf } from "./ipam.ts";
export {
  DEFAULT_NETWORK,
  findNetwork,
  NetworkExistsError,
  type NetworkRecord,
  PREDEFINED,
  requireNetwork,
} from "./records.ts";
export { ensureNetworkUp, takeNetworkDown } from "./setup.ts";
export { foreignForwardDrops, forwardDropWarning } from "./firewall.ts";
export { ipForwarding } from "./bridge.ts";

/** The default network's bridge, as docker's docker0. */
export const DEFAULT_BRIDGE = "tsbox0";

/** `network rm` of a network a container still uses. */
export class NetworkInUseError extends TsboxError {
  constructor(readonly network: string, readonly holders: readonly string[]) {
    super(
      `error while removing network: network ${network} has active endpoints ` +
        `(${holders.map((h) => h.slice(0, 12)).join(", ")})`,
    );
    this.name = "NetworkInUseError";
  }
}

/** What `network create` takes. */
export interface CreateNetworkOptions {
  readonly name: string;
  /** IPv4 CIDR; default: the next free subnet of the pool. */
  readonly subnet?: string;
  /** Default: the subnet's first address. */
  readonly gateway?: string;
  readonly internal?: boolean;
  /** `--ipv6`: an IPv6 subnet too (a unique local /64 unless {@link subnet6} is given). */
  readonly ipv6?: boolean;
  /** IPv6 CIDR (implies {@link ipv6}). */
  readonly subnet6?: string;
  /** The bridge's IPv6 address; default: the IPv6 subnet's first address. */
  readonly gateway6?: string;
  readonly labels?: Readonly<Record<string, string>>;
}

function bridgeNameFor(id: string): string {
  return `tsbox-${id.slice(0, 8)}`;
}

/** Subnets in use: other networks' and the host's routes, with what uses each. */
function takenSubnets(store: Store): { subnet: Subnet; what: string }[] {
  return [
    ...recordedSubnets(store).map((n) => ({
      subnet: n.subnet,
      what: `network ${n.name}'s subnet ${formatSubnet(n.subnet)}`,
    })),
    ...hostSubnets(),
  ];
}

function chooseSubnet(store: Store, requested: string | undefined): Subnet {
  const taken = takenSubnets(store);
  if (requested !== undefined) {
    const subnet = parseSubnet(requested);
    const clash = taken.find((t) => overlaps(t.subnet, subnet));
    if (clash) throw new SubnetOverlapError(requested, clash.what);
    return subnet;
  }
  const picked = pickSubnet(DEFAULT_POOLS, taken.map((t) => t.subnet));
  if (!picked) {
    throw new TsboxError(
      "no free subnet left in tsbox's pool 10.90.0.0/15: remove unused networks or give --subnet",
    );
  }
  return picked;
}

/** Creates a user network (as root with its bridge; rootless a record only). */
export function createNetwork(store: Store, o: CreateNetworkOptions): NetworkRecord {
  if (PREDEFINED.has(o.name)) {
    throw new UsageError(`${o.name} is a pre-defined network and cannot be created`);
  }
  if (!NETWORK_NAME.test(o.name)) {
    throw new UsageError(
      `invalid network name ${JSON.stringify(o.name)}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`,
    );
  }
  if (findNetwork(store, o.name)?.name === o.name) {
    throw new NetworkExistsError(o.name);
  }
  if (o.gateway !== undefined && o.subnet === undefined) {
    throw new UsageError("--gateway needs --subnet");
  }
  if (Deno.uid() !== 0) return recordNetwork(store, o);
  // As root the subnet is chosen under the host network lock and the bridge made at once (as
  // docker does), so that its route claims the subnet: another store choosing meanwhile sees it.
  return withHostNetworkLock(() => {
    const net = recordNetwork(store, o);
    try {
      bringNetworkUp(net, store.root);
    } catch {
      // Without libnftables, say: the first attach says why the network cannot be used.
    }
    return net;
  });
}

function recordNetwork(store: Store, o: CreateNetworkOptions): NetworkRecord {
  const subnet = chooseSubnet(store, o.subnet);
  const gateway = o.gateway === undefined
    ? subnet.base + 1
    : parseHostAddress(o.gateway, subnet, "--gateway");
  const id = newNetworkId();
  return insertNetwork(store, {
    id,
    name: o.name,
    bridge: bridgeNameFor(id),
    subnet: formatSubnet(subnet),
    gateway: formatIPv4(gateway),
    internal: o.internal ?? false,
    ...ipv6Of(id, subnet, o),
    labels: { ...(o.labels ?? {}) },
  });
}

/**
 * The IPv6 side of a network made with `--ipv6` (or given an IPv6 subnet): that subnet or a
 * unique local /64 of its own, and the gateway (the subnet's first address by default). It must
 * hold an address for every host number of the IPv4 subnet (cidr6.ts).
 */
function ipv6Of(
  id: string,
  subnet: Subnet,
  o: CreateNetworkOptions,
): { subnet6?: string; gateway6?: string } {
  if (!o.ipv6 && o.subnet6 === undefined) {
    if (o.gateway6 !== undefined) throw new UsageError("an IPv6 --gateway needs an IPv6 --subnet");
    return {};
  }
  if (o.gateway6 !== undefined && o.subnet6 === undefined) {
    throw new UsageError("an IPv6 --gateway needs an IPv6 --subnet");
  }
  const s6 = o.subnet6 !== undefined ? parseSubnet6(o.subnet6) : ulaFor(id);
  if (Deno.uid() === 0) {
    const clash = hostSubnets6().find((h) => overlaps6(h.subnet, s6));
    if (clash) throw new SubnetOverlapError(formatSubnet6(s6), clash.what);
  }
  if (128 - s6.prefix < 32 - subnet.prefix) {
    throw new UsageError(
      `IPv6 subnet ${formatSubnet6(s6)} is smaller than IPv4 subnet ${formatSubnet(subnet)}: ` +
        `it needs a host for every IPv4 address`,
    );
  }
  let gateway6 = addressAt6(s6, 1);
  if (o.gateway6 !== undefined) {
    const g = parseIPv6(o.gateway6);
    if (g === undefined || !contains6(s6, g) || g === s6.base) {
      throw new UsageError(`--gateway ${o.gateway6} is not a host address of ${o.subnet6}`);
    }
    gateway6 = formatIPv6(g);
  }
  return { subnet6: formatSubnet6(s6), gateway6 };
}

/**
 * The default `bridge` network, recorded on first use: the next free subnet of the pool, bridge
 * `tsbox0` (or `tsbox-<id>` when another store on this host has `tsbox0` already). As root the
 * choice is made under the host network lock and the bridge made at once, so that two stores
 * recording theirs at the same time see each other's route and never pick one subnet.
 */
export function ensureDefaultNetwork(store: Store): NetworkRecord {
  const found = findNetwork(store, DEFAULT_NETWORK);
  if (found) return found;
  if (Deno.uid() !== 0) return recordDefaultNetwork(store);
  return withHostNetworkLock(() => {
    const net = recordDefaultNetwork(store);
    try {
      bringNetworkUp(net, store.root);
    } catch {
      // Without libnftables, say: `network ls` still lists it; the first attach says why not.
    }
    return net;
  });
}

function recordDefaultNetwork(store: Store): NetworkRecord {
  const again = findNetwork(store, DEFAULT_NETWORK);
  if (again) return again;
  const subnet = chooseSubnet(store, undefined);
  const id = newNetworkId();
  const nl = Netlink.open();
  let bridge = DEFAULT_BRIDGE;
  try {
    if (nl.link(DEFAULT_BRIDGE)) bridge = bridgeNameFor(id);
  } finally {
    nl.close();
  }
  try {
    return insertNetwork(store, {
      id,
      name: DEFAULT_NETWORK,
      bridge,
      subnet: formatSubnet(subnet),
      gateway: formatIPv4(subnet.base + 1),
      internal: false,
      labels: {},
    });
  } catch (err) {
    // Another process recorded it meanwhile.
    const now = findNetwork(store, DEFAULT_NETWORK);
    if (now) return now;
    throw err;
  }
}

/** Every network (the default one recorded first if it was not yet). */
export function listNetworks(store: Store): NetworkRecord[] {
  ensureDefaultNetwork(store);
  return listNetworkRecords(store);
}

/**
 * Removes a user network: refused for the predefined ones and while an address is leased on it;
 * its bridge and firewall elements go first, then its record.
 */
export function removeNetwork(store: Store, ref: string): NetworkRecord {
  if (PREDEFINED.has(ref)) {
    throw new UsageError(`${ref} is a pre-defined network and cannot be removed`);
  }
  const net = requireNetwork(store, ref);
  if (net.name === DEFAULT_NETWORK) {
    throw new UsageError(`${net.name} is a pre-defined network and cannot be removed`);
  }
  const leases: Lease[] = leasesOf(store, net.id);
  if (leases.length > 0) throw new NetworkInUseError(net.name, leases.map((l) => l.holder));
  takeNetworkDown(net, store.root);
  deleteNetworkRecord(store, net.id);
  return net;
}

/** Removes every user network without leases; returns their names. */
export function pruneNetworks(store: Store): string[] {
  const removed: string[] = [];
  for (const net of listNetworkRecords(store)) {
    if (net.name === DEFAULT_NETWORK || leasesOf(store, net.id).length > 0) continue;
    removeNetwork(store, net.id);
    removed.push(net.name);
  }
  return removed;
}
