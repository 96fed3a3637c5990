import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { Store } from "../store/mod.ts";
import {
  holdsNetwork,
  NetworkNotLoadedError,
  releaseNetwork,
  releaseNetworkSync,
} from "./network_release.ts";
import { containerDir } from "./paths.ts";

Deno.test("network state is found by lease or outbound pid file; the stack loads only for it", async () => {
  const root = await Deno.makeTempDir({ prefix: "tsbox-netrel-" });
  const id = "a".repeat(64);
  const dir = containerDir(root, id);
  let store = await Store.open(root);
  try {
    await Deno.mkdir(dir, { recursive: true });
    // Nothing held: nothing to undo, and nothing needs the network stack.
    assertEquals(holdsNetwork(store, id), false);
    releaseNetworkSync(store, id);
    await releaseNetwork(store, id);
    // An outbound helper's pid file: the stack is needed, and a synchronous caller without it
    // learns so (reap.ts then leaves the container for rm).
    await Deno.writeTextFile(`${dir}/pasta.pid`, "999999 1\n");
    assertEquals(holdsNetwork(store, id), true);
    assertThrows(() => releaseNetworkSync(store, id), NetworkNotLoadedError);
    await Deno.remove(`${dir}/pasta.pid`);
    assertEquals(holdsNetwork(store, id), false);
    // A lease (of a network row that is not there: the lease alone is what counts).
    store.db.run("PRAGMA foreign_keys = OFF");
    store.db.run(
      `INSERT INTO network_leases (network_id, address, holder, mac, veth, created_at)
       VALUES ('n', '10.0.0.2', ?, '02:00:00:00:00:01', 'vethx', 0)`,
      id,
    );
    assertEquals(holdsNetwork(store, id), true);
    store.close();
    // A store with a lease gets the stack loaded as it opens (reap's synchronous path).
    store = await Store.open(root);
    releaseNetworkSync(store, id);
  } finally {
    store.close();
    await Deno.remove(root, { recursive: true });
  }
});
