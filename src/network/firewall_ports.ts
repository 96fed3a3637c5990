/**
 * Published ports through the kernel: DNAT rules in tsbox's table (firewall.ts), as podman's
 * netavark and docker without its userland proxy publish them. Packets to a published IPv4 port
 * of any local address are rewritten to the container's address before routing, so no process
 * copies their bytes.
 *
 * Chains, added to the table once (under the host network lock, by {@link addPortRules}):
 *
 * - `ports`: one rule per published IPv4 port, `[ip daddr A] tcp dport P dnat ip to C:Q`, with
 *   the comment `tsbox <container id>` that {@link removePortRules} finds them by.
 * - `port_prerouting` (nat, prerouting) and `port_output` (nat, output: connections made on
 *   the host itself, to 127.0.0.1 or any other local address) jump to `ports` for packets to a
 *   local address.
 * - `port_postrouting`: a connection made to 127.0.0.1 leaves for the bridge with source
 *   127.0.0.1, which the container could not answer: it is masqueraded to the bridge's address
 *   (and the kernel routes it at all only with `route_localnet` on that bridge); a container
 *   reaching its own network's published port through the host (hairpin) is masqueraded too, or
 *   the answer would bypass the host's conntrack.
 * - `port_guard` (filter, prerouting, before conntrack): `route_localnet` would also let a
 *   container send to the host's 127.0.0.0/8; packets from a tsbox bridge to 127.0.0.0/8 are
 *   dropped (the class of CVE-2020-8558). Answers to masqueraded connections still carry the
 *   bridge's address at that point, so they pass.
 * - a rule at the head of `forward` accepts DNAT'ed connections to a tsbox bridge (from other
 *   hosts or namespaces), which the chain's final drops would refuse otherwise.
 *
 * Inside the container's namespace ({@link addInnerRules}), a table of its own rewrites those
 * connections once more, to 127.0.0.1 (and their answers' source back), statelessly: servers in the container are reached on loopback, as
 * the userspace proxy reaches them (it connects to 127.0.0.1 there), so a server bound to
 * 127.0.0.1 only is served, by either path. Only connections the host rewrote are: those from
 * the gateway (masqueraded) or from outside the network's subnet; another container on the
 * network reaching this one's address directly is left alone. `route_localnet` there lets
 * the kernel deliver them, and a guard drops anything else arriving for 127.0.0.0/8.
 *
 * IPv6 is left to the userspace proxy: the kernel does not route ::1 out of the host, and a
 * container without IPv6 cannot be reached by rewriting an IPv6 packet.
 *
 * @module
 */
import { listNft, runNft } from "../../ffi/nftables.ts";
import {
  closeNamespaceFd,
  NAMESPACE_TYPES,
  openNamespaceFile,
  setns,
} from "../../ffi/namespace.ts";
import { withHostNetworkLock } from "./bridge.ts";
import { TABLE, tableExists } from "./firewall.ts";

/** The chain holding the DNAT rules. */
export const PORTS_CHAIN = "ports";

/** One IPv4 port to rewrite. */
export interface PortRule {
  /** The host address the port is published on; "0.0.0.0": every local address. */
  readonly hostIp: string;
  readonly hostPort: number;
  readonly containerPort: number;
  readonly proto: "tcp" | "udp";
}

/** The commands that add the chains and fixed rules of {@link PORTS_CHAIN} to the table. */
export function portChainsText(): string {
  const t = `inet ${TABLE}`;
  return `add chain ${t} ${PORTS_CHAIN}
add chain ${t} port_prerouting { type nat hook prerouting priority dstnat; policy accept; }
add rule ${t} port_prerouting meta nfproto ipv4 fib daddr type local jump ${PORTS_CHAIN}
add chain ${t} port_output { type nat hook output priority -100; policy accept; }
add rule ${t} port_output meta nfproto ipv4 fib daddr type local jump ${PORTS_CHAIN}
add chain ${t} port_postrouting { type nat hook postrouting priority srcnat; policy accept; }
add rule ${t} port_postrouting ct status dnat ip saddr 127.0.0.0/8 masquerade
add rule ${t} port_postrouting ct status dnat iifname . oifname @intra masquerade
add chain ${t} port_guard { type filter hook prerouting priority raw; policy accept; }
add rule ${t} port_guard iifname @bridges ip daddr 127.0.0.0/8 drop
insert rule ${t} forward ct status dnat oifname @bridges accept
`;
}

function checkIPv4(ip: string): string {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(ip);
  if (!m || m.slice(1).some((o) => Number(o) > 255)) throw new RangeError(`bad IPv4: ${ip}`);
  return ip;
}

function checkPort(port: number): number {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new RangeError(`bad port: ${port}`);
  }
  return port;
}

function checkId(id: string): string {
  if (!/^[0-9a-zA-Z_.-]{1,128}$/.test(id)) throw new RangeError(`bad container id: ${id}`);
  return id;
}

