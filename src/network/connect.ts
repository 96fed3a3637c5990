/**
 * A container's networks over one run: {@link connectContainer} once PID 1 sits in its new
 * network namespace (before it is released), {@link disconnectContainer} when it has ended, is
 * removed, or its dead supervisor is reaped. Connecting attaches each recorded endpoint, writes
 * resolv.conf and hosts for what it got, and puts its names into its user networks' DNS;
 * disconnecting undoes all of it, and is safe to repeat and to run from another process.
 *
 * @module
 */
import type { Store } from "../store/mod.ts";
import { attachContainer, type Attachment, detachContainer } from "./attach.ts";
import { withHostNetworkLock } from "./bridge.ts";
import { type DnsEntry, syncNetworkDns } from "./dns.ts";
import type { EndpointConfig, NetConfig } from "./endpoints.ts";
import { hostsFor, resolvConfFor } from "./etc_files.ts";
import { leasesHeldBy, leasesOf } from "./ipam.ts";
import { DEFAULT_NETWORK, findNetwork, type NetworkRecord, requireNetwork } from "./records.ts";

/** What connecting needs of the container. */
export interface ConnectSubject {
  readonly id: string;
  readonly hostname: string;
  /** The directory holding the `resolv.conf` and `hosts` files bound into the container. */
  readonly stateDir: string;
  readonly net: NetConfig;
}

function readText(path: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return "";
  }
}

/** docker's embedded DNS serves user networks only. */
function servesNames(net: NetworkRecord): boolean {
  return net.name !== DEFAULT_NETWORK;
}

/**
 * The DNS entries of a network, from the database as it is now: each leaseholder's name,
 * aliases and short id, and its `--dns` servers.
 */
function dnsEntries(store: Store, net: NetworkRecord): DnsEntry[] {
  const leases = leasesOf(store, net.id);
  if (leases.length === 0) return [];
  const rows = new Map(
    store.db.all<{ id: string; name: string; config: string }>(
      `SELECT id, name, config FROM containers WHERE id IN (${leases.map(() => "?").join(",")})`,
      ...leases.map((l) => l.holder),
    ).map((r) => [r.id, r]),
  );
  return leases.flatMap((l) => {
    const row = rows.get(l.holder);
    if (!row) return [];
    const dns = (JSON.parse(row.config) as { net?: NetConfig }).net?.dns;
    return [{
      id: l.holder,
      ipv4: l.address,
      names: [...new Set([row.name, ...l.aliases, l.holder.slice(0, 12)])],
      dns,
    }];
  });
}

/** Rewrites a user network's DNS file from the database and tells aardvark-dns. */
export function refreshNetworkDns(store: Store, net: NetworkRecord): boolean {
  if (!servesNames(net)) return false;
  return withHostNetworkLock(() => syncNetworkDns(net.bridge, net.gateway, dnsEntries(store, net)));
}

/**
 * Attaches the container (PID 1 is `pid`) to its recorded networks and writes its resolver and
 * hosts files for them. On failure what was attached is detached again.
 */
export function connectContainer(store: Store, c: ConnectSubject, pid: number): Attachment[] {
  const attached: Attachment[] = [];
  try {
    for (const ep of c.net.endpoints) {
      const net = requireNetwork(store, ep.networkId);
      attached.push(attachContainer(store, { pid }, net, {
        holder: c.id,
        ip: ep.ip,
        aliases: ep.aliases,
      }));
    }
    const first = attached[0];
    const userNet = attached.map((a) => requireNetwork(store, a.networkId)).find(servesNames);
    const named = userNet !== undefined && refreshNetworkDns(store, userNet);
    // `host-gateway` is the host as the container reaches it: its first network's gateway.
    const extra = (c.net.extraHosts ?? []).flatMap(([name, ip]) =>
      ip !== "host-gateway" ? [[name, ip] as const] : first ? [[name, first.gateway] as const] : []
    );
    // Written in place: the container binds these very files (same inode) when it is released.
    Deno.writeTextFileSync(
      `${c.stateDir}/resolv.conf`,
      resolvConfFor({
        hostResolvConf: readText("/etc/resolv.conf"),
        embeddedDns: named ? userNet.gateway : undefined,
        dns: c.net.dns,
        dnsSearch: c.net.dnsSearch,
        dnsOptions: c.net.dnsOptions,
      }),
    );
    Deno.writeTextFileSync(`${c.stateDir}/hosts`, hostsFor(c.hostname, first?.ip, extra));
    return attached;
  } catch (err) {
    try {
      disconnectContainer(store, c.id);
    } catch { /* the error below is the cause */ }
    throw err;
  }
}

/**
 * `network connect` of a running container: attaches it (PID 1 is `pid`) to one more network
 * and puts its names into that network's DNS. Its /etc/hosts and resolv.conf stay as they are
 * (docker's embedded DNS answers for the new network's names from the address it already has;
 * here a container that started on a user network asks that network's server).
 */
export function connectEndpoint(
  store: Store,
  id: string,
  pid: number,
  ep: EndpointConfig,
): Attachment {
  const net = requireNetwork(store, ep.networkId);
  const attached = attachContainer(store, { pid }, net, {
    holder: id,
    ip: ep.ip,
    aliases: ep.aliases,
  });
  try {
    refreshNetworkDns(store, net);
  } catch (err) {
    detachContainer(store, net, id);
    throw err;
  }
  return attached;
}

/**
 * After `network connect` of a running container to `net`: a container that had no user network
 * so far gets `net`'s DNS server as its resolver (its resolv.conf rewritten in place), so that
 * it finds the names of its new network.
 */
export function userResolver(
  store: Store,
  stateDir: string,
  before: NetConfig,
  net: NetworkRecord,
): void {
  if (!servesNames(net)) return;
  const hadUser = before.endpoints.some((e) => {
    const n = findNetwork(store, e.networkId);
    return n !== undefined && servesNames(n);
  });
  if (hadUser) return;
  Deno.writeTextFileSync(
    `${stateDir}/resolv.conf`,
    resolvConfFor({
      hostResolvConf: readText("/etc/resolv.conf"),
      embeddedDns: net.gateway,
      dns: before.dns,
      dnsSearch: before.dnsSearch,
      dnsOptions: before.dnsOptions,
    }),
  );
}

/** `network disconnect` of a running container: its veth on `net` goes, and its names. */
export function disconnectEndpoint(store: Store, net: NetworkRecord, id: string): boolean {
  const had = detachContainer(store, net, id);
  refreshNetworkDns(store, net);
  return had;
}

/**
 * Detaches container `id` from every network it holds an address on (its veth pairs go, its
 * addresses come back) and takes its names out of DNS. Nothing to do (and no kernel work) when
 * it holds none. Returns how many it left.
 */
export function disconnectContainer(store: Store, id: string): number {
  const leases = leasesHeldBy(store, id);
  for (const lease of leases) {
    const net = findNetwork(store, lease.networkId);
    if (!net) continue;
    detachContainer(store, net, id);
    refreshNetworkDns(store, net);
  }
  return leases.length;
}
