/**
 * Bridge owners: the alias text, and (root, in a network namespace of the test's own, which the
 * thread joins for the test's synchronous body) the reaping of bridges whose store is gone, with
 * their firewall elements, while a live store's bridge and a bridge without tsbox's alias stay.
 */
import { assertEquals, assertOk } from "../../tests/assert.ts";
import {
  closeNamespaceFd,
  NAMESPACE_TYPES,
  openNamespaceFile,
  setns,
} from "../../ffi/namespace.ts";
import { Netlink } from "../../ffi/netlink.ts";
import { listNft } from "../../ffi/nftables.ts";
import { ensureBridge } from "./bridge.ts";
import { addNetworkRules, TABLE, tableBridges } from "./firewall.ts";
import { ownerAlias, ownMountNamespace, parseOwnerAlias, reapOrphanBridges } from "./owners.ts";
import type { NetworkRecord } from "./records.ts";
import { takeNetworkDown } from "./setup.ts";

const isRoot = Deno.uid() === 0;

function ip(...args: string[]): number {
  return new Deno.Command("ip", { args, stdout: "null", stderr: "null" }).outputSync().code;
}

Deno.test("owner alias: written and read back; other text and too long roots are not", () => {
  const owner = {
    subnet: "10.90.3.0/24",
    internal: true,
    mnt: 4026531841,
    root: "/tmp/tsbox store",
  };
  const alias = ownerAlias(owner);
  assertEquals(alias, "tsbox 10.90.3.0/24 internal mnt:4026531841 /tmp/tsbox store");
  assertEquals(parseOwnerAlias(alias), owner);
  assertEquals(
    parseOwnerAlias(ownerAlias({ ...owner, internal: false })),
    { ...owner, internal: false },
  );
  assertEquals(parseOwnerAlias("docker bridge"), undefined);
  assertEquals(parseOwnerAlias(undefined), undefined);
  assertEquals(parseOwnerAlias("tsbox 10.90.3.0/24 routed mnt:1 relative/path"), undefined);
  assertEquals(parseOwnerAlias("tsbox 10.90.3.0/24 routed /no/namespace"), undefined);
  assertEquals(
    parseOwnerAlias(ownerAlias({ ...owner, subnet6: "fd42:7b:1::/64" }))?.subnet6,
    "fd42:7b:1::/64",
  );
  assertOk(ownMountNamespace() > 0);
  assertEquals(ownerAlias({ ...owner, root: `/${"x".repeat(300)}` }), undefined);
});

Deno.test({
  name: "bridges of a store that is gone are reaped with their rules; others stay",
  ignore: !isRoot,
  async fn() {
    const name = `tsbox-own-${Deno.pid}`;
    const live = await Deno.makeTempDir({ prefix: "tsbox-own-live-" });
    const gone = await Deno.makeTempDir({ prefix: "tsbox-own-gone-" });
    await Deno.writeTextFile(`${live}/tsbox.db`, "");
    await Deno.writeTextFile(`${gone}/tsbox.db`, "");
    assertEquals(ip("netns", "add", name), 0);
    const own = openNamespaceFile("/proc/thread-self/ns/net");
    const fd = openNamespaceFile(`/run/netns/${name}`);
    try {
      setns(fd, NAMESPACE_TYPES.net);
      try {
        const a = { bridge: "tsbox-a", subnet: "10.67.1.0/24", gateway: "10.67.1.1" };
        const b = { bridge: "tsbox-b", subnet: "10.67.2.0/24", gateway: "10.67.2.1" };
        const c = { bridge: "tsbox-c", subnet: "10.67.3.0/24", gateway: "10.67.3.1" };
        for (const n of [a, b, c]) addNetworkRules({ ...n, internal: false });
        ensureBridge({ ...a, owner: live });
        ensureBridge({ ...b, owner: gone, internal: false });
        ensureBridge(c); // no owner: never touched
        const nl = Netlink.open();
        try {
          assertEquals(
            nl.link("tsbox-b")?.alias,
            `tsbox 10.67.2.0/24 routed mnt:${ownMountNamespace()} ${gone}`,
          );
          assertEquals(nl.link("tsbox-c")?.alias, undefined);
          // A root path written in another mount namespace is not judged from this one.
          const d = ensureBridge({
            bridge: "tsbox-d",
            subnet: "10.67.4.0/24",
            gateway: "10.67.4.1",
          });
          nl.setAlias(d, `tsbox 10.67.4.0/24 routed mnt:1 /nonexistent/store`);
          assertEquals(reapOrphanBridges(), [], "every store is there");
          Deno.removeSync(gone, { recursive: true });
          assertEquals(reapOrphanBridges(), ["tsbox-b"]);
          assertEquals(nl.link("tsbox-b"), undefined);
          assertOk(nl.link("tsbox-a") && nl.link("tsbox-c") && nl.link("tsbox-d"));
        } finally {
          nl.close();
        }
        assertEquals(tableBridges().sort(), ["tsbox-a", "tsbox-c"]);
        const outbound = JSON.stringify(listNft(`list set inet ${TABLE} outbound`));
        assertOk(!outbound.includes("10.67.2.0"), outbound);
        assertOk(outbound.includes("10.67.1.0"), outbound);
        // Another store's network of the same bridge name (its tsbox0, say) is not taken down
        // by this one; its owner takes it down.
        const other = { id: "x", name: "bridge", ...a, internal: false } as NetworkRecord;
        takeNetworkDown(other, gone);
        assertEquals(tableBridges().sort(), ["tsbox-a", "tsbox-c"], "another store's, left");
        takeNetworkDown(other, live);
        assertEquals(tableBridges(), ["tsbox-c"]);
      } finally {
        setns(own, NAMESPACE_TYPES.net);
      }
    } finally {
      closeNamespaceFd(fd);
      closeNamespaceFd(own);
      ip("netns", "del", name);
      await Deno.remove(live, { recursive: true });
      await Deno.remove(gone, { recursive: true }).catch(() => {});
    }
  },
});