/** The comment marking a container's rules. */
export function ruleComment(id: string): string {
  return `tsbox ${checkId(id)}`;
}

/** The `add rule` commands publishing `rules` of container `id` (address `ip`). */
export function portRulesText(id: string, ip: string, rules: readonly PortRule[]): string {
  const to = checkIPv4(ip);
  return rules.map((r) => {
    const daddr = r.hostIp === "0.0.0.0" ? "" : `ip daddr ${checkIPv4(r.hostIp)} `;
    return `add rule inet ${TABLE} ${PORTS_CHAIN} ${daddr}meta l4proto ${r.proto} ` +
      `${r.proto} dport ${checkPort(r.hostPort)} dnat ip to ${to}:${checkPort(r.containerPort)} ` +
      `comment "${ruleComment(id)}"\n`;
  }).join("");
}

function hasPortChains(): boolean {
  return listNft(`list chains inet`).some((o) =>
    o.chain?.table === TABLE && o.chain?.name === PORTS_CHAIN
  );
}

/**
 * Lets the kernel route connections to 127.0.0.1 out through `bridge` once rewritten (and
 * their answers back): `net.ipv4.conf.BRIDGE.route_localnet`, as netavark sets it.
 */
function routeLocalnet(bridge: string): void {
  if (!/^[a-zA-Z0-9_.-]{1,15}$/.test(bridge)) throw new RangeError(`bad bridge name: ${bridge}`);
  const path = `/proc/sys/net/ipv4/conf/${bridge}/route_localnet`;
  if (Deno.readTextFileSync(path).trim() !== "1") Deno.writeTextFileSync(path, "1\n");
}

/**
 * Publishes `rules` of container `id` by DNAT to `ip` on `bridge`, in one transaction (with the
 * chains, the first time). The table must exist (the container's network is up).
 */
export function addPortRules(
  id: string,
  ip: string,
  bridge: string,
  rules: readonly PortRule[],
): void {
  if (rules.length === 0) return;
  withHostNetworkLock(() => {
    routeLocalnet(bridge);
    // A killed supervisor's rules for the same id, and rules for these ports left by others,
    // go in the same transaction.
    const stale = [...new Set([...ruleHandles(id), ...clashingHandles(rules)])]
      .map((h) => `delete rule inet ${TABLE} ${PORTS_CHAIN} handle ${h}\n`).join("");
    runNft((hasPortChains() ? "" : portChainsText()) + stale + portRulesText(id, ip, rules));
  });
}

/** A rule of {@link PORTS_CHAIN} as nft lists it (JSON), reduced to what tsbox wrote. */
interface ListedRule {
  readonly handle: number;
  readonly comment?: string;
  readonly proto?: string;
  readonly port?: number;
  /** The host address matched; absent: every local address. */
  readonly daddr?: string;
  /** The address rewritten to. */
  readonly to?: string;
}

function listedRules(): ListedRule[] {
  if (!tableExists() || !hasPortChains()) return [];
  return listNft(`list chain inet ${TABLE} ${PORTS_CHAIN}`, { handles: true })
    .flatMap((o) => o.rule && typeof o.rule.handle === "number" ? [parseRule(o.rule)] : []);
}

interface Expr {
  match?: { left?: { payload?: { protocol?: string; field?: string } }; right?: unknown };
  dnat?: { addr?: unknown };
}

function parseRule(r: Record<string, unknown>): ListedRule {
  let proto: string | undefined, port: number | undefined;
  let daddr: string | undefined, to: string | undefined;
  for (const e of (Array.isArray(r.expr) ? r.expr : []) as Expr[]) {
    const payload = e.match?.left?.payload;
    const right = e.match?.right;
    if (payload?.field === "dport" && typeof right === "number") {
      proto = payload.protocol;
      port = right;
    }
    if (payload?.protocol === "ip" && payload.field === "daddr" && typeof right === "string") {
      daddr = right;
    }
    if (typeof e.dnat?.addr === "string") to = e.dnat.addr;
  }
  const comment = typeof r.comment === "string" ? r.comment : undefined;
  return { handle: r.handle as number, comment, proto, port, daddr, to };
}

/**
 * Handles of container `id`'s rules in {@link PORTS_CHAIN} (none without the chain); with `to`,
 * only those rewriting to that address.
 */
function ruleHandles(id: string, to?: string): number[] {
  const comment = ruleComment(id);
  return listedRules().filter((r) => r.comment === comment && (to === undefined || r.to === to))
    .map((r) => r.handle);
}

/**
 * Rules another container left for the same host port (its supervisor killed, its store
 * gone): whoever holds the port's socket now owns the port, so any such rule is stale.
 */
function clashingHandles(rules: readonly PortRule[]): number[] {
  return listedRules().filter((l) =>
    rules.some((r) =>
      l.proto === r.proto && l.port === r.hostPort &&
      (l.daddr === undefined || r.hostIp === "0.0.0.0" || l.daddr === r.hostIp)
    )
  ).map((l) => l.handle);
}

