/**
 * IPv4 addresses and subnets as numbers: parsing user input (`--subnet`, `--gateway`, `--ip`)
 * with errors that name what was wrong, containment and overlap, and MAC addresses derived from
 * an address as docker derives them (02:42 + the four bytes).
 *
 * @module
 */
import { UsageError } from "../errors.ts";

/** An IPv4 subnet: its first address as an unsigned 32-bit number and its prefix length. */
export interface Subnet {
  readonly base: number;
  readonly prefix: number;
}

/** Parses a dotted quad into an unsigned 32-bit number; undefined when it is not one. */
export function parseIPv4(text: string): number | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  let n = 0;
  for (const p of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p) || Number(p) > 255) return undefined;
    n = n * 256 + Number(p);
  }
  return n;
}

/** Formats an unsigned 32-bit number as a dotted quad. */
export function formatIPv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff].join(".");
}

/** The netmask of a prefix length as an unsigned number. */
export function maskOf(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** Formats a subnet as CIDR text. */
export function formatSubnet(s: Subnet): string {
  return `${formatIPv4(s.base)}/${s.prefix}`;
}

/**
 * Parses `--subnet` text. Refuses what is not IPv4 CIDR, a prefix outside /8../30 (smaller
 * leaves no room for a gateway and a container, larger is surely a typo), and host bits set
 * (naming the subnet that was probably meant).
 */
export function parseSubnet(text: string): Subnet {
  const m = /^([0-9.]+)\/([0-9]{1,2})$/.exec(text.trim());
  const base = m ? parseIPv4(m[1]) : undefined;
  if (!m || base === undefined || Number(m[2]) > 32) {
    throw new UsageError(
      `invalid subnet ${JSON.stringify(text)}: expected IPv4 CIDR like 10.1.0.0/24`,
    );
  }
  const prefix = Number(m[2]);
  if (prefix < 8 || prefix > 30) {
    throw new UsageError(`invalid subnet ${text}: the prefix length must be between /8 and /30`);
  }
  const masked = (base & maskOf(prefix)) >>> 0;
  if (masked !== base) {
    throw new UsageError(
      `invalid subnet ${text}: host bits are set (did you mean ${formatIPv4(masked)}/${prefix}?)`,
    );
  }
  return { base, prefix };
}

/** The last address of a subnet (its broadcast address). */
export function lastOf(s: Subnet): number {
  return (s.base | ~maskOf(s.prefix)) >>> 0;
}

/** Whether `ip` lies in `s`. */
export function contains(s: Subnet, ip: number): boolean {
  return ((ip & maskOf(s.prefix)) >>> 0) === s.base;
}

/** Whether two subnets share any address. */
export function overlaps(a: Subnet, b: Subnet): boolean {
  const p = Math.min(a.prefix, b.prefix);
  return ((a.base & maskOf(p)) >>> 0) === ((b.base & maskOf(p)) >>> 0);
}

/**
 * Parses an address that must be usable by a host in `s` (`--gateway`, `--ip`): inside the
 * subnet, neither its network nor its broadcast address. `what` names the flag in errors.
 */
export function parseHostAddress(text: string, s: Subnet, what: string): number {
  const ip = parseIPv4(text.trim());
  if (ip === undefined) {
    throw new UsageError(`invalid ${what} ${JSON.stringify(text)}: not an IPv4 address`);
  }
  if (!contains(s, ip)) {
    throw new UsageError(`invalid ${what} ${text}: not in subnet ${formatSubnet(s)}`);
  }
  if (ip === s.base || ip === lastOf(s)) {
    throw new UsageError(
      `invalid ${what} ${text}: the ${ip === s.base ? "network" : "broadcast"} address of ` +
        `${formatSubnet(s)} cannot be used`,
    );
  }
  return ip;
}

/** docker's MAC for a container address: 02:42 followed by the address's four bytes. */
export function macFor(ip: number): string {
  return [
    "02",
    "42",
    ...formatIPv4(ip).split(".").map((b) => Number(b).toString(16).padStart(2, "0")),
  ]
    .join(":");
}

/** A pool of subnets to pick default ones from, as docker's default-address-pools. */
export interface Pool {
  /** The range the subnets are cut from. */
  readonly base: Subnet;
  /** Prefix length of each subnet cut from it. */
  readonly size: number;
}

/**
 * tsbox's default pool: 10.90.0.0/15 cut into /24s (512 networks), beside podman's 10.88/16 and
 * 10.89/16 and away from docker's 172.17-31/16 and 192.168/16.
 */
export const DEFAULT_POOLS: readonly Pool[] = [{
  base: { base: parseIPv4("10.90.0.0")!, prefix: 15 },
  size: 24,
}];

/** The first subnet of `pools`, in order, that overlaps none of `taken`; undefined if none. */
export function pickSubnet(pools: readonly Pool[], taken: readonly Subnet[]): Subnet | undefined {
  for (const pool of pools) {
    const step = 2 ** (32 - pool.size);
    for (let base = pool.base.base; base <= lastOf(pool.base); base += step) {
      const candidate = { base, prefix: pool.size };
      if (!taken.some((t) => overlaps(t, candidate))) return candidate;
    }
  }
  return undefined;
}
