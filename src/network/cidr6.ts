/**
 * IPv6 addresses and subnets as 128-bit bigints, for networks made with `--ipv6`: parsing
 * `--subnet fd00:1::/64` with errors naming what was wrong, RFC 5952 text, and a container's
 * address in the subnet. A container's IPv6 address has the same host number as its IPv4 lease
 * (the lease's offset in the IPv4 subnet), so the IPv4 lease, taken in one transaction, makes
 * it unique too; nothing more is recorded.
 *
 * @module
 */
import { UsageError } from "../errors.ts";

/** An IPv6 subnet: its first address and its prefix length. */
export interface Subnet6 {
  readonly base: bigint;
  readonly prefix: number;
}

const ALL = (1n << 128n) - 1n;

/** Parses IPv6 text (no zone, no embedded IPv4) into a bigint; undefined when it is not one. */
export function parseIPv6(text: string): bigint | undefined {
  if (!/^[0-9a-fA-F:]+$/.test(text) || text.includes(":::")) return undefined;
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const groups = (s: string) => (s === "" ? [] : s.split(":"));
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const all = [...head, ...Array(halves.length === 2 ? missing : 0).fill("0"), ...tail];
  let n = 0n;
  for (const g of all) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
    n = (n << 16n) | BigInt(parseInt(g, 16));
  }
  return n;
}

/** Formats a bigint as IPv6 text in RFC 5952's form (lower case, longest zero run as `::`). */
export function formatIPv6(n: bigint): string {
  const g = Array.from({ length: 8 }, (_, i) => Number((n >> BigInt(112 - 16 * i)) & 0xffffn));
  let best = -1, bestLen = 1;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  const hex = (xs: number[]) => xs.map((x) => x.toString(16)).join(":");
  if (best < 0) return hex(g);
  return `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}

/** The mask of a prefix length. */
function mask6(prefix: number): bigint {
  return prefix === 0 ? 0n : (ALL << BigInt(128 - prefix)) & ALL;
}

/** Formats a subnet as CIDR text. */
export function formatSubnet6(s: Subnet6): string {
  return `${formatIPv6(s.base)}/${s.prefix}`;
}

/**
 * Parses an IPv6 `--subnet`: IPv6 CIDR with a prefix between /48 and /120 (room for the
 * addresses of the IPv4 subnet's hosts) and no host bits set.
 */
export function parseSubnet6(text: string): Subnet6 {
  const m = /^([0-9a-fA-F:]+)\/([0-9]{1,3})$/.exec(text.trim());
  const base = m ? parseIPv6(m[1]) : undefined;
  if (!m || base === undefined || Number(m[2]) > 128) {
    throw new UsageError(
      `invalid subnet ${JSON.stringify(text)}: expected IPv6 CIDR like fd00:1::/64`,
    );
  }
  const prefix = Number(m[2]);
  if (prefix < 48 || prefix > 120) {
    throw new UsageError(`invalid subnet ${text}: the prefix length must be between /48 and /120`);
  }
  const masked = base & mask6(prefix);
  if (masked !== base) {
    throw new UsageError(
      `invalid subnet ${text}: host bits are set (did you mean ${
        formatSubnet6({ base: masked, prefix })
      }?)`,
    );
  }
  return { base, prefix };
}

/** Whether two subnets share an address. */
export function overlaps6(a: Subnet6, b: Subnet6): boolean {
  const p = Math.min(a.prefix, b.prefix);
  return (a.base & mask6(p)) === (b.base & mask6(p));
}

/** Whether `ip` lies in `s`. */
export function contains6(s: Subnet6, ip: bigint): boolean {
  return (ip & mask6(s.prefix)) === s.base;
}

/** The address `host` (a host number, >= 1) of the subnet. */
export function addressAt6(s: Subnet6, host: number): string {
  return formatIPv6(s.base + BigInt(host));
}

/**
 * A unique local /64 (fd00::/8, RFC 4193) for a network created with `--ipv6` and no IPv6
 * subnet: the 40-bit global id and 16-bit subnet id from the network id's first 14 hex digits,
 * random as the RFC asks.
 */
export function ulaFor(networkId: string): Subnet6 {
  const hex = networkId.slice(0, 14).padEnd(14, "0");
  return { base: BigInt(`0xfd${hex}`) << 64n, prefix: 64 };
}