/**
 * Removes the rules rewriting to addresses of `subnet` (a network whose store is gone: its
 * bridge is being reaped, owners.ts). Call under the host network lock.
 */
export function removePortRulesInto(subnet: string): void {
  const m = /^(\d{1,3}(?:\.\d{1,3}){3})\/(\d{1,2})$/.exec(subnet);
  if (!m) return;
  const bits = Number(m[2]);
  const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
  const num = (ip: string) => ip.split(".").reduce((a, o) => ((a << 8) | Number(o)) >>> 0, 0);
  const net = (num(m[1]) & mask) >>> 0;
  const handles = listedRules().filter((r) =>
    r.to !== undefined && /^\d{1,3}(\.\d{1,3}){3}$/.test(r.to) && ((num(r.to) & mask) >>> 0) === net
  ).map((r) => r.handle);
  if (handles.length === 0) return;
  runNft(handles.map((h) => `delete rule inet ${TABLE} ${PORTS_CHAIN} handle ${h}\n`).join(""));
}

/** The published ports of container `id` in the kernel now (as `nft` lists them). */
export function portRuleCount(id: string): number {
  return ruleHandles(id).length;
}

/**
 * Removes container `id`'s DNAT rules (with `to`, those rewriting to that address: the
 * container left that network, and the address may go to another container); nothing when it
 * has none. Safe to repeat and to run from another process (a dead supervisor's container,
 * reaped by the next command).
 */
export function removePortRules(id: string, to?: string): void {
  withHostNetworkLock(() => {
    const handles = ruleHandles(id, to);
    if (handles.length === 0) return;
    runNft(
      handles.map((h) => `delete rule inet ${TABLE} ${PORTS_CHAIN} handle ${h}\n`).join(""),
    );
  });
}

/** The container side's table (in the container's own network namespace). */
export const INNER_TABLE = "tsbox_ports";

/** What the container side's rules need of its network. */
export interface InnerTarget {
  /** The container's address the host rewrites to. */
  readonly ip: string;
  /** Its network's gateway (the source of masqueraded connections). */
  readonly gateway: string;
  /** Its network's IPv4 subnet. */
  readonly subnet: string;
}

/** The table that delivers the host's rewritten connections to 127.0.0.1 in the container. */
export function innerTableText(
  t: InnerTarget,
  ports: readonly { readonly containerPort: number; readonly proto: "tcp" | "udp" }[],
): string {
  const ip = checkIPv4(t.ip);
  const gw = checkIPv4(t.gateway);
  if (!/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/.test(t.subnet)) {
    throw new RangeError(`bad subnet: ${t.subnet}`);
  }
  const seen = new Set<string>();
  const inbound: string[] = [];
  const outbound: string[] = [];
  for (const p of ports) {
    const port = checkPort(p.containerPort);
    const key = `${p.proto}/${port}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const l4 = `meta l4proto ${p.proto} ${p.proto}`;
    for (const from of [`ip saddr ${gw}`, `ip saddr != ${t.subnet}`]) {
      inbound.push(`    ip daddr ${ip} ${from} ${l4} dport ${port} ip daddr set 127.0.0.1`);
    }
    outbound.push(
      `    ip saddr 127.0.0.1 ip daddr != 127.0.0.0/8 ${l4} sport ${port} ip saddr set ${ip}`,
    );
  }
  // Stateless (addresses rewritten in place, checksums with them): no conntrack in the
  // container's namespace, whose cost showed per packet (bench/ports_bench.ts).
  return `table ip ${INNER_TABLE} {
  chain inbound {
    type filter hook prerouting priority raw; policy accept;
    iifname != "lo" ip daddr 127.0.0.0/8 drop
${inbound.join("\n")}
  }
  chain outbound {
    type filter hook output priority raw; policy accept;
${outbound.join("\n")}
  }
}
`;
}

/**
 * Adds the container side's table in the network namespace of process `pid` (PID 1, not yet
 * released; a fresh namespace, so nothing of an earlier run is there) and turns on
 * `route_localnet` there. The calling thread joins that namespace only for this (no await).
 */
export function addInnerRules(
  pid: number,
  t: InnerTarget,
  ports: readonly { readonly containerPort: number; readonly proto: "tcp" | "udp" }[],
): void {
  const text = innerTableText(t, ports);
  const own = openNamespaceFile("/proc/thread-self/ns/net");
  try {
    const fd = openNamespaceFile(`/proc/${pid}/ns/net`);
    try {
      setns(fd, NAMESPACE_TYPES.net);
      try {
        // /proc/sys/net is the calling thread's namespace's.
        Deno.writeTextFileSync("/proc/sys/net/ipv4/conf/all/route_localnet", "1\n");
        runNft(text);
      } finally {
        setns(own, NAMESPACE_TYPES.net);
      }
    } finally {
      closeNamespaceFd(fd);
    }
  } finally {
    closeNamespaceFd(own);
  }
}
