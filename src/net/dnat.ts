/**
 * Which published ports the kernel serves (DNAT, src/network/firewall_ports.ts) and which the
 * userspace proxy: as root, a container on a bridge network has its IPv4 ports rewritten to its
 * address on its first network; IPv6 ports, rootless containers and containers without a bridge
 * network (`--network private`) keep the proxy. The host sockets stay bound either way: they
 * hold the ports, so another program (or container) cannot take them, and `-p` on a taken port
 * fails as before.
 *
 * @module
 */
import { lazyImport } from "../lazy.ts";
import type { Store } from "../store/mod.ts";
import type { HostListener } from "./listeners.ts";
import type { PortConfig } from "./port_views.ts";

/** Where a container's IPv4 ports are rewritten to. */
export interface DnatTarget {
  /** The container's IPv4 address on its first network. */
  readonly ip: string;
  /** That network's bridge. */
  readonly bridge: string;
  /** That network's gateway and IPv4 subnet. */
  readonly gateway: string;
  readonly subnet: string;
}

/** The listeners the kernel serves for a target, and those left to the proxy. */
export function splitListeners(
  listeners: readonly HostListener[],
  target: DnatTarget | undefined,
): { kernel: HostListener[]; proxied: HostListener[] } {
  if (!target) return { kernel: [], proxied: [...listeners] };
  const kernel = listeners.filter((l) => !l.binding.hostIp.includes(":"));
  const proxied = listeners.filter((l) => l.binding.hostIp.includes(":"));
  return { kernel, proxied };
}

/**
 * The DNAT target of container `id` as it runs now (after its networks were connected), or
 * undefined when the proxy serves every port: not root, no bridge network, no address leased.
 */
export async function dnatTarget(
  store: Store,
  id: string,
  cfg: PortConfig,
): Promise<DnatTarget | undefined> {
  const first = cfg.net?.endpoints[0];
  // Rootless, the container's bridge (if any) is not the host's to rewrite packets for.
  if (!first || Deno.uid() !== 0 || cfg.net?.outbound !== undefined) return undefined;
  const { findLease } = await lazyImport<typeof import("../network/ipam.ts")>(
    new URL("../network/ipam.ts", import.meta.url),
  );
  const { findNetwork } = await lazyImport<typeof import("../network/records.ts")>(
    new URL("../network/records.ts", import.meta.url),
  );
  const lease = findLease(store, first.networkId, id);
  const net = findNetwork(store, first.networkId);
  if (!lease || !net) return undefined;
  return { ip: lease.address, bridge: net.bridge, gateway: net.gateway, subnet: net.subnet };
}
