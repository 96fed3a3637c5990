/**
 * Network records and address leases in a store of the test's own: names and subnets refused
 * with the reason, addresses handed out lowest first, never twice, also to processes leasing at
 * the same moment.
 */
import { assertEquals, assertOk, assertRejects, assertThrows } from "../../tests/assert.ts";
import { UsageError } from "../errors.ts";
import { Store } from "../store/mod.ts";
import { takeDownStoreNetworks } from "../../tests/cleanup.ts";
import {
  address6Of,
  AddressError,
  leaseAddress,
  leasesOf,
  releaseLease,
  vethName,
} from "./ipam.ts";
import {
  insertNetwork,
  NetworkExistsError,
  type NetworkRecord,
  requireNetwork,
  SubnetOverlapError,
} from "./records.ts";
import {
  createNetwork,
  listNetworks,
  NetworkInUseError,
  pruneNetworks,
  removeNetwork,
} from "./mod.ts";

async function withStore(fn: (store: Store) => Promise<void> | void): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "tsbox-ipam-test-" });
  const store = await Store.open(root);
  try {
    await fn(store);
  } finally {
    store.close();
    // As root the networks' bridges are the host's: they go before the store does.
    if (Deno.uid() === 0) takeDownStoreNetworks(root);
    await Deno.remove(root, { recursive: true });
  }
}

function net(store: Store, name: string, subnet: string, gateway: string): NetworkRecord {
  return insertNetwork(store, {
    id: name.padEnd(64, "0").replace(/[^0-9a-f]/g, "a"),
    name,
    bridge: `tsbox-t-${name}`,
    subnet,
    gateway,
    internal: false,
    labels: {},
  });
}

Deno.test("leases: lowest free address, gateway skipped, --ip honoured, a full subnet refused", async () => {
  await withStore((store) => {
    const n = net(store, "small", "10.99.0.0/29", "10.99.0.1"); // hosts .1-.6
    const a = leaseAddress(store, n, { holder: "c1" });
    assertEquals([a.address, a.mac], ["10.99.0.2", "02:42:0a:63:00:02"]);
    assertEquals(a.veth, vethName(n.id, "c1"));
    assertOk(/^tsbv[0-9a-f]{8}$/.test(a.veth) && a.veth.length <= 15);
    assertEquals(
      leaseAddress(store, n, { holder: "c1" }).address,
      "10.99.0.2",
      "same holder, same",
    );
    assertEquals(leaseAddress(store, n, { holder: "c2", ip: "10.99.0.5" }).address, "10.99.0.5");
    assertThrows(
      () => leaseAddress(store, n, { holder: "c3", ip: "10.99.0.5" }),
      AddressError,
      "already in use on network small",
    );
    assertThrows(
      () => leaseAddress(store, n, { holder: "c3", ip: "10.99.0.1" }),
      AddressError,
      "gateway",
    );
    assertThrows(
      () => leaseAddress(store, n, { holder: "c3", ip: "10.99.1.1" }),
      UsageError,
      "not in subnet",
    );
    assertEquals(
      ["c3", "c4", "c5"].map((h) => leaseAddress(store, n, { holder: h }).address),
      ["10.99.0.3", "10.99.0.4", "10.99.0.6"],
    );
    assertThrows(() => leaseAddress(store, n, { holder: "c6" }), AddressError, "no free address");
    releaseLease(store, n.id, "c3");
    assertEquals(leaseAddress(store, n, { holder: "c6" }).address, "10.99.0.3");
    assertEquals(leasesOf(store, n.id).length, 5);
  });
});

