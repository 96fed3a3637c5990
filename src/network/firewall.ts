/**
 * tsbox's firewall: one nftables table, `table inet tsbox`, of its own, so that other tools'
 * tables are never flushed and removal is one `delete table`.
 *
 * The rules are fixed; each network is a few set elements (added and deleted in one
 * transaction):
 *
 * - `bridges`: every tsbox bridge. Forwarding from one tsbox bridge to another is dropped
 *   (isolation between networks), except a bridge to itself (`intra`: traffic within a network,
 *   which reaches the forward hook only with br_netfilter or hairpin NAT).
 * - `outbound`: `bridge . subnet` of each network with a route out: what comes in on that bridge
 *   from its own subnet is forwarded; replies come back through `ct state established,related`;
 *   anything else forwarded from or to a tsbox bridge is dropped (internal networks, spoofed
 *   sources, unsolicited connections from outside).
 * - `nat_subnets`: the subnets masqueraded when leaving for a non-tsbox interface.
 *
 * A packet is forwarded only if every base chain on the forward hook, in every table, accepts it:
 * {@link foreignForwardDrops} finds the host's chains whose policy drops it.
 *
 * @module
 */
import { listNft, type NftObject, runNft } from "../../ffi/nftables.ts";

/** tsbox's table (family inet). */
export const TABLE = "tsbox";
/** The table's comment, carrying the layout's version. */
export const TABLE_COMMENT = "tsbox bridge networks, layout 1";

/** What the firewall needs of a network. */
export interface FirewallNetwork {
  /** The bridge interface. */
  readonly bridge: string;
  /** IPv4 CIDR. */
  readonly subnet: string;
  /** IPv6 CIDR (networks made with `--ipv6`): forwarded and masqueraded as IPv4 (NAT66). */
  readonly subnet6?: string;
  readonly internal: boolean;
}

/** The whole table with its sets and chains, and no elements (nft's language). */
export function tableText(): string {
  return `table inet ${TABLE} {
  comment "${TABLE_COMMENT}"
  set bridges { type ifname; }
  set intra { type ifname . ifname; }
  set outbound { type ifname . ipv4_addr; flags interval; }
  set nat_subnets { type ipv4_addr; flags interval; }
  ${SETS6}
  chain forward {
    type filter hook forward priority filter; policy accept;
    iifname . oifname @intra accept
    iifname @bridges oifname @bridges drop
    oifname @bridges ct state established,related accept
    iifname . ip saddr @outbound accept
    ${FORWARD6}
    iifname @bridges drop
    oifname @bridges drop
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr @nat_subnets oifname != @bridges masquerade
    ${NAT6}
  }
}
`;
}

/** IPv6's sets (added to a table of layout 1 by {@link upgradeText}). */
const SETS6 = "set outbound6 { type ifname . ipv6_addr; flags interval; }\n" +
  "  set nat_subnets6 { type ipv6_addr; flags interval; }";
/** IPv6's forward rule: after the IPv4 one, before the drops. */
const FORWARD6 = "iifname . ip6 saddr @outbound6 accept";
/** NAT66, as docker masquerades its IPv6 subnets. */
const NAT6 = "ip6 saddr @nat_subnets6 oifname != @bridges masquerade";

/**
 * What a table made before IPv6 (layout 1: no `outbound6` set) needs to carry IPv6 networks:
 * the sets, the forward rule placed right after the IPv4 one (`handle`: that rule's), and NAT66.
 * Other stores' elements stay as they are.
 */
export function upgradeText(handle: number): string {
  return `add set inet ${TABLE} outbound6 { type ifname . ipv6_addr; flags interval; }
add set inet ${TABLE} nat_subnets6 { type ipv6_addr; flags interval; }
add rule inet ${TABLE} forward position ${handle} ${FORWARD6}
add rule inet ${TABLE} postrouting ${NAT6}
`;
}

function quote(name: string): string {
  if (!/^[a-zA-Z0-9_.-]{1,15}$/.test(name)) throw new RangeError(`bad interface name: ${name}`);
  return `"${name}"`;
}

function checkCidr(cidr: string): string {
  if (!/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/.test(cidr)) throw new RangeError(`bad subnet: ${cidr}`);
  return cidr;
}

function checkCidr6(cidr: string): string {
  if (!/^[0-9a-f:]+\/\d{1,3}$/.test(cidr)) throw new RangeError(`bad subnet: ${cidr}`);
  return cidr;
}

