/**
 * A network's bridge on the host: made (with the gateway address, up) when the network is first
 * used, removed with the network; IPv4 forwarding turned on; the host's routed subnets read so
 * that a new subnet collides with none. Bridges, their rules and the firewall table are the
 * host's, shared by every tsbox store on it, so changes to them are made under one host-wide lock.
 *
 * @module
 */
import { Netlink, NetlinkError, type Route } from "../../ffi/netlink.ts";
import { TsboxError } from "../errors.ts";
import { formatSubnet, maskOf, overlaps, parseIPv4, parseSubnet, type Subnet } from "./cidr.ts";
import { ownerAlias } from "./owners.ts";
import { formatSubnet6, parseIPv6, type Subnet6 } from "./cidr6.ts";
import { AF_INET6 } from "../../ffi/netlink_msg.ts";

/** The host-wide lock file for bridge and firewall changes (root's; /run is per boot). */
export const LOCK_FILE = "/run/tsbox/network.lock";

/** How deep this thread is in {@link withHostNetworkLock} calls (it holds the lock when > 0). */
let held = 0;

/**
 * Runs `fn` holding the host-wide network lock (flock on {@link LOCK_FILE}): checks of the
 * kernel's state and the changes made after them are never interleaved with another tsbox's.
 * Re-entrant: a call made while this thread holds the lock runs at once. (flock on a second
 * descriptor of the file would wait for the first, held by the caller itself: the process then
 * hung holding the lock, and every tsbox on the host with it, which the API's `network create`
 * did as root.) `fn` is synchronous: the lock is not held across an await.
 */
export function withHostNetworkLock<T>(fn: () => T): T {
  if (held > 0) {
    held++;
    try {
      return fn();
    } finally {
      held--;
    }
  }
  Deno.mkdirSync("/run/tsbox", { recursive: true, mode: 0o700 });
  const file = Deno.openSync(LOCK_FILE, { read: true, write: true, create: true, mode: 0o600 });
  try {
    file.lockSync(true);
    held++;
    try {
      return fn();
    } finally {
      held--;
    }
  } finally {
    file.close(); // releases the lock
  }
}

/** The host's IPv4 routes (every table) with a destination prefix: the subnets in use. */
export function hostRoutes(nl: Netlink): Route[] {
  return nl.routes().filter((r) => r.dstLen > 0);
}

/** Host subnets a new network must not overlap, each with a description for errors. */
export function hostSubnets(): { subnet: Subnet; what: string }[] {
  const nl = Netlink.open();
  try {
    const names = new Map(nl.links().map((l) => [l.index, l.name]));
    return hostRoutes(nl).flatMap((r) => {
      const base = parseIPv4(r.dst);
      if (base === undefined) return [];
      const dev = r.oif !== undefined ? ` dev ${names.get(r.oif) ?? r.oif}` : "";
      return [{
        subnet: { base: (base & maskOf(r.dstLen)) >>> 0, prefix: r.dstLen },
        what: `the host's route ${r.dst}/${r.dstLen}${dev}`,
      }];
    });
  } finally {
    nl.close();
  }
}

/** The host's IPv6 unicast routes with a destination prefix (link-local ones left out). */
export function hostSubnets6(): { subnet: Subnet6; what: string }[] {
  const nl = Netlink.open();
  try {
    const names = new Map(nl.links().map((l) => [l.index, l.name]));
    return nl.routes(AF_INET6).flatMap((r) => {
      const base = parseIPv6(r.dst);
      if (r.type !== 1 || r.dstLen === 0 || base === undefined) return [];
      if (base >> 118n === 0x3fan) return []; // fe80::/10, on every interface
      const dev = r.oif !== undefined ? ` dev ${names.get(r.oif) ?? r.oif}` : "";
      const s = { base, prefix: r.dstLen };
      return [{ subnet: s, what: `the host's route ${formatSubnet6(s)}${dev}` }];
    });
  } finally {
    nl.close();
  }
}

/** What a bridge needs. */
export interface BridgeSpec {
  /** The interface name. */
  readonly bridge: string;
  /** IPv4 CIDR of the network. */
  readonly subnet: string;
  /** The bridge's address. */
  readonly gateway: string;
  readonly internal?: boolean;
  /** IPv6 CIDR and the bridge's IPv6 address, for a network made with `--ipv6`. */
  readonly subnet6?: string;
  readonly gateway6?: string;
  /** The root of the store the network belongs to: written on the bridge (owners.ts). */
  readonly owner?: string;
}

