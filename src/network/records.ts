/**
 * Network records in the state database (table `networks`): reading by name, id or id prefix,
 * inserting with the checks that need the other records (name in use, subnet overlaps), deleting.
 * No kernel work here.
 *
 * @module
 */
import { makeEvent, recordEvent } from "../events/log.ts";
import { NotFoundError, TsboxError } from "../errors.ts";
import type { Store } from "../store/mod.ts";
import { formatSubnet, overlaps, parseSubnet, type Subnet } from "./cidr.ts";
import { overlaps6, parseSubnet6 } from "./cidr6.ts";

/** The name of the default network, as docker's. */
export const DEFAULT_NETWORK = "bridge";

/** Names `network create` refuses: docker's predefined networks, tsbox's own modes. */
export const PREDEFINED = new Set([
  DEFAULT_NETWORK,
  "host",
  "none",
  "private",
  "default",
  "pasta",
  "slirp4netns",
]);

/** A network name as docker accepts it. */
export const NETWORK_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** One bridge network as the database records it. */
export interface NetworkRecord {
  /** 64 hex digits. */
  readonly id: string;
  readonly name: string;
  readonly driver: "bridge";
  /** The host's bridge interface. */
  readonly bridge: string;
  /** IPv4 CIDR. */
  readonly subnet: string;
  /** The bridge's own address, containers' default route. */
  readonly gateway: string;
  /** No route out: no masquerade, nothing forwarded off the bridge. */
  readonly internal: boolean;
  /** IPv6 CIDR of a network made with `--ipv6`. */
  readonly subnet6?: string;
  /** The bridge's IPv6 address (with {@link subnet6}). */
  readonly gateway6?: string;
  readonly labels: Readonly<Record<string, string>>;
  /** ms since the epoch. */
  readonly createdAt: number;
}

interface Row {
  id: string;
  name: string;
  driver: string;
  bridge: string;
  subnet: string;
  gateway: string;
  internal: number;
  labels: string;
  created_at: number;
  subnet6: string | null;
  gateway6: string | null;
}

function toRecord(r: Row): NetworkRecord {
  return {
    id: r.id,
    name: r.name,
    driver: "bridge",
    bridge: r.bridge,
    subnet: r.subnet,
    gateway: r.gateway,
    internal: r.internal !== 0,
    ...(r.subnet6 && r.gateway6 ? { subnet6: r.subnet6, gateway6: r.gateway6 } : {}),
    labels: JSON.parse(r.labels) as Record<string, string>,
    createdAt: r.created_at,
  };
}

/** A subnet that overlaps another network's or a host route: names both. */
export class SubnetOverlapError extends TsboxError {
  constructor(readonly subnet: string, readonly other: string) {
    super(`subnet ${subnet} overlaps ${other}`);
    this.name = "SubnetOverlapError";
  }
}

/** `network create` with a name another network has. */
export class NetworkExistsError extends TsboxError {
  constructor(readonly network: string) {
    super(`network with name ${network} already exists`);
    this.name = "NetworkExistsError";
  }
}

/** Every network, ordered by name. */
export function listNetworkRecords(store: Store): NetworkRecord[] {
  return store.db.all<Row>("SELECT * FROM networks ORDER BY name").map(toRecord);
}

/** The network named `ref`, with id `ref`, or whose id starts with `ref` (if only one does). */
export function findNetwork(store: Store, ref: string): NetworkRecord | undefined {
  const byName = store.db.get<Row>("SELECT * FROM networks WHERE name = ?", ref);
  if (byName) return toRecord(byName);
  if (!/^[0-9a-f]{1,64}$/.test(ref)) return undefined;
  const rows = store.db.all<Row>(
    "SELECT * FROM networks WHERE id >= ? AND id < ? LIMIT 2",
    ref,
    `${ref}g`,
  );
  if (rows.length > 1) throw new TsboxError(`network ${ref} is ambiguous (${rows.length} matches)`);
  return rows[0] ? toRecord(rows[0]) : undefined;
}

/** {@link findNetwork}, or docker's `network NAME not found`. */
export function requireNetwork(store: Store, ref: string): NetworkRecord {
  const found = findNetwork(store, ref);
  if (!found) throw new NotFoundError("network", ref, undefined);
  return found;
}

/** Subnets of every recorded network. */
export function recordedSubnets(store: Store): { name: string; subnet: Subnet }[] {
  return store.db.all<{ name: string; subnet: string }>("SELECT name, subnet FROM networks")
    .map((r) => ({ name: r.name, subnet: parseSubnet(r.subnet) }));
}

/** What {@link insertNetwork} records. */
export type NewNetwork = Omit<NetworkRecord, "createdAt" | "driver">;

/**
 * Records a network in one transaction, refusing a name in use and a subnet that overlaps another
 * network's (checked inside the write lock, so two concurrent creates cannot both pass).
 */
export function insertNetwork(store: Store, n: NewNetwork): NetworkRecord {
  return store.db.transaction(() => {
    if (store.db.get("SELECT 1 AS x FROM networks WHERE name = ?", n.name)) {
      throw new NetworkExistsError(n.name);
    }
    const mine = parseSubnet(n.subnet);
    for (const other of recordedSubnets(store)) {
      if (overlaps(mine, other.subnet)) {
        throw new SubnetOverlapError(
          n.subnet,
          `network ${other.name}'s subnet ${formatSubnet(other.subnet)}`,
        );
      }
    }
    if (n.subnet6 !== undefined) {
      const mine6 = parseSubnet6(n.subnet6);
      const rows = store.db.all<{ name: string; subnet6: string }>(
        "SELECT name, subnet6 FROM networks WHERE subnet6 IS NOT NULL",
      );
      for (const other of rows) {
        if (overlaps6(mine6, parseSubnet6(other.subnet6))) {
          throw new SubnetOverlapError(
            n.subnet6,
            `network ${other.name}'s subnet ${other.subnet6}`,
          );
        }
      }
    }
    const createdAt = Date.now();
    store.db.run(
      `INSERT INTO networks (id, name, driver, bridge, subnet, gateway, internal, labels, created_at,
                             subnet6, gateway6)
       VALUES (?, ?, 'bridge', ?, ?, ?, ?, ?, ?, ?, ?)`,
      n.id,
      n.name,
      n.bridge,
      n.subnet,
      n.gateway,
      n.internal ? 1 : 0,
      JSON.stringify(n.labels),
      createdAt,
      n.subnet6 ?? null,
      n.gateway6 ?? null,
    );
    networkEvent(store.root, "create", n.id, { name: n.name, type: "bridge" });
    return { ...n, driver: "bridge" as const, createdAt };
  });
}

/** Deletes a network's record (its leases must be gone). */
export function deleteNetworkRecord(store: Store, id: string): void {
  const row = store.db.get<{ name: string }>("SELECT name FROM networks WHERE id = ?", id);
  store.db.run("DELETE FROM networks WHERE id = ?", id);
  if (row) networkEvent(store.root, "destroy", id, { name: row.name, type: "bridge" });
}

/** docker's network events: the Actor is the network's id (`connect` adds the container). */
export function networkEvent(
  root: string,
  action: string,
  id: string,
  attributes: Record<string, string>,
): void {
  recordEvent(root, makeEvent("network", action, id, attributes));
}

/** A new network id: 64 random hex digits. */
export function newNetworkId(): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(32)),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
}