Deno.test("network create refuses taken names, predefined names, bad and overlapping subnets", async () => {
  await withStore((store) => {
    const app = createNetwork(store, { name: "app", subnet: "10.98.0.0/16", labels: { a: "b" } });
    assertEquals([app.subnet, app.gateway, app.bridge], [
      "10.98.0.0/16",
      "10.98.0.1",
      `tsbox-${app.id.slice(0, 8)}`,
    ]);
    assertThrows(() => createNetwork(store, { name: "app" }), NetworkExistsError, "already exists");
    assertThrows(() => createNetwork(store, { name: "bridge" }), UsageError, "pre-defined");
    assertThrows(() => createNetwork(store, { name: "-x" }), UsageError, "invalid network name");
    assertThrows(
      () => createNetwork(store, { name: "b", subnet: "10.98.4.0/24" }),
      SubnetOverlapError,
      "overlaps network app's subnet 10.98.0.0/16",
    );
    assertThrows(
      () => createNetwork(store, { name: "b", subnet: "10.97.0.0/8" }),
      UsageError,
      "host bits",
    );
    assertThrows(
      () => createNetwork(store, { name: "b", subnet: "10.97.0.0/24", gateway: "10.97.1.1" }),
      UsageError,
      "not in subnet",
    );
    const gw = createNetwork(store, { name: "gw", subnet: "10.97.0.0/24", gateway: "10.97.0.254" });
    assertEquals(gw.gateway, "10.97.0.254");
    // The default network is recorded on first listing, from the pool, not over app or gw.
    const names = listNetworks(store).map((n) => n.name);
    assertEquals(names, ["app", "bridge", "gw"]);
    assertOk(requireNetwork(store, "bridge").subnet.startsWith("10.9"));
    assertThrows(() => removeNetwork(store, "bridge"), UsageError, "pre-defined");
    // In use: refused, with the holder named.
    leaseAddress(store, gw, { holder: "c".repeat(64) });
    assertThrows(() => removeNetwork(store, "gw"), NetworkInUseError, "cccccccccccc");
    assertEquals(pruneNetworks(store), ["app"]);
    releaseLease(store, gw.id, "c".repeat(64));
    assertEquals(removeNetwork(store, gw.id.slice(0, 10)).name, "gw");
    assertEquals(listNetworks(store).map((n) => n.name), ["bridge"]);
  });
});

Deno.test("processes leasing at the same moment never get the same address", async () => {
  await withStore(async (store) => {
    const n = net(store, "busy", "10.99.8.0/24", "10.99.8.1");
    const script = `
      import { Store } from "${new URL("../store/mod.ts", import.meta.url)}";
      import { leaseAddress } from "${new URL("./ipam.ts", import.meta.url)}";
      import { requireNetwork } from "${new URL("./records.ts", import.meta.url)}";
      const store = await Store.open(Deno.args[0], { sweep: false });
      const net = requireNetwork(store, "busy");
      for (let i = 0; i < 10; i++) leaseAddress(store, net, { holder: Deno.args[1] + i });
      store.close();
    `;
    const procs = ["p", "q", "r", "s"].map((who) =>
      new Deno.Command(Deno.execPath(), {
        args: ["eval", "--quiet", script, store.root, who],
        stdout: "piped",
        stderr: "piped",
      }).output()
    );
    for (const out of await Promise.all(procs)) {
      assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
    }
    const addresses = leasesOf(store, n.id).map((l) => l.address);
    assertEquals(addresses.length, 40);
    assertEquals(new Set(addresses).size, 40);
  });
});

Deno.test("an unknown network is named in the error", async () => {
  await withStore(async (store) => {
    await assertRejects(
      () => Promise.resolve().then(() => requireNetwork(store, "nope")),
      Error,
      "nope",
    );
  });
});

Deno.test("--ip6 leases: the given address kept, checked, and its IPv4 twin not handed out", async () => {
  await withStore((store) => {
    const n = insertNetwork(store, {
      id: "6".repeat(64),
      name: "six",
      bridge: "tsbox-t-six",
      subnet: "10.99.6.0/29",
      gateway: "10.99.6.1",
      subnet6: "fd42:99:6::/64",
      gateway6: "fd42:99:6::1",
      internal: false,
      labels: {},
    });
    // ::3 is the IPv6 twin of 10.99.6.3: that IPv4 address is skipped for the next holder.
    const given = leaseAddress(store, n, { holder: "c1", ip6: "fd42:99:6:0::3" });
    assertEquals([given.address, given.address6], ["10.99.6.2", "fd42:99:6::3"]);
    assertEquals(address6Of(n, given), "fd42:99:6::3");
    const next = leaseAddress(store, n, { holder: "c2" });
    assertEquals([next.address, address6Of(n, next)], ["10.99.6.4", "fd42:99:6::4"]);
    assertEquals(leasesOf(store, n.id).find((l) => l.holder === "c1")?.address6, "fd42:99:6::3");
    for (
      const [ip6, why] of [
        ["fd42:99:6::3", "already in use on network six"],
        ["fd42:99:6::4", "already in use on network six"],
        ["fd42:99:6::1", "network six's gateway"],
        ["fd42:99:7::5", "not a host address of fd42:99:6::/64"],
        ["fd42:99:6::zz", "invalid IPv6 address"],
      ]
    ) {
      const err = assertThrows(() => leaseAddress(store, n, { holder: "c3", ip6 }), AddressError);
      assertOk(err.message.includes(why), err.message);
    }
    const v4 = net(store, "four", "10.99.7.0/29", "10.99.7.1");
    const err = assertThrows(
      () => leaseAddress(store, v4, { holder: "c3", ip6: "fd42:99:6::9" }),
      AddressError,
    );
    assertOk(err.message.includes("network four has no IPv6 subnet"), err.message);
  });
});
