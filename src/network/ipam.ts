/**
 * Address leases (table `network_leases`): each holder (a container) gets one address per
 * network, chosen and recorded inside one write transaction, so two concurrent `run`s never get
 * the same address. The first free address above the network address is taken, skipping the
 * gateway; a requested one (`--ip`) must be free and usable.
 *
 * @module
 */
import { TsboxError } from "../errors.ts";
import type { Store } from "../store/mod.ts";
import {
  formatIPv4,
  lastOf,
  macFor,
  parseHostAddress,
  parseIPv4,
  parseSubnet,
  type Subnet,
} from "./cidr.ts";
import { networkEvent, type NetworkRecord } from "./records.ts";
import { addressAt6, contains6, formatIPv6, parseIPv6, parseSubnet6 } from "./cidr6.ts";

/**
 * The IPv6 address of a lease on `net`: the one given with `--ip6`, else the IPv4 address's host
 * number in the IPv6 subnet (`lease` may be that IPv4 address alone); undefined on an IPv4-only
 * network.
 */
export function address6Of(net: NetworkRecord, lease: string | Lease): string | undefined {
  if (net.subnet6 === undefined) return undefined;
  if (typeof lease !== "string" && lease.address6 !== undefined) return lease.address6;
  const address = typeof lease === "string" ? lease : lease.address;
  const host = (parseIPv4(address) ?? 0) - parseSubnet(net.subnet).base;
  return addressAt6(parseSubnet6(net.subnet6), host);
}

/** One holder's address on one network. */
export interface Lease {
  readonly networkId: string;
  readonly address: string;
  readonly holder: string;
  readonly mac: string;
  /** The host end of the holder's veth pair. */
  readonly veth: string;
  readonly aliases: readonly string[];
  /** The IPv6 address given with `--ip6` (see {@link address6Of}). */
  readonly address6?: string;
}

interface Row {
  network_id: string;
  address: string;
  holder: string;
  mac: string;
  veth: string;
  aliases: string;
  address6: string | null;
}

function toLease(r: Row): Lease {
  return {
    networkId: r.network_id,
    address: r.address,
    holder: r.holder,
    mac: r.mac,
    veth: r.veth,
    aliases: JSON.parse(r.aliases) as string[],
    ...(r.address6 ? { address6: r.address6 } : {}),
  };
}

/** An address that cannot be given: in use, or the network is full. */
export class AddressError extends TsboxError {
  constructor(message: string) {
    super(message);
    this.name = "AddressError";
  }
}

/**
 * The host-side veth name of `holder` on `networkId`: `tsbv` + 8 hex digits of a hash of both,
 * so that what a killed process left can be found from the records alone.
 */