/**
 * Makes sure the bridge exists, has the gateway address and is up; returns its index. Refuses
 * when the subnet is already routed through another interface (another tool's network, or a
 * network of another tsbox store made meanwhile), or when the name is taken by a non-bridge.
 * Call it under {@link withHostNetworkLock}.
 */
export function ensureBridge(spec: BridgeSpec): number {
  const subnet = parseSubnet(spec.subnet);
  const nl = Netlink.open();
  try {
    let link = nl.link(spec.bridge);
    if (link && link.kind !== "bridge") {
      throw new TsboxError(`interface ${spec.bridge} exists and is not a bridge`);
    }
    if (link) {
      // Made before (by this network, with this subnet checked then): only its address is
      // checked, so that two stores never share one bridge.
      const index = link.index;
      const other = nl.addresses().find((a) => a.index === index && a.address !== spec.gateway);
      if (other) {
        throw new TsboxError(
          `bridge ${spec.bridge} has address ${other.address}/${other.prefixLen}, not ` +
            `${spec.gateway}: it belongs to another network (of another tsbox store?)`,
        );
      }
    } else {
      checkUnrouted(nl, spec);
      link = nl.createBridge(spec.bridge);
    }
    try {
      nl.addAddress(link.index, spec.gateway, subnet.prefix);
    } catch (err) {
      if (!(err instanceof NetlinkError && err.code === "EEXIST")) throw err;
    }
    if (spec.subnet6 !== undefined && spec.gateway6 !== undefined) {
      const prefix6 = Number(spec.subnet6.split("/")[1]);
      try {
        nl.addAddress6(link.index, spec.gateway6, prefix6);
      } catch (err) {
        if (!(err instanceof NetlinkError && err.code === "EEXIST")) throw err;
      }
    }
    if (spec.owner !== undefined && link.alias === undefined) {
      const alias = ownerAlias({
        subnet6: spec.subnet6,
        subnet: spec.subnet,
        internal: spec.internal ?? false,
        root: spec.owner,
      });
      if (alias !== undefined) nl.setAlias(link.index, alias);
    }
    nl.setUp(link.index);
    return link.index;
  } finally {
    nl.close();
  }
}

/** Refuses a subnet the host already routes (another tool's network, another store's). */
function checkUnrouted(nl: Netlink, spec: BridgeSpec): void {
  const subnet = parseSubnet(spec.subnet);
  const names = new Map(nl.links().map((l) => [l.index, l.name]));
  for (const r of hostRoutes(nl)) {
    if (r.type !== 1) continue; // unicast routes only; local/broadcast follow addresses
    const base = parseIPv4(r.dst);
    if (base === undefined) continue;
    if (overlaps(subnet, { base, prefix: r.dstLen })) {
      throw new TsboxError(
        `subnet ${spec.subnet} of bridge ${spec.bridge} overlaps the host's route ` +
          `${r.dst}/${r.dstLen} dev ${names.get(r.oif ?? -1) ?? "?"}`,
      );
    }
  }
}

/** Removes a bridge (what is still enslaved to it is released); false when there was none. */
export function removeBridge(name: string): boolean {
  const nl = Netlink.open();
  try {
    return nl.deleteLinkByName(name);
  } finally {
    nl.close();
  }
}

const IP_FORWARD = "/proc/sys/net/ipv4/ip_forward";

/** Whether the host forwards IPv4. */
export function ipForwarding(): boolean {
  try {
    return Deno.readTextFileSync(IP_FORWARD).trim() === "1";
  } catch {
    return false;
  }
}

/** Turns IPv4 forwarding on (as docker does for its bridge); true when it was off. */
export function ensureIpForward(): boolean {
  if (ipForwarding()) return false;
  Deno.writeTextFileSync(IP_FORWARD, "1\n");
  return true;
}

const IP6_FORWARD = "/proc/sys/net/ipv6/conf/all/forwarding";

/** Whether the host forwards IPv6. */
export function ip6Forwarding(): boolean {
  try {
    return Deno.readTextFileSync(IP6_FORWARD).trim() === "1";
  } catch {
    return false;
  }
}

/**
 * Turns IPv6 forwarding on, for a network made with `--ipv6` (as docker does). A host that
 * forwards ignores router advertisements on interfaces with `accept_ra` 1, as Linux routers do.
 * True when it was off.
 */
export function ensureIp6Forward(): boolean {
  if (ip6Forwarding()) return false;
  Deno.writeTextFileSync(IP6_FORWARD, "1\n");
  return true;
}

/** The subnet text of a route, for messages. */
export function routeText(r: Route): string {
  return formatSubnet({ base: parseIPv4(r.dst) ?? 0, prefix: r.dstLen });
}
