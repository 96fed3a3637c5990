import { join } from "node:path";
import { assertEquals, assertRejects, assertThrows } from "../../tests/assert.ts";
import { UsageError } from "../errors.ts";
import { tarStream } from "../image/tar_writer.ts";
import { sha256Digest } from "../store/digest.ts";
import { Store } from "../store/mod.ts";
import { cacheGet } from "./cache.ts";
import {
  BuildCacheError,
  CACHE_CONFIG_MEDIA_TYPE,
  type CacheRecord,
  importCache,
  parseCacheFlag,
  recordsFor,
} from "./cache_io.ts";

Deno.test("parseCacheFlag: local and registry forms of buildx", () => {
  assertEquals(parseCacheFlag("type=local,src=/c", "from"), {
    type: "local",
    dir: "/c",
    mode: "min",
  });
  assertEquals(parseCacheFlag("type=local,dest=/c,mode=max", "to"), {
    type: "local",
    dir: "/c",
    mode: "max",
  });
  assertEquals(parseCacheFlag("type=registry,ref=r/x:c", "to"), {
    type: "registry",
    ref: "r/x:c",
    mode: "min",
  });
  assertEquals(parseCacheFlag("r/x:c", "from"), { type: "registry", ref: "r/x:c", mode: "min" });
  for (
    const [bad, dir] of [
      ["type=local,dest=/c", "from"],
      ["type=local,src=/c", "to"],
      ["type=gha", "to"],
      ["type=registry", "from"],
      ["type=local,dest=/c,mode=all", "to"],
      ["type=local,dest=/c,x=1", "to"],
    ] as const
  ) assertThrows(() => parseCacheFlag(bad, dir), UsageError);
});

Deno.test("recordsFor: max keeps every stage's steps, min the target's, one per key", () => {
  const state = { configJson: "{}", layers: [] };
  const recs: CacheRecord[] = [
    { key: "a", state, stage: 0 },
    { key: "b", state, stage: 1 },
    { key: "b", state, stage: 1 },
  ];
  assertEquals(recordsFor(recs, "max", 1).map((r) => r.key), ["a", "b"]);
  assertEquals(recordsFor(recs, "min", 1).map((r) => r.key), ["b"]);
});

/** Writes a blob into an OCI layout; returns its descriptor fields. */
async function putBlob(dir: string, bytes: Uint8Array): Promise<{ digest: string; size: number }> {
  const digest = sha256Digest(bytes);
  await Deno.mkdir(join(dir, "blobs/sha256"), { recursive: true });
  await Deno.writeFile(join(dir, "blobs/sha256", digest.slice(7)), bytes);
  return { digest, size: bytes.length };
}

/** A local cache whose one record claims `claimed` as its layer's diffID. */
async function hostileCache(dir: string, claimed: string, layerBlob: Uint8Array) {
  const enc = new TextEncoder();
  const layer = await putBlob(dir, layerBlob);
  const config = {
    architecture: "amd64",
    os: "linux",
    rootfs: { type: "layers", diff_ids: [claimed] },
  };
  const record = {
    key: `sha256:${"a".repeat(64)}`,
    state: {
      configJson: JSON.stringify(config),
      layers: [{
        diffId: claimed,
        shortId: "x",
        size: layerBlob.length,
        blobDigest: layer.digest,
        mediaType: "application/vnd.oci.image.layer.v1.tar",
        blobSize: layer.size,
      }],
    },
  };
  const bad = { key: "not-a-key", state: record.state };
  const cfg = await putBlob(dir, enc.encode(JSON.stringify({ records: [bad, record] })));
  const manifest = enc.encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: CACHE_CONFIG_MEDIA_TYPE, ...cfg },
    layers: [{
      mediaType: "application/vnd.oci.image.layer.v1.tar",
      ...layer,
      annotations: { "containerd.io/uncompressed": claimed },
    }],
  }));
  const m = await putBlob(dir, manifest);
  await Deno.writeTextFile(
    join(dir, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{ mediaType: "application/vnd.oci.image.manifest.v1+json", ...m }],
    }),
  );
}

Deno.test({
  name: "importCache: a layer that is not the diffID it claims is refused; bad records skipped",
  ignore: Deno.uid() !== 0,
  fn: async () => {
    const root = await Deno.makeTempDir({ prefix: "tsbox-cio-" });
    const cache = await Deno.makeTempDir({ prefix: "tsbox-cio-cache-" });
    const store = await Store.open(root);
    try {
      const tar = new Uint8Array(
        await new Response(
          tarStream([{ name: "f", type: "file", size: 2, body: new Uint8Array([104, 10]) }]),
        ).arrayBuffer(),
      );
      const scratch = await Deno.makeTempDir({ dir: root });
      // Lies about its diffID: refused, nothing recorded.
      await hostileCache(cache, `sha256:${"b".repeat(64)}`, tar);
      await assertRejects(
        () => importCache(store, { type: "local", dir: cache, mode: "min" }, scratch),
        BuildCacheError,
        "not the sha256:bbbb",
      );
      assertEquals(await cacheGet(store, `sha256:${"a".repeat(64)}`), undefined);
      // Told the truth: the good record is added, the malformed one skipped.
      await Deno.remove(cache, { recursive: true });
      await hostileCache(cache, sha256Digest(tar), tar);
      const added = await importCache(store, { type: "local", dir: cache, mode: "min" }, scratch);
      assertEquals(added, 1);
      const hit = await cacheGet(store, `sha256:${"a".repeat(64)}`);
      assertEquals(hit?.layers.map((l) => l.diffId), [sha256Digest(tar)]);
    } finally {
      store.close();
      await Deno.remove(root, { recursive: true });
      await Deno.remove(cache, { recursive: true }).catch(() => {});
    }
  },
});
