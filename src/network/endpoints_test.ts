/**
 * What `run`/`create` record of the network flags, in a store of the test's own (no kernel
 * work: the default network is recorded by a stand-in).
 */
import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { NotFoundError, UsageError } from "../errors.ts";
import { Store } from "../store/mod.ts";
import { planNetConfig } from "./endpoints.ts";
import { DEFAULT_NETWORK, insertNetwork } from "./records.ts";

async function withStore(fn: (store: Store) => void): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "tsbox-endpoints-test-" });
  const store = await Store.open(root);
  try {
    fn(store);
  } finally {
    store.close();
    await Deno.remove(root, { recursive: true });
  }
}

function record(store: Store, name: string, third: number): string {
  const id = `${third}`.padStart(64, "e");
  insertNetwork(store, {
    id,
    name,
    bridge: `tsbox-t${third}`,
    subnet: `10.99.${third}.0/24`,
    gateway: `10.99.${third}.1`,
    internal: false,
    labels: {},
  });
  return id;
}

Deno.test("network flags: endpoints, resolver settings, docker's refusals", async () => {
  await withStore((store) => {
    let defaults = 0;
    const ensure = () => {
      defaults++;
      record(store, DEFAULT_NETWORK, 1);
    };
    const bridged = planNetConfig(store, { network: "default" }, true, ensure)!;
    assertEquals(defaults, 1);
    assertEquals(bridged.endpoints.map((e) => [e.network, e.aliases]), [["bridge", []]]);
    const appId = record(store, "app", 2);
    const app = planNetConfig(
      store,
      {
        network: "app",
        ip: "10.99.2.9",
        networkAlias: ["db"],
        dns: ["192.0.2.53"],
        addHost: ["h:192.0.2.7"],
      },
      true,
      ensure,
    )!;
    assertEquals(app.endpoints, [{
      networkId: appId,
      network: "app",
      aliases: ["db"],
      ip: "10.99.2.9",
    }]);
    assertEquals(app.dns, ["192.0.2.53"]);
    assertEquals(app.extraHosts, [["h", "192.0.2.7"]]);
    // private, none, host: nothing to record unless resolver flags are given.
    assertEquals(planNetConfig(store, { network: "private" }, true, ensure), undefined);
    assertEquals(planNetConfig(store, { network: "default" }, false, ensure), undefined);
    assertEquals(
      planNetConfig(store, { network: "private", dns: ["192.0.2.53"] }, true, ensure)?.endpoints,
      [],
    );
    assertThrows(() => planNetConfig(store, { network: "nope" }, true, ensure), NotFoundError);
    assertThrows(
      () => planNetConfig(store, { network: "bridge", networkAlias: ["x"] }, true, ensure),
      UsageError,
      "user-defined networks",
    );
    assertThrows(
      () => planNetConfig(store, { network: "bridge", ip: "10.99.1.5" }, true, ensure),
      UsageError,
      "user-defined networks",
    );
    assertThrows(
      () => planNetConfig(store, { network: "none", ip: "10.99.1.5" }, true, ensure),
      UsageError,
    );
    assertThrows(
      () => planNetConfig(store, { network: "app", dns: ["nameserver"] }, true, ensure),
      UsageError,
      "not an ip address",
    );
  });
});
