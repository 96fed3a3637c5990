/**
 * A container's networks over one run: {@link connectContainer} once PID 1 sits in its new
 * network namespace (before it is released), {@link disconnectContainer} when it has ended, is
 * removed, or its dead supervisor is reaped. Connecting attaches each recorded endpoint, writes
 * resolv.conf and hosts for what it got, and puts its names into its user networks' DNS;
 * disconnecting undoes all of it (and ends a rootless container's slirp4netns or pasta,
 * outbound.ts), and is safe to repeat and to run from another process.
 *
 * @module
 */
import type { Store } from "../store/mod.ts";
import { attachContainer, type Attachment, detachContainer } from "./attach.ts";
import { withHostNetworkLock } from "./bridge.ts";
import { dnsDown, type DnsEntry, hasNetworkFile, reviveDns, syncNetworkDns } from "./dns.ts";
import type { EndpointConfig, NetConfig } from "./endpoints.ts";
import { hostsFor, nameservers, onlyLoopbackResolvers, resolvConfFor } from "./etc_files.ts";
import { address6Of, leasesHeldBy, leasesOf } from "./ipam.ts";
import { DEFAULT_NETWORK, findNetwork, type NetworkRecord, requireNetwork } from "./records.ts";
import { stopOutbound } from "./outbound.ts";
import { containerDir } from "../container/paths.ts";

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

/** docker's embedded DNS serves names on user networks only. */
function servesNames(net: NetworkRecord): boolean {
  return net.name !== DEFAULT_NETWORK;
}

/**
 * Whether aardvark-dns serves `net` at all: user networks always; the default bridge only on a
 * host whose resolvers are all on loopback, for its containers without `--dns` (forwarding only,
 * no names: they could reach no resolver of the host otherwise).
 */
function servesNetwork(net: NetworkRecord, hostResolvConf: string): boolean {
  return servesNames(net) || onlyLoopbackResolvers(hostResolvConf);
}

/**
 * The DNS entries of a network, from the database as it is now: each leaseholder's name,
 * aliases and short id, and its `--dns` servers; on the default bridge (see
 * {@link servesNetwork}) the leaseholders without `--dns`, unnamed.
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
  const named = servesNames(net);
  return leases.flatMap((l): DnsEntry[] => {
    const row = rows.get(l.holder);
    if (!row) return [];
    const dns = (JSON.parse(row.config) as { net?: NetConfig }).net?.dns;
    const ipv6 = address6Of(net, l.address);
    const v6 = ipv6 !== undefined ? { ipv6 } : {};
    if (!named) {
      return dns?.length
        ? []
        : [{ id: l.holder, ipv4: l.address, ...v6, names: [], unnamed: true }];
    }
    return [{
      id: l.holder,
      ipv4: l.address,
      ...v6,
      names: [...new Set([row.name, ...l.aliases, l.holder.slice(0, 12)])],
      dns,
    }];
  });
}

/** How often a running container's supervisor checks that aardvark-dns still runs. */
const DNS_WATCH_MS = 1000;

/** The watches of containers this process supervises (their PID 1 runs). */
const dnsWatches = new Map<string, ReturnType<typeof setInterval>>();

/**
 * Keeps names served while container `id` runs: aardvark-dns is one process for every network
 * on the host, so each supervisor of a bridged container checks now and then that it still runs
 * and starts it again when it has died (killed, crashed) while networks have files. The check
 * is a few reads of /proc; the restart happens under the host network lock, so of all the
 * supervisors that notice, one starts it. The timer keeps no process alive.
 */
function watchDns(id: string): void {
  if (dnsWatches.has(id)) return;
  const timer = setInterval(() => {
    try {
      if (dnsDown()) withHostNetworkLock(reviveDns);
    } catch (err) {
      console.error(`WARNING: restarting aardvark-dns: ${(err as Error).message}`);
    }
  }, DNS_WATCH_MS);
  timer.unref();
  dnsWatches.set(id, timer);
}

function unwatchDns(id: string): void {
  const timer = dnsWatches.get(id);
  if (timer === undefined) return;
  clearInterval(timer);
  dnsWatches.delete(id);
}

/**
 * Rewrites a network's DNS file from the database and tells aardvark-dns; the network's
 * upstreams are the host's resolvers as read now. False when it serves no DNS (the default
 * bridge on most hosts) or aardvark-dns is not installed.
 */
export function refreshNetworkDns(store: Store, net: NetworkRecord): boolean {
  const host = readText("/etc/resolv.conf");
  if (!servesNetwork(net, host)) {
    // The host's resolvers may have changed since a file was written: it goes when unused.
    if (hasNetworkFile(net.bridge)) {
      withHostNetworkLock(() => syncNetworkDns(net.bridge, net.gateway, []));
    }
    return false;
  }
  return withHostNetworkLock(() =>
    syncNetworkDns(net.bridge, net.gateway, dnsEntries(store, net), nameservers(host))
  );
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
    const host = readText("/etc/resolv.conf");
    const nets = attached.map((a) => requireNetwork(store, a.networkId));
    // A user network's server answers names (and forwards the rest to --dns or the host's); on
    // the default bridge of a host with only loopback resolvers, one forwards for it.
    const dnsNet = nets.find(servesNames) ??
      (c.net.dns?.length ? undefined : nets.find((n) => servesNetwork(n, host)));
    const embedded = dnsNet !== undefined && refreshNetworkDns(store, dnsNet);
    // `host-gateway` is the host as the container reaches it: its first network's gateway.
    const extra = (c.net.extraHosts ?? []).flatMap(([name, ip]) =>
      ip !== "host-gateway" ? [[name, ip] as const] : first ? [[name, first.gateway] as const] : []
    );
    // Written in place: the container binds these very files (same inode) when it is released.
    Deno.writeTextFileSync(
      `${c.stateDir}/resolv.conf`,
      resolvConfFor({
        hostResolvConf: host,
        embeddedDns: embedded ? dnsNet.gateway : undefined,
        dns: c.net.dns,
        dnsSearch: c.net.dnsSearch,
        dnsOptions: c.net.dnsOptions,
      }),
    );
    Deno.writeTextFileSync(
      `${c.stateDir}/hosts`,
      hostsFor(c.hostname, first?.ip, extra, first?.ip6),
    );
    if (attached.length > 0) watchDns(c.id);
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
 * addresses come back), takes its names out of DNS and ends its user-mode network helper. Nothing to do (and no
 * kernel work) when it holds none. Returns how many addresses it left.
 */
export function disconnectContainer(store: Store, id: string): number {
  unwatchDns(id);
  stopOutbound(containerDir(store.root, id));
  const leases = leasesHeldBy(store, id);
  for (const lease of leases) {
    const net = findNetwork(store, lease.networkId);
    if (!net) continue;
    detachContainer(store, net, id);
    refreshNetworkDns(store, net);
  }
  return leases.length;
}
