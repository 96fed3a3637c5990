/**
 * What a container asks of the network at `run`/`create`, recorded with it: the bridge networks
 * it joins (`--network NAME`, `--ip`, `--network-alias`) and its resolver and hosts settings
 * (`--dns`, `--dns-search`, `--dns-option`, `--add-host`). No kernel work: the checks here are
 * the ones docker makes before a container exists.
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import type { Store } from "../store/mod.ts";
import { parseIPv4 } from "./cidr.ts";
import { DEFAULT_NETWORK, type NetworkRecord, requireNetwork } from "./records.ts";
import { contains6, parseIPv6, parseSubnet6 } from "./cidr6.ts";

/** One bridge network the container joins, as recorded at create. */
export interface EndpointConfig {
  readonly networkId: string;
  /** The network's name when the container was created (docker's key in `Networks`). */
  readonly network: string;
  /** `--network-alias` names (user networks only, as docker). */
  readonly aliases: readonly string[];
  /** `--ip`: this address, or the first free one when absent. */
  readonly ip?: string;
  /** `--ip6`: this IPv6 address (networks with IPv6), else the one of the IPv4 address's host. */
  readonly ip6?: string;
}

/** A container's network settings beyond its namespace mode. */
export interface NetConfig {
  /** The bridge networks, in the order joined (the first gives the default route). */
  readonly endpoints: readonly EndpointConfig[];
  /** `--dns` servers. */
  readonly dns?: readonly string[];
  /** `--dns-search` domains. */
  readonly dnsSearch?: readonly string[];
  /** `--dns-option` options. */
  readonly dnsOptions?: readonly string[];
  /** `--add-host NAME:IP` as `[name, ip]` (host-gateway already replaced at start). */
  readonly extraHosts?: readonly (readonly [string, string])[];
  /** A user-mode network's helper (rootless default, `--network pasta|slirp4netns`). */
  readonly outbound?: "slirp4netns" | "pasta";
}

/** The flags this module reads. */
export interface NetFlags {
  readonly network?: string;
  readonly ip?: string;
  readonly ip6?: string;
  readonly networkAlias?: readonly string[];
  readonly dns?: readonly string[];
  readonly dnsSearch?: readonly string[];
  readonly dnsOption?: readonly string[];
  readonly addHost?: readonly string[];
}

/** Modes that are not bridge networks (`container:NAME` aside). */
const NAMESPACE_MODES = new Set(["private", "none", "host", "pasta", "slirp4netns"]);

/**
 * The network a container is shown on (`inspect`'s NetworkMode, `ps --filter network=`): its
 * first bridge network, its user-mode network's helper, or its namespace mode.
 */
export function networkModeName(mode: string, net: NetConfig | undefined): string {
  return net?.endpoints[0]?.network ?? net?.outbound ?? mode;
}

/**
 * The network a `--network` value names when it is a bridge network: `bridge` for docker's
 * `default`/`bridge` (tsbox's `private` namespace instead when `bridged` is false: rootless),
 * the name itself for a user network; undefined for `private`, `none`, `host`, `pasta`,
 * `slirp4netns`, `container:`.
 */
export function bridgeNetworkName(mode: string | undefined, bridged: boolean): string | undefined {
  const m = mode ?? "default";
  if (m === "default" || m === DEFAULT_NETWORK) return bridged ? DEFAULT_NETWORK : undefined;
  if (NAMESPACE_MODES.has(m) || m.startsWith("container:")) return undefined;
  return m;
}

/**
 * The checks of `--ip6` that need no lease: an IPv6 address, on a network with IPv6, in its
 * subnet (whether it is free is known when it is leased, at start).
 */
export function checkIp6Flag(net: NetworkRecord, ip6: string): void {
  if (net.subnet6 === undefined) {
    throw new UsageError(
      `--ip6 ${ip6}: network ${net.name} has no IPv6 subnet (create it with --ipv6)`,
    );
  }
  const value = parseIPv6(ip6);
  if (value === undefined) {
    throw new UsageError(`invalid argument "${ip6}" for "--ip6": not an IPv6 address`);
  }
  if (!contains6(parseSubnet6(net.subnet6), value)) {
    throw new UsageError(`--ip6 ${ip6} is not in network ${net.name}'s subnet ${net.subnet6}`);
  }
}

/** `--add-host NAME:IP` (docker also takes `NAME=IP`); `host-gateway` stays as given. */
export function parseAddHost(value: string): [string, string] {
  const m = /^([^:=]+)[:=](.+)$/.exec(value);
  const ip = m?.[2].replace(/^\[(.*)\]$/, "$1");
  if (!m || !ip || (ip !== "host-gateway" && parseIPv4(ip) === undefined && !ip.includes(":"))) {
    throw new UsageError(`invalid argument "${value}" for "--add-host" flag: invalid IP address`);
  }
  return [m[1], ip];
}

function checkDns(servers: readonly string[]): string[] {
  for (const s of servers) {
    if (parseIPv4(s) === undefined && !/^[0-9a-fA-F:]+$/.test(s)) {
      throw new UsageError(`${s} is not an ip address`);
    }
  }
  return [...servers];
}

/**
 * The network settings of a new container: its bridge network (looked up now: a missing one is
 * docker's `network NAME not found`) and resolver flags. `bridged` says whether `default` means
 * the `bridge` network (root) or the `private` namespace (rootless, until pasta is wired).
 */
export function planNetConfig(
  store: Store,
  flags: NetFlags,
  bridged: boolean,
  ensureDefault: (store: Store) => unknown,
): NetConfig | undefined {
  const name = bridgeNetworkName(flags.network, bridged);
  const aliases = [...(flags.networkAlias ?? [])];
  if (
    name === undefined && (flags.ip !== undefined || flags.ip6 !== undefined || aliases.length > 0)
  ) {
    throw new UsageError("--ip, --ip6 and --network-alias need a bridge network (--network NAME)");
  }
  if (name === DEFAULT_NETWORK && aliases.length > 0) {
    throw new UsageError("network-scoped aliases are only supported for user-defined networks");
  }
  if (name === DEFAULT_NETWORK && (flags.ip !== undefined || flags.ip6 !== undefined)) {
    throw new UsageError("user specified IP address is supported only for user-defined networks");
  }
  if (name === DEFAULT_NETWORK) ensureDefault(store);
  const endpoints: EndpointConfig[] = [];
  if (name !== undefined) {
    const net = requireNetwork(store, name);
    if (flags.ip6 !== undefined) checkIp6Flag(net, flags.ip6);
    endpoints.push({
      networkId: net.id,
      network: net.name,
      aliases,
      ip: flags.ip,
      ...(flags.ip6 !== undefined ? { ip6: flags.ip6 } : {}),
    });
  }
  const out: NetConfig = {
    endpoints,
    ...(flags.dns?.length ? { dns: checkDns(flags.dns) } : {}),
    ...(flags.dnsSearch?.length ? { dnsSearch: [...flags.dnsSearch] } : {}),
    ...(flags.dnsOption?.length ? { dnsOptions: [...flags.dnsOption] } : {}),
    ...(flags.addHost?.length ? { extraHosts: flags.addHost.map(parseAddHost) } : {}),
  };
  return Object.keys(out).length === 1 && endpoints.length === 0 ? undefined : out;
}
