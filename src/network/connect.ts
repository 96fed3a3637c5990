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
import {
  aardvarkPid,
  dnsDown,
  type DnsEntry,
  hasNetworkFile,
  reviveDns,
  syncNetworksDns,
} from "./dns.ts";
import { closeWaitFd, pidfdOpen, waitExit, wake, wakeFd } from "../../ffi/pidfd.ts";
import type { EndpointConfig, NetConfig } from "./endpoints.ts";
import { hostsFor, nameservers, onlyLoopbackResolvers, resolvConfFor } from "./etc_files.ts";
import { address6Of, findLease, leasesHeldBy, leasesOf } from "./ipam.ts";
import { DEFAULT_NETWORK, findNetwork, type NetworkRecord, requireNetwork } from "./records.ts";
import { stopOutbound } from "./outbound.ts";
import { removePortRules } from "./firewall_ports.ts";
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
    const ipv6 = address6Of(net, l);
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

/**
 * How long a supervisor sleeps between looks when no aardvark-dns runs to wait on (none was
 * needed, or one cannot be started): the only timed wakeup left.
 */
const DNS_IDLE_MS = 10_000;

/** The watches of containers this process supervises (their PID 1 runs): eventfds to stop them. */
const dnsWatches = new Map<string, number>();

/**
 * Keeps names served while container `id` runs: aardvark-dns is one process for every network
 * on the host, so each supervisor of a bridged container waits for it to end (a pidfd polled on
 * a worker thread: no wakeups while it runs) and starts it again when it died (killed, crashed)
 * while networks still have files. The restart happens under the host network lock, so of all
 * the supervisors that notice, one starts it and the others wait on the new one. The wait keeps
 * the process alive only as long as the watch: {@link unwatchDns} wakes and ends it.
 */
function watchDns(id: string, warn: (message: string) => void): void {
  if (dnsWatches.has(id)) return;
  const stop = wakeFd();
  dnsWatches.set(id, stop);
  void dnsWatchLoop(id, stop, warn);
}

async function dnsWatchLoop(
  id: string,
  stop: number,
  warn: (message: string) => void,
): Promise<void> {
  try {
    while (dnsWatches.get(id) === stop) {
      let pidfd: number | undefined;
      try {
        if (dnsDown()) withHostNetworkLock(reviveDns);
        const pid = aardvarkPid();
        pidfd = pid !== undefined ? pidfdOpen(pid) : undefined;
        // The pid file may name a process that ended and whose pid was reused meanwhile: with
        // the pidfd held, the pid is pinned, so one more look settles it.
        if (pidfd !== undefined && aardvarkPid() !== pid) {
          closeWaitFd(pidfd);
          continue;
        }
      } catch (err) {
        warn(`WARNING: restarting aardvark-dns: ${(err as Error).message}`);
      }
      const why = await waitExit(pidfd ?? -1, stop, pidfd === undefined ? DNS_IDLE_MS : -1);
      if (pidfd !== undefined) closeWaitFd(pidfd);
      if (why === "woken") return;
    }
  } finally {
    closeWaitFd(stop);
  }
}

function unwatchDns(id: string): void {
  const stop = dnsWatches.get(id);
  if (stop === undefined) return;
  dnsWatches.delete(id);
  wake(stop);
}

/**
 * Rewrites a network's DNS file from the database and tells aardvark-dns; the network's
 * upstreams are the host's resolvers as read now. False when it serves no DNS (the default
 * bridge on most hosts) or aardvark-dns is not installed.
 */
export function refreshNetworkDns(store: Store, net: NetworkRecord): boolean {
  return refreshNetworksDns(store, [net]).has(net.id);
}

/**
 * {@link refreshNetworkDns} for several networks with one signal to aardvark-dns (a container
 * joining several networks is listed in each one's file, see dns.ts). Returns the ids of the
 * networks whose names are served. With `require` (a container is about to ask these servers),
 * a network aardvark-dns does not come to serve throws (dns.ts's DnsServerError).
 */
export function refreshNetworksDns(
  store: Store,
  nets: readonly NetworkRecord[],
  require = false,
): Set<string> {
  const host = readText("/etc/resolv.conf");
  const served = nets.filter((n) => servesNetwork(n, host));
  // The host's resolvers may have changed since a file was written: it goes when unused.
  const stale = nets.filter((n) => !servesNetwork(n, host) && hasNetworkFile(n.bridge));
  if (served.length === 0 && stale.length === 0) return new Set();
  const upstreams = nameservers(host);
  const ok = withHostNetworkLock(() =>
    syncNetworksDns([
      ...served.map((n) => ({
        bridge: n.bridge,
        gateway: n.gateway,
        entries: dnsEntries(store, n),
        upstreams,
      })),
      ...stale.map((n) => ({ bridge: n.bridge, gateway: n.gateway, entries: [] })),
    ], { require })
  );
  return new Set(ok ? served.map((n) => n.id) : []);
}

/**
 * The resolvers of a container on `nets`: the DNS server of each of its user networks, in the
 * order joined (as podman lists them: each answers names of all its networks, and one stays
 * when another network is disconnected); with none, on the default bridge of a host with only
 * loopback resolvers and without `--dns`, the server forwarding for that bridge. `served`:
 * networks whose files aardvark-dns has.
 */