/** The `add element` / `delete element` commands of one network. */
export function elementsText(op: "add" | "delete", n: FirewallNetwork): string {
  const br = quote(n.bridge);
  const lines = [
    `${op} element inet ${TABLE} bridges { ${br} }`,
    `${op} element inet ${TABLE} intra { ${br} . ${br} }`,
  ];
  if (!n.internal) {
    lines.push(`${op} element inet ${TABLE} outbound { ${br} . ${checkCidr(n.subnet)} }`);
    lines.push(`${op} element inet ${TABLE} nat_subnets { ${checkCidr(n.subnet)} }`);
    if (n.subnet6 !== undefined) {
      const s6 = checkCidr6(n.subnet6);
      lines.push(`${op} element inet ${TABLE} outbound6 { ${br} . ${s6} }`);
      lines.push(`${op} element inet ${TABLE} nat_subnets6 { ${s6} }`);
    }
  }
  return lines.join("\n") + "\n";
}

/** Whether tsbox's table exists (in the calling thread's network namespace). */
export function tableExists(): boolean {
  return listNft("list tables").some((o) => o.table?.family === "inet" && o.table?.name === TABLE);
}

/** The bridges in tsbox's table's `bridges` set (empty without the table). */
export function tableBridges(): string[] {
  if (!tableExists()) return [];
  const set = listNft(`list set inet ${TABLE} bridges`).find((o) => o.set)?.set;
  const elem = (set?.elem ?? []) as unknown[];
  return elem.filter((e): e is string => typeof e === "string");
}

/**
 * Adds a network's elements, creating the table first when it is missing (in the same
 * transaction). Call it under the host network lock: the check and the create are two steps.
 */
export function addNetworkRules(n: FirewallNetwork): void {
  const exists = tableExists();
  const upgrade = exists && n.subnet6 !== undefined && !n.internal && !hasIPv6Sets()
    ? upgradeText(ipv4OutboundHandle())
    : "";
  runNft((exists ? "" : tableText()) + upgrade + elementsText("add", n));
}

function hasIPv6Sets(): boolean {
  return listNft("list sets inet").some((o) =>
    o.set?.table === TABLE && o.set?.name === "outbound6"
  );
}

/** The handle of the forward chain's `iifname . ip saddr @outbound accept` rule. */
function ipv4OutboundHandle(): number {
  const rule = listNft(`list chain inet ${TABLE} forward`, { handles: true })
    .map((o) => o.rule).find((r) => JSON.stringify(r?.expr ?? "").includes('"@outbound"'));
  if (typeof rule?.handle !== "number") {
    throw new Error(`table inet ${TABLE}: no IPv4 outbound rule in chain forward to follow`);
  }
  return rule.handle;
}

/**
 * Removes a network's elements; the whole table when it was the last network in it. Does
 * nothing for a network that has none. Call it under the host network lock.
 */
export function removeNetworkRules(n: FirewallNetwork): void {
  if (!tableExists()) return;
  const bridges = tableBridges();
  if (bridges.length === 0 || (bridges.length === 1 && bridges[0] === n.bridge)) {
    runNft(`delete table inet ${TABLE}\n`);
  } else if (bridges.includes(n.bridge)) {
    runNft(elementsText("delete", n));
  }
}

/** A base chain on the forward hook that drops by policy, in a table that is not tsbox's. */
export interface ForwardDrop {
  readonly family: string;
  readonly table: string;
  readonly chain: string;
}

/** The forward-hook chains with policy drop in `objects` (`nft -j list chains`), ours left out. */
export function forwardDropsIn(objects: readonly NftObject[]): ForwardDrop[] {
  return objects.flatMap((o) => {
    const c = o.chain;
    if (!c || c.hook !== "forward" || c.policy !== "drop") return [];
    if (c.family === "inet" && c.table === TABLE) return [];
    return [{ family: String(c.family), table: String(c.table), chain: String(c.name) }];
  });
}

/**
 * The host's forward chains that drop by policy (docker's filter FORWARD, a host firewall): a
 * packet from a tsbox network is forwarded only if each of them accepts it too. Empty when
 * libnftables is missing (then nothing of ours can be in place either).
 */
export function foreignForwardDrops(): ForwardDrop[] {
  try {
    return forwardDropsIn(listNft("list chains"));
  } catch {
    return [];
  }
}

/** One line for `info` and `run` about chains that will drop containers' forwarded traffic. */
export function forwardDropWarning(
  drops: readonly ForwardDrop[],
  subnets: readonly string[],
): string {
  if (drops.length === 0) return "";
  const chains = drops.map((d) => `${d.family} ${d.table} ${d.chain}`).join(", ");
  const what = subnets.length > 0 ? ` from ${subnets.join(", ")}` : "";
  return `WARNING: the host's forward chain${drops.length > 1 ? "s" : ""} ${chains} drop by ` +
    `policy: containers on tsbox networks reach nothing outside unless ${
      drops.length > 1 ? "they accept" : "it accepts"
    } traffic${what} and its replies (e.g. in docker's DOCKER-USER chain)`;
}
