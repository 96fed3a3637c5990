/**
 * docker's legacy links (`HostConfig.Links`, an endpoint's `Links`; `docker run --link` and
 * compose's `links:` send them) as `/etc/hosts` entries of the new container: the linked
 * container's alias, name and host name resolve to its address on the network the new one
 * joins, as dockerd writes them on the default bridge. On a user network dockerd answers a
 * link's alias from its DNS; here the same names come from /etc/hosts. The address is the one
 * held at create time (a linked container that gets another address later is not followed).
 *
 * @module
 */
import type { Store } from "../store/mod.ts";
import { requireContainer } from "../container/state.ts";
import { leasesHeldBy } from "../network/ipam.ts";
import { DEFAULT_NETWORK, findNetwork } from "../network/records.ts";
import { badParameter } from "./errors.ts";

/** One `NAME[:ALIAS]` link (docker's `/name:/new/alias` form too), split. */
export function parseLink(link: string): { name: string; alias: string } {
  const i = link.indexOf(":");
  const name = (i < 0 ? link : link.slice(0, i)).replace(/^\//, "");
  const alias = i < 0 ? name : link.slice(i + 1).split("/").pop() ?? "";
  if (!name || !alias || /[\s:]/.test(alias) || name.includes("/")) {
    throw badParameter(`Invalid link: ${JSON.stringify(link)}`);
  }
  return { name, alias };
}

/**
 * The `--add-host` values (`NAME:IP`) that make `links` resolve from a container joining
 * `network` (`default` is the bridge). On the bridge a linked container must be running there,
 * as dockerd requires; on a user network one without an address there is left out (dockerd
 * resolves such links only while the target is up).
 */
export function linkHosts(
  store: Store,
  links: readonly string[],
  network: string,
  self?: string,
): string[] {
  if (links.length === 0) return [];
  if (network === "host" || network === "none" || network.startsWith("container:")) {
    throw badParameter(
      `Conflicting options: ${
        network.split(":")[0]
      } type networking can't be used with links. This would result in undefined behavior`,
    );
  }
  const bridge = network === "default" || network === DEFAULT_NETWORK;
  const net = findNetwork(store, bridge ? DEFAULT_NETWORK : network);
  const out: string[] = [];
  for (const link of links) {
    const { name, alias } = parseLink(link);
    const target = requireContainer(store, name);
    if (self !== undefined && target.name === self) {
      throw badParameter(`Cannot link to /${name}: a container cannot link to itself`);
    }
    const lease = net && leasesHeldBy(store, target.id).find((l) => l.networkId === net.id);
    if (!lease) {
      if (!bridge) continue;
      throw badParameter(
        target.state === "running"
          ? `Cannot link to /${target.name}, as it does not belong to the default network`
          : `Cannot link to a non running container: /${target.name} AS /${self ?? "new"}/${alias}`,
      );
    }
    // dockerd's entry: the alias, the container's host name, and its name when it differs.
    const names = new Set([alias, target.config.hostname, target.name].filter((n) => n));
    for (const n of names) out.push(`${n}:${lease.address}`);
  }
  return out;
}