export function vethName(networkId: string, holder: string): string {
  let h = 0x811c9dc5; // FNV-1a, 32 bits
  for (const c of `${networkId}/${holder}`) {
    h ^= c.charCodeAt(0);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return `tsbv${h.toString(16).padStart(8, "0")}`;
}

/**
 * The lowest free address of `subnet` (not the network, broadcast or gateway address, nor one of
 * `used`); undefined when the subnet is full.
 */
export function firstFree(
  subnet: Subnet,
  gateway: number,
  used: ReadonlySet<number>,
): number | undefined {
  for (let ip = subnet.base + 1; ip < lastOf(subnet); ip++) {
    if (ip !== gateway && !used.has(ip)) return ip;
  }
  return undefined;
}

/** What to lease. */
export interface LeaseRequest {
  /** Who holds the address (a container id). */
  readonly holder: string;
  /** A specific address (`--ip`). */
  readonly ip?: string;
  readonly aliases?: readonly string[];
  /** A specific IPv6 address (`--ip6`, networks with IPv6 only). */
  readonly ip6?: string;
}

/**
 * Leases an address on `net` for `req.holder`, or returns the lease it already has (a holder
 * attached again keeps its address).
 */
export function leaseAddress(store: Store, net: NetworkRecord, req: LeaseRequest): Lease {
  return store.db.transaction(() => {
    const existing = store.db.get<Row>(
      "SELECT * FROM network_leases WHERE network_id = ? AND holder = ?",
      net.id,
      req.holder,
    );
    if (existing) return toLease(existing);
    const subnet = parseSubnet(net.subnet);
    const gateway = parseIPv4(net.gateway)!;
    const rows = store.db.all<Row>("SELECT * FROM network_leases WHERE network_id = ?", net.id)
      .map(toLease);
    const used = new Set(rows.map((r) => parseIPv4(r.address)!));
    const ip6 = req.ip6 !== undefined ? checkIp6(net, req.ip6, rows) : undefined;
    // An IPv4 address whose IPv6 twin another holder took with --ip6 is skipped.
    const explicit6 = new Set(rows.flatMap((r) => r.address6 ?? []));
    if (ip6 !== undefined) explicit6.add(ip6);
    const base6 = net.subnet6 !== undefined ? parseSubnet6(net.subnet6).base : 0n;
    for (const taken of explicit6) {
      const host = parseIPv6(taken)! - base6;
      if (host >= 0n && host < BigInt(lastOf(subnet) - subnet.base)) {
        used.add(subnet.base + Number(host));
      }
    }
    let ip: number | undefined;
    if (req.ip !== undefined) {
      ip = parseHostAddress(req.ip, subnet, "--ip");
      if (ip === gateway) {
        throw new AddressError(`address ${req.ip} is network ${net.name}'s gateway`);
      }
      if (used.has(ip)) {
        throw new AddressError(`address ${req.ip} is already in use on network ${net.name}`);
      }
    } else {
      ip = firstFree(subnet, gateway, used);
      if (ip === undefined) {
        throw new AddressError(`no free address left on network ${net.name} (${net.subnet})`);
      }
    }
    const lease: Lease = {
      networkId: net.id,
      address: formatIPv4(ip),
      holder: req.holder,
      mac: macFor(ip),
      veth: vethName(net.id, req.holder),
      aliases: [...(req.aliases ?? [])],
      ...(ip6 !== undefined ? { address6: ip6 } : {}),
    };
    store.db.run(
      `INSERT INTO network_leases (network_id, address, holder, mac, veth, aliases, created_at,
                                   address6)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      lease.networkId,
      lease.address,
      lease.holder,
      lease.mac,
      lease.veth,
      JSON.stringify(lease.aliases),
      Date.now(),
      ip6 ?? null,
    );
    networkEvent(store.root, "connect", net.id, {
      container: req.holder,
      name: net.name,
      type: "bridge",
    });
    return lease;
  });
}

/**
 * A requested IPv6 address (`--ip6`) in canonical form: on an IPv6 network, inside its subnet,
 * not its gateway and not the address of another lease (given or derived).
 */
function checkIp6(net: NetworkRecord, requested: string, leases: readonly Lease[]): string {
  if (net.subnet6 === undefined || net.gateway6 === undefined) {
    throw new AddressError(
      `network ${net.name} has no IPv6 subnet: --ip6 needs a network created with --ipv6`,
    );
  }
  const value = parseIPv6(requested);
  const subnet6 = parseSubnet6(net.subnet6);
  if (value === undefined) throw new AddressError(`invalid IPv6 address: ${requested}`);
  if (!contains6(subnet6, value) || value === subnet6.base) {
    throw new AddressError(`address ${requested} is not a host address of ${net.subnet6}`);
  }
  const ip6 = formatIPv6(value);
  if (ip6 === net.gateway6) {
    throw new AddressError(`address ${requested} is network ${net.name}'s gateway`);
  }
  if (leases.some((l) => address6Of(net, l) === ip6)) {
    throw new AddressError(`address ${requested} is already in use on network ${net.name}`);
  }
  return ip6;
}

/** The lease of `holder` on `networkId`, if any. */
export function findLease(store: Store, networkId: string, holder: string): Lease | undefined {
  const r = store.db.get<Row>(
    "SELECT * FROM network_leases WHERE network_id = ? AND holder = ?",
    networkId,
    holder,
  );
  return r ? toLease(r) : undefined;
}

/** Every lease on a network, by address. */
export function leasesOf(store: Store, networkId: string): Lease[] {
  return store.db.all<Row>(
    "SELECT * FROM network_leases WHERE network_id = ? ORDER BY address",
    networkId,
  ).map(toLease);
}

/** Every lease a holder has, on any network. */
export function leasesHeldBy(store: Store, holder: string): Lease[] {
  return store.db.all<Row>("SELECT * FROM network_leases WHERE holder = ?", holder).map(toLease);
}

/** Gives an address back. */
export function releaseLease(store: Store, networkId: string, holder: string): void {
  const gone = store.db.run(
    "DELETE FROM network_leases WHERE network_id = ? AND holder = ?",
    networkId,
    holder,
  ).changes > 0;
  const net = gone
    ? store.db.get<{ name: string }>("SELECT name FROM networks WHERE id = ?", networkId)
    : undefined;
  if (net) {
    networkEvent(store.root, "disconnect", networkId, {
      container: holder,
      name: net.name,
      type: "bridge",
    });
  }
}
