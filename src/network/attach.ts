/**
 * Attaching a container's network namespace to a bridge network, and detaching it: a leased
 * address, a veth pair whose host end is enslaved to the bridge and whose other end is made
 * directly inside the container's namespace (as `eth0`, `eth1`, ...), the address on it, `lo` and
 * it up, and a default route through the gateway (not on internal networks).
 *
 * Work inside the container's namespace goes through a netlink socket made there
 * ({@link Netlink.openIn}): the calling thread joins the namespace only for that moment.
 *
 * @module
 */
import { Netlink, NetlinkError } from "../../ffi/netlink.ts";
import { closeNamespaceFd, openNamespaceFile } from "../../ffi/namespace.ts";
import type { Store } from "../store/mod.ts";
import { parseSubnet } from "./cidr.ts";
import { address6Of, findLease, leaseAddress, releaseLease } from "./ipam.ts";
import { parseSubnet6 } from "./cidr6.ts";
import type { NetworkRecord } from "./records.ts";
import { ensureNetworkUp, readyBridge } from "./setup.ts";

/** The container's network namespace: an open fd of it, or a process in it. */
export type NetnsTarget = { readonly netnsFd: number } | { readonly pid: number };

/** Options of {@link attachContainer}. */
export interface AttachOptions {
  /** Who holds the address: the container id. */
  readonly holder: string;
  /** A specific address (`--ip`). */
  readonly ip?: string;
  /** A specific IPv6 address (`--ip6`). */
  readonly ip6?: string;
  /** Names the container is also known by on this network (for DNS, later). */
  readonly aliases?: readonly string[];
  /** The interface name inside; default: the first free of eth0, eth1, ... */
  readonly ifname?: string;
}

/** What an attachment gave the container. */
export interface Attachment {
  readonly networkId: string;
  readonly network: string;
  /** The container's address. */
  readonly ip: string;
  readonly prefixLen: number;
  readonly gateway: string;
  readonly mac: string;
  /** The container's IPv6 address (networks made with `--ipv6`). */
  readonly ip6?: string;
  readonly gateway6?: string;
  /** The host end of the veth pair. */
  readonly vethHost: string;
  /** The interface inside the container. */
  readonly ifname: string;
}

function withNetnsFd<T>(target: NetnsTarget, fn: (fd: number) => T): T {
  if ("netnsFd" in target) return fn(target.netnsFd);
  const fd = openNamespaceFile(`/proc/${target.pid}/ns/net`);
  try {
    return fn(fd);
  } finally {
    closeNamespaceFd(fd);
  }
}

function ignoreExists(fn: () => void): void {
  try {
    fn();
  } catch (err) {
    if (!(err instanceof NetlinkError && err.code === "EEXIST")) throw err;
  }
}

/**
 * Attaches the namespace to `net`: leases an address, brings the network up (bridge, firewall,
 * ip_forward) and wires the veth pair. On failure nothing of it stays (no lease, no veth).
 */
export function attachContainer(
  store: Store,
  target: NetnsTarget,
  net: NetworkRecord,
  options: AttachOptions,
): Attachment {
  const lease = leaseAddress(store, net, options);
  const prefixLen = parseSubnet(net.subnet).prefix;
  const host = Netlink.open();
  try {
    const bridgeIndex = readyBridge(host, net) ?? ensureNetworkUp(net, store.root);
    // A veth of the same holder left by a killed process goes first.
    host.deleteLinkByName(lease.veth);
    return withNetnsFd(target, (fd) => {
      const inner = Netlink.openIn(fd);
      try {
        const names = new Set(inner.links().map((l) => l.name));
        let ifname = options.ifname;
        for (let i = 0; ifname === undefined; i++) if (!names.has(`eth${i}`)) ifname = `eth${i}`;
        const end = host.createVeth({
          name: lease.veth,
          peerName: ifname,
          peerNetnsFd: fd,
          peerMac: lease.mac,
        });
        host.setMaster(end.index, bridgeIndex);
        host.setUp(end.index);
        const peer = inner.requireLink(ifname);
        inner.addAddress(peer.index, lease.address, prefixLen);
        inner.setUp(peer.index);
        const lo = inner.link("lo");
        if (lo) inner.setUp(lo.index);
        // The first network attached gives the default route (as docker's first endpoint).
        if (!net.internal) ignoreExists(() => inner.addRoute({ gateway: net.gateway }));
        const ip6 = address6Of(net, lease);
        if (ip6 !== undefined && net.gateway6 !== undefined) {
          inner.addAddress6(peer.index, ip6, parseSubnet6(net.subnet6!).prefix);
          if (!net.internal) ignoreExists(() => inner.addDefaultRoute6(net.gateway6!));
        }
        return {
          networkId: net.id,
          network: net.name,
          ip: lease.address,
          prefixLen,
          gateway: net.gateway,
          ...(ip6 !== undefined ? { ip6, gateway6: net.gateway6 } : {}),
          mac: lease.mac,
          vethHost: lease.veth,
          ifname,
        };
      } finally {
        inner.close();
      }
    });
  } catch (err) {
    try {
      host.deleteLinkByName(lease.veth);
    } catch { /* the error below is what matters */ }
    releaseLease(store, net.id, options.holder);
    throw err;
  } finally {
    host.close();
  }
}

/**
 * Detaches `holder` from `net`: removes its veth pair (the end inside goes with it) and gives
 * its address back. Safe to repeat, and after a killed process: false when nothing was there.
 */
export function detachContainer(store: Store, net: NetworkRecord, holder: string): boolean {
  const lease = findLease(store, net.id, holder);
  if (!lease) return false;
  const nl = Netlink.open();
  try {
    nl.deleteLinkByName(lease.veth);
  } finally {
    nl.close();
  }
  releaseLease(store, net.id, holder);
  return true;
}
