/**
 * What the network commands do, loaded only when one of them runs. Output and messages follow
 * docker's.
 *
 * @module
 */
import { TsboxError, UsageError } from "../errors.ts";
import type { Store } from "../store/mod.ts";
import {
  address6Of,
  createNetwork,
  ensureDefaultNetwork,
  leasesOf,
  listNetworks,
  type NetworkRecord,
  pruneNetworks,
  removeNetwork,
  requireNetwork,
} from "../network/mod.ts";
import { table } from "./format.ts";
import { isDefaultTable, printInspect, printList } from "./formats.ts";
import { GO_TYPE, type Row } from "./template/values.ts";
import type { GlobalOptions } from "./globals.ts";
import { withStore } from "./with_store.ts";

function parseLabels(values: readonly string[] = []): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const v of values) {
    const i = v.indexOf("=");
    if (i === 0) throw new UsageError(`invalid label '${v}': empty name`);
    if (i < 0) labels[v] = "";
    else labels[v.slice(0, i)] = v.slice(i + 1);
  }
  return labels;
}

/** `network create [--subnet C] [--gateway IP] [--internal] [--label K=V] NAME`: prints the id. */
export async function networkCreateCommand(
  g: GlobalOptions,
  name: string,
  opts: {
    driver?: string;
    subnet?: string[];
    gateway?: string[];
    ipv6?: boolean;
    internal?: boolean;
    label?: string[];
  },
): Promise<void> {
  if (opts.driver !== undefined && opts.driver !== "bridge") {
    throw new UsageError(`network driver "${opts.driver}" is not supported (only bridge)`);
  }
  const labels = parseLabels(opts.label);
  // As docker: --subnet and --gateway once per address family.
  const one = (values: string[] | undefined, v6: boolean, flag: string) => {
    const of = (values ?? []).filter((v) => v.includes(":") === v6);
    if (of.length > 1) {
      throw new UsageError(`${flag} given twice for IPv${v6 ? 6 : 4}: ${of.join(", ")}`);
    }
    return of[0];
  };
  await withStore(g, (store) => {
    const net = createNetwork(store, {
      name,
      subnet: one(opts.subnet, false, "--subnet"),
      gateway: one(opts.gateway, false, "--gateway"),
      subnet6: one(opts.subnet, true, "--subnet"),
      gateway6: one(opts.gateway, true, "--gateway"),
      ipv6: opts.ipv6,
      internal: opts.internal,
      labels,
    });
    console.log(net.id);
  });
}

function created(n: NetworkRecord): string {
  return new Date(n.createdAt).toISOString();
}

/** docker's header for each field of a `network ls` row. */
const NETWORK_HEADERS: Record<string, string> = {
  ID: "NETWORK ID",
  Name: "NAME",
  Driver: "DRIVER",
  Scope: "SCOPE",
  IPv4: "IPV4",
  IPv6: "IPV6",
  Internal: "INTERNAL",
  Labels: "LABELS",
  CreatedAt: "CREATED",
};

/** A `network ls --format` row: docker's networkContext. */
function networkRow(n: NetworkRecord, trunc: boolean): Row {
  return {
    [GO_TYPE]: "*formatter.networkContext",
    ID: () => trunc ? n.id.slice(0, 12) : n.id,
    Name: () => n.name,
    Driver: () => n.driver,
    Scope: () => "local",
    IPv4: () => "true",
    IPv6: () => String(n.subnet6 !== undefined),
    Internal: () => String(n.internal),
    Labels: () => Object.keys(n.labels).sort().map((k) => `${k}=${n.labels[k]}`).join(","),
    CreatedAt: () => created(n),
    Label: (name: unknown) => n.labels[String(name)] ?? "",
  };
}

/** `network ls [-q] [--no-trunc] [--format F]`. */
export async function networkLsCommand(
  g: GlobalOptions,
  opts: { quiet?: boolean; trunc?: boolean; format?: string },
): Promise<void> {
  await withStore(g, async (store) => {
    const nets = listNetworks(store);
    const trunc = opts.trunc !== false;
    const id = (n: NetworkRecord) => trunc ? n.id.slice(0, 12) : n.id;
    if (opts.quiet) {
      for (const n of nets) console.log(id(n));
      return;
    }
    if (!isDefaultTable(opts.format)) {
      await printList(opts.format!, nets.map((n) => networkRow(n, trunc)), NETWORK_HEADERS);
      return;
    }
    console.log(
      table(
        ["NETWORK ID", "NAME", "DRIVER", "SCOPE"],
        nets.map((n) => [id(n), n.name, n.driver, "local"]),
      ),
    );
  });
}