function embeddedServers(
  nets: readonly NetworkRecord[],
  served: ReadonlySet<string>,
  dns: readonly string[] | undefined,
): string[] | undefined {
  const user = nets.filter((n) => servesNames(n) && served.has(n.id)).map((n) => n.gateway);
  if (user.length > 0) return user;
  if (dns?.length) return undefined;
  const forwarding = nets.find((n) => served.has(n.id));
  return forwarding ? [forwarding.gateway] : undefined;
}

/**
 * Attaches the container (PID 1 is `pid`) to its recorded networks and writes its resolver and
 * hosts files for them. On failure what was attached is detached again. `warn` hears of
 * trouble later, while names are kept served (the supervisor's log).
 */
export function connectContainer(
  store: Store,
  c: ConnectSubject,
  pid: number,
  warn: (message: string) => void = () => {},
): Attachment[] {
  const attached: Attachment[] = [];
  try {
    for (const ep of c.net.endpoints) {
      const net = requireNetwork(store, ep.networkId);
      attached.push(attachContainer(store, { pid }, net, {
        holder: c.id,
        ip: ep.ip,
        ip6: ep.ip6,
        aliases: ep.aliases,
      }));
    }
    const first = attached[0];
    const host = readText("/etc/resolv.conf");
    const nets = attached.map((a) => requireNetwork(store, a.networkId));
    // Every network's file lists it (its names there, and its membership for aardvark-dns),
    // served before the container is released: its first lookup must not meet a closed port.
    const served = refreshNetworksDns(store, nets, true);
    // `host-gateway` is the host as the container reaches it: its first network's gateway.
    const extra = (c.net.extraHosts ?? []).flatMap(([name, ip]) =>
      ip !== "host-gateway" ? [[name, ip] as const] : first ? [[name, first.gateway] as const] : []
    );
    // Written in place: the container binds these very files (same inode) when it is released.
    Deno.writeTextFileSync(
      `${c.stateDir}/resolv.conf`,
      resolvConfFor({
        hostResolvConf: host,
        embeddedDns: embeddedServers(nets, served, c.net.dns),
        dns: c.net.dns,
        dnsSearch: c.net.dnsSearch,
        dnsOptions: c.net.dnsOptions,
      }),
    );
    Deno.writeTextFileSync(
      `${c.stateDir}/hosts`,
      hostsFor(c.hostname, first?.ip, extra, first?.ip6),
    );
    if (attached.length > 0) watchDns(c.id, warn);
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
    ip6: ep.ip6,
    aliases: ep.aliases,
  });
  try {
    refreshNetworksDns(store, [net], true);
  } catch (err) {
    detachContainer(store, net, id);
    try {
      refreshNetworkDns(store, net); // its names, written before the failure, go again
    } catch { /* the error below is the cause */ }
    throw err;
  }
  return attached;
}

/**
 * After `network connect` of a running container to `net`: when `net` is a user network, its
 * DNS server joins the container's resolvers (resolv.conf rewritten in place), as podman lists
 * one per network. Its older servers answer the new network's names as well (aardvark-dns knows
 * the container is on both); the new one keeps answering when another network is disconnected.
 */
export function userResolver(
  store: Store,
  stateDir: string,
  before: NetConfig,
  net: NetworkRecord,
): void {
  if (!servesNames(net)) return;
  writeResolver(store, stateDir, before, [...before.endpoints.map((e) => e.networkId), net.id]);
}

/** Rewrites the container's resolv.conf for its networks `networkIds` (in the order joined). */
function writeResolver(
  store: Store,
  stateDir: string,
  config: NetConfig,
  networkIds: readonly string[],
): void {
  const host = readText("/etc/resolv.conf");
  const nets = networkIds.flatMap((id) => findNetwork(store, id) ?? []);
  const served = new Set(
    nets.filter((n) => servesNetwork(n, host) && hasNetworkFile(n.bridge)).map((n) => n.id),
  );
  Deno.writeTextFileSync(
    `${stateDir}/resolv.conf`,
    resolvConfFor({
      hostResolvConf: host,
      embeddedDns: embeddedServers(nets, served, config.dns),
      dns: config.dns,
      dnsSearch: config.dnsSearch,
      dnsOptions: config.dnsOptions,
    }),
  );
}

/**
 * `network disconnect` of a running container: its veth on `net` goes, and its names; a user
 * network's server leaves its resolvers (it could not be reached any more).
 */
export function disconnectEndpoint(store: Store, net: NetworkRecord, id: string): boolean {
  // Published ports rewritten to its address there stop before the address can be leased again.
  const lease = findLease(store, net.id, id);
  if (lease) removePortRules(id, lease.address);
  const had = detachContainer(store, net, id);
  refreshNetworkDns(store, net);
  if (servesNames(net)) {
    const row = store.db.get<{ config: string }>("SELECT config FROM containers WHERE id = ?", id);
    const config = row ? (JSON.parse(row.config) as { net?: NetConfig }).net : undefined;
    const stateDir = containerDir(store.root, id);
    if (config && existsFile(`${stateDir}/resolv.conf`)) {
      const rest = config.endpoints.map((e) => e.networkId).filter((n) => n !== net.id);
      writeResolver(store, stateDir, config, rest);
    }
  }
  return had;
}

function existsFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
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
  // Its published ports' DNAT rules (firewall_ports.ts) go before the addresses they point at
  // can be leased again; its supervisor removes them at exit, this is for one that was killed.
  if (leases.length > 0) removePortRules(id);
  for (const lease of leases) {
    const net = findNetwork(store, lease.networkId);
    if (!net) continue;
    detachContainer(store, net, id);
    refreshNetworkDns(store, net);
  }
  return leases.length;
}
