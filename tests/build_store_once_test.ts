/**
 * Built layers are stored once, uncompressed (issue 23, speed): a build leaves the layer's
 * directory and no blob beside it; `push` compresses it (gzip, what the pushed manifest names),
 * keeps that digest, and the next push asks the registry for it instead of compressing again.
 */
import { join } from "node:path";
import { MediaType } from "../registry/manifest.ts";
import { knownCompressed } from "../src/image/compress_layer.ts";
import { Store } from "../src/store/mod.ts";
import { assertEquals, assertNotEquals, assertOk, assertStringIncludes } from "./assert.ts";
import { tempRoot, tsbox } from "./cli.ts";
import { fixtureRegistry } from "./fixtures/images.ts";

const isRoot = Deno.uid() === 0;
const dec = new TextDecoder();

async function mustRun(root: string, args: string[]): Promise<string> {
  const r = await tsbox(args, { root });
  if (r.code !== 0) throw new Error(`tsbox ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

async function registryManifest(
  ref: string,
): Promise<{ layers: { mediaType: string; digest: string }[] }> {
  const out = await new Deno.Command("skopeo", {
    args: ["inspect", "--raw", "--tls-verify=false", `docker://${ref}`],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assertOk(out.success, dec.decode(out.stderr));
  return JSON.parse(dec.decode(out.stdout));
}

Deno.test({
  name: "build: a built layer is its dir only; push compresses it once and reuses the digest",
  ignore: !isRoot,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const fx = await fixtureRegistry();
    const t = await tempRoot();
    const ctx = await Deno.makeTempDir({ prefix: "tsbox-ctx-" });
    try {
      await mustRun(t.root, ["pull", "-q", fx.refs.busybox]);
      await Deno.writeTextFile(join(ctx, "data.txt"), "some data\n".repeat(1000));
      await Deno.writeTextFile(
        join(ctx, "Dockerfile"),
        `FROM ${fx.refs.busybox}\nCOPY data.txt /data.txt\n`,
      );
      const repo = `${fx.registry.host}/storeonce/${crypto.randomUUID().slice(0, 8)}`;
      await mustRun(t.root, ["build", "-q", "-t", `${repo}:1`, ctx]);
      let diffId: string;
      {
        const store = await Store.open(t.root);
        try {
          const top = store.findImage(`${repo}:1`)!.layers.at(-1)!;
          diffId = top.diffId;
          assertEquals([top.blobDigest, top.mediaType], [diffId, MediaType.OciLayer]);
          assertEquals(await store.blobs.has(diffId), false, "no blob beside the layer dir");
          assertEquals(
            await Deno.readTextFile(join(store.layers.dir(diffId), "data.txt")),
            "some data\n".repeat(1000),
          );
          assertEquals(knownCompressed(store, diffId), undefined);
        } finally {
          store.close();
        }
      }

      await mustRun(t.root, ["push", `${repo}:1`]);
      const pushed = (await registryManifest(`${repo}:1`)).layers.at(-1)!;
      assertEquals(pushed.mediaType, MediaType.OciLayerGzip);
      assertNotEquals(pushed.digest, diffId);
      {
        const store = await Store.open(t.root);
        try {
          assertEquals(knownCompressed(store, diffId)?.digest, pushed.digest);
          assertEquals(await store.blobs.has(pushed.digest), false, "the gzip blob is not kept");
          // A layer dir changed behind the store's back no longer makes its tar: a push that
          // compressed again would fail on the digest, one that reuses the digest does not.
          await Deno.writeTextFile(join(store.layers.dir(diffId), "data.txt"), "changed\n");
        } finally {
          store.close();
        }
      }
      await mustRun(t.root, ["tag", `${repo}:1`, `${repo}:2`]);
      const again = await mustRun(t.root, ["push", `${repo}:2`]);
      assertStringIncludes(again, "Layer already exists");
      assertEquals((await registryManifest(`${repo}:2`)).layers.at(-1)!.digest, pushed.digest);
      // Where the registry lacks the blob, the damaged layer is refused, not sent.
      const fresh = `${fx.registry.host}/storeonce2/${crypto.randomUUID().slice(0, 8)}:1`;
      await mustRun(t.root, ["tag", `${repo}:1`, fresh]);
      const bad = await tsbox(["push", fresh], { root: t.root });
      assertNotEquals(bad.code, 0);
      assertStringIncludes(bad.stderr, diffId.slice(7, 19));
    } finally {
      await Deno.remove(ctx, { recursive: true }).catch(() => {});
      await t.cleanup();
    }
  },
});