/** docker's `network inspect` object, with the containers holding an address on it. */
export function inspectNetwork(store: Store, n: NetworkRecord): Record<string, unknown> {
  const prefix = n.subnet.split("/")[1];
  const containers: Record<string, unknown> = {};
  for (const lease of leasesOf(store, n.id)) {
    const row = store.db.get<{ name: string }>(
      "SELECT name FROM containers WHERE id = ?",
      lease.holder,
    );
    const v6 = address6Of(n, lease);
    containers[lease.holder] = {
      Name: row?.name ?? lease.holder,
      EndpointID: lease.veth,
      MacAddress: lease.mac,
      IPv4Address: `${lease.address}/${prefix}`,
      IPv6Address: v6 ? `${v6}/${n.subnet6!.split("/")[1]}` : "",
    };
  }
  return {
    Name: n.name,
    Id: n.id,
    Created: created(n),
    Scope: "local",
    Driver: n.driver,
    EnableIPv6: n.subnet6 !== undefined,
    IPAM: {
      Driver: "default",
      Options: {},
      Config: [
        { Subnet: n.subnet, Gateway: n.gateway },
        ...(n.subnet6 ? [{ Subnet: n.subnet6, Gateway: n.gateway6 }] : []),
      ],
    },
    Internal: n.internal,
    Attachable: false,
    Ingress: false,
    ConfigFrom: { Network: "" },
    ConfigOnly: false,
    Containers: containers,
    Options: { "com.docker.network.bridge.name": n.bridge },
    Labels: { ...n.labels },
  };
}

/** `network inspect [-f FORMAT] NAME...`: a JSON array; exit code 1 if one is missing. */
export async function networkInspectCommand(
  g: GlobalOptions,
  names: string[],
  opts: { format?: string } = {},
): Promise<number> {
  return await withStore(g, async (store) => {
    const found: Record<string, unknown>[] = [];
    let code = 0;
    for (const name of names) {
      try {
        if (name === "bridge") ensureDefaultNetwork(store);
        found.push(inspectNetwork(store, requireNetwork(store, name)));
      } catch (err) {
        if (!(err instanceof TsboxError)) throw err;
        console.error(`Error: ${err.message}`);
        code = 1;
      }
    }
    return Math.max(code, await printInspect(opts.format, found));
  });
}

/** `network rm NAME...`: prints each name given that was removed; exit 1 if one was refused. */
export async function networkRmCommand(g: GlobalOptions, names: string[]): Promise<number> {
  return await withStore(g, (store) => {
    let code = 0;
    for (const name of names) {
      try {
        removeNetwork(store, name);
        console.log(name);
      } catch (err) {
        if (!(err instanceof TsboxError)) throw err;
        console.error(`Error response from daemon: ${err.message}`);
        code = 1;
      }
    }
    return code;
  });
}

/** Asks on stdout, reads one line of stdin (prompt() says nothing when stdin is not a tty). */
async function confirm(question: string): Promise<boolean> {
  await Deno.stdout.write(new TextEncoder().encode(`${question} [y/N] `));
  const buf = new Uint8Array(256);
  let line = "";
  for (;;) {
    const n = await Deno.stdin.read(buf);
    if (n === null) break;
    line += new TextDecoder().decode(buf.subarray(0, n));
    if (line.includes("\n")) break;
  }
  if (!line.includes("\n")) console.log();
  return /^y(es)?$/i.test(line.split("\n")[0].trim());
}

/** `network prune [-f]`: removes every user network no container uses. */
export async function networkPruneCommand(
  g: GlobalOptions,
  opts: { force?: boolean },
): Promise<number> {
  if (!opts.force) {
    const ok = await confirm(
      "WARNING! This will remove all custom networks not used by at least one container.\n" +
        "Are you sure you want to continue?",
    );
    if (!ok) return 1;
  }
  return await withStore(g, (store) => {
    const removed = pruneNetworks(store);
    if (removed.length > 0) console.log(`Deleted Networks:\n${removed.join("\n")}\n`);
    return 0;
  });
}

/** `network connect [--alias A] [--ip IP] NET CONTAINER`. */
export async function networkConnectCommand(
  g: GlobalOptions,
  net: string,
  container: string,
  opts: { alias?: string[]; ip?: string; ip6?: string },
): Promise<void> {
  const { connectNetwork } = await import("../container/networking.ts");
  await withStore(g, (store) =>
    connectNetwork(store, net, container, {
      aliases: opts.alias,
      ip: opts.ip,
      ip6: opts.ip6,
    }));
}

/** `network disconnect [-f] NET CONTAINER`. */
export async function networkDisconnectCommand(
  g: GlobalOptions,
  net: string,
  container: string,
  opts: { force?: boolean },
): Promise<void> {
  const { disconnectNetwork } = await import("../container/networking.ts");
  await withStore(g, (store) => disconnectNetwork(store, net, container, opts.force ?? false));
}
