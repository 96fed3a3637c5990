/**
 * Which tsbox store a bridge belongs to, written on the bridge itself (its interface alias, as
 * `ip link set NAME alias` shows it): `tsbox SUBNET[,SUBNET6] routed|internal mnt:N STORE_ROOT`,
 * N the mount namespace the path means something in. Bridges and the
 * firewall are the host's, shared by every store, and a store can vanish without taking its
 * networks down (its directory removed, the process that would have done it killed): the next
 * tsbox that brings a network up finds such bridges by their alias, sees that their store's
 * database is gone, and removes their firewall elements, DNS file and bridge.
 *
 * Bridges without such an alias (made by older tsbox versions, or by other tools) are never
 * touched.
 *
 * @module
 */
import { Netlink } from "../../ffi/netlink.ts";
import { syncNetworkDns } from "./dns.ts";
import { removePortRulesInto } from "./firewall_ports.ts";
import { removeNetworkRules } from "./firewall.ts";

const PREFIX = "tsbox ";
/** The kernel's limit for an interface alias (IFALIASZ - 1). */
const MAX_ALIAS = 255;

/** What a bridge's alias says. */
export interface BridgeOwner {
  /** IPv4 CIDR of the network. */
  readonly subnet: string;
  /** IPv6 CIDR of a network made with `--ipv6`. */
  readonly subnet6?: string;
  readonly internal: boolean;
  /**
   * The mount namespace the root's path belongs to (its inode number; default: the caller's):
   * a path means nothing in another one (a tsbox in a container sharing the host's network).
   */
  readonly mnt?: number;
  /** The store's root directory (absolute). */
  readonly root: string;
}

/** This process's mount namespace (its inode number), or 0 when unknown. */
export function ownMountNamespace(): number {
  try {
    return Number(/\[(\d+)\]/.exec(Deno.readLinkSync("/proc/self/ns/mnt"))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/** A store root as aliases name it: absolute. */
export function absoluteRoot(root: string): string {
  return root.startsWith("/") ? root : `${Deno.cwd()}/${root}`;
}

/** The alias for a bridge of `owner`, or undefined when the root is too long to fit. */
export function ownerAlias(owner: BridgeOwner): string | undefined {
  const root = absoluteRoot(owner.root);
  const subnets = owner.subnet6 ? `${owner.subnet},${owner.subnet6}` : owner.subnet;
  const mnt = owner.mnt ?? ownMountNamespace();
  const text = `${PREFIX}${subnets} ${owner.internal ? "internal" : "routed"} mnt:${mnt} ${root}`;
  return new TextEncoder().encode(text).length <= MAX_ALIAS ? text : undefined;
}

/** Parses an alias written by {@link ownerAlias}; undefined for any other text. */
export function parseOwnerAlias(alias: string | undefined): BridgeOwner | undefined {
  const m =
    /^tsbox (\d{1,3}(?:\.\d{1,3}){3}\/\d{1,2})(?:,([0-9a-f:]+\/\d{1,3}))? (routed|internal) mnt:(\d+) (\/.*)$/
      .exec(alias ?? "");
  if (!m) return undefined;
  return {
    subnet: m[1],
    ...(m[2] ? { subnet6: m[2] } : {}),
    internal: m[3] === "internal",
    mnt: Number(m[4]),
    root: m[5],
  };
}

function storeExists(root: string): boolean {
  try {
    return Deno.statSync(`${root}/tsbox.db`).isFile;
  } catch {
    return false;
  }
}

/**
 * Removes the bridges (with their firewall elements and DNS files) whose store's database no
 * longer exists. Only bridges whose root path was written in this process's mount namespace are
 * judged (elsewhere the path may name another file, or none). Call under the host network lock.
 * Returns the bridges removed.
 */
export function reapOrphanBridges(): string[] {
  const nl = Netlink.open();
  try {
    const removed: string[] = [];
    const mnt = ownMountNamespace();
    for (const link of nl.links()) {
      if (link.kind !== "bridge") continue;
      const owner = parseOwnerAlias(link.alias);
      if (!owner || owner.mnt !== mnt || mnt === 0 || storeExists(owner.root)) continue;
      try {
        // Published ports of its containers (their supervisors gone with the store) first.
        removePortRulesInto(owner.subnet);
        removeNetworkRules({ bridge: link.name, ...owner });
      } catch { /* no libnftables: nothing of ours can be in a table either */ }
      try {
        syncNetworkDns(link.name, "", []);
      } catch { /* its file stays; aardvark serves a bridge that is gone */ }
      nl.deleteLinkByName(link.name);
      removed.push(link.name);
    }
    return removed;
  } finally {
    nl.close();
  }
}
