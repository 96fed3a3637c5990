/**
 * `NetworkSettings.Networks` of `inspect` in docker's shape, from the recorded endpoints and
 * the leases held now (a stopped container keeps its networks, with empty addresses, as docker
 * shows it).
 *
 * @module
 */
import type { Store } from "../store/mod.ts";
import { parseSubnet } from "./cidr.ts";
import type { EndpointConfig, NetConfig } from "./endpoints.ts";
import { address6Of, type Lease, leasesHeldBy } from "./ipam.ts";
import { DEFAULT_NETWORK, findNetwork, type NetworkRecord } from "./records.ts";

/** What inspect needs of a container. */
export interface InspectSubject {
  readonly id: string;
  readonly name: string;
  /** private, none, host, container:ID. */
  readonly mode: string;
  readonly net?: NetConfig;
}

function endpoint(
  id: string,
  net: NetworkRecord | undefined,
  lease: Lease | undefined,
  aliases: readonly string[] | null,
  names: readonly string[] | null,
  ep?: EndpointConfig,
): Record<string, unknown> {
  // Addresses asked for with --ip/--ip6, as docker shows them.
  const asked = ep?.ip !== undefined || ep?.ip6 !== undefined;
  return {
    IPAMConfig: asked
      ? {
        ...(ep?.ip !== undefined ? { IPv4Address: ep.ip } : {}),
        ...(ep?.ip6 !== undefined ? { IPv6Address: ep.ip6 } : {}),
      }
      : null,
    Links: null,
    Aliases: aliases,
    MacAddress: lease?.mac ?? "",
    NetworkID: net?.id ?? "",
    EndpointID: lease ? `${id.slice(0, 32)}${(net?.id ?? "").slice(0, 32)}` : "",
    Gateway: lease ? net?.gateway ?? "" : "",
    IPAddress: lease?.address ?? "",
    IPPrefixLen: lease && net ? parseSubnet(net.subnet).prefix : 0,
    IPv6Gateway: lease && net?.gateway6 ? net.gateway6 : "",
    GlobalIPv6Address: (lease && net && address6Of(net, lease)) ?? "",
    GlobalIPv6PrefixLen: lease && net?.subnet6 ? Number(net.subnet6.split("/")[1]) : 0,
    DNSNames: names,
  };
}

/**
 * `NetworkSettings` without `Ports`: `Networks` keyed by network name and, for the default
 * bridge, docker's top-level address fields.
 */
export function inspectNetworkSettings(store: Store, c: InspectSubject): Record<string, unknown> {
  const leases = leasesHeldBy(store, c.id);
  const networks: Record<string, unknown> = {};
  let top: Record<string, unknown> = {
    Gateway: "",
    GlobalIPv6Address: "",
    GlobalIPv6PrefixLen: 0,
    IPAddress: "",
    IPPrefixLen: 0,
    IPv6Gateway: "",
    MacAddress: "",
  };
  for (const ep of c.net?.endpoints ?? []) {
    const net = findNetwork(store, ep.networkId);
    const lease = leases.find((l) => l.networkId === ep.networkId);
    const user = ep.network !== DEFAULT_NETWORK;
    const shortId = c.id.slice(0, 12);
    const e = endpoint(
      c.id,
      net,
      lease,
      // Compose passes the short id (and the name) as aliases itself: each is shown once.
      user ? [...new Set([...ep.aliases, shortId])] : null,
      user ? [...new Set([c.name, ...ep.aliases, shortId])] : null,
      ep,
    );
    networks[net?.name ?? ep.network] = e;
    if (!user) {
      top = {
        Gateway: e.Gateway,
        GlobalIPv6Address: e.GlobalIPv6Address,
        GlobalIPv6PrefixLen: e.GlobalIPv6PrefixLen,
        IPAddress: e.IPAddress,
        IPPrefixLen: e.IPPrefixLen,
        IPv6Gateway: e.IPv6Gateway,
        MacAddress: e.MacAddress,
      };
    }
  }
  if (c.mode === "none" || c.mode === "host") {
    networks[c.mode] = endpoint(c.id, undefined, undefined, null, null);
  }
  return { ...top, Networks: networks };
}
