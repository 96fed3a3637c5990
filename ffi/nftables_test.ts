/**
 * libnftables through FFI (root): a table of this test's own is made, read back as JSON and
 * deleted; nft's errors come back as NftablesError with its text.
 */
import { assertEquals, assertOk, assertThrows } from "../tests/assert.ts";
import { listNft, NftablesError, runNft } from "./nftables.ts";

const isRoot = Deno.uid() === 0;

Deno.test({
  name: "a table is made, listed as JSON and deleted in one transaction each",
  ignore: !isRoot,
  fn() {
    const table = `tsbox_test_${Deno.pid}`;
    try {
      runNft(
        `add table inet ${table}\n` +
          `add chain inet ${table} fw { type filter hook forward priority 10; policy accept; }\n` +
          `add rule inet ${table} fw iifname "tsbox-none" drop\n`,
      );
      const objects = listNft(`list table inet ${table}`);
      assertOk(objects.some((o) => o.table?.name === table));
      const chain = objects.find((o) => o.chain)?.chain;
      assertEquals([chain?.name, chain?.hook, chain?.policy], ["fw", "forward", "accept"]);
      assertEquals(objects.filter((o) => o.rule).length, 1);
      assertOk(runNft(`list table inet ${table}`).includes(`iifname "tsbox-none" drop`));

      // A failing buffer applies nothing of itself.
      const err = assertThrows(
        () => runNft(`add chain inet ${table} other\nadd rule inet ${table} nosuch drop\n`),
        NftablesError,
      );
      assertOk(/nosuch|No such file/.test(err.message), err.message);
      assertEquals(listNft(`list table inet ${table}`).filter((o) => o.chain).length, 1);
    } finally {
      try {
        runNft(`delete table inet ${table}`);
      } catch { /* not made */ }
    }
    assertThrows(() => runNft(`list table inet ${table}`), NftablesError);
  },
});
