import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { mountOverlay, unmountRootfs } from "../runtime/rootfs.ts";
import { Store } from "../store/mod.ts";
import { assertEquals, assertOk } from "../../tests/assert.ts";
import { commitLayer, diffEntries } from "./layer.ts";

const isRoot = Deno.uid() === 0;

/** A real overlay over one lower dir; `change` runs on the mounted view. */
async function changeSet(change: (rootfs: string) => Promise<void>): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "tsbox-layer-test-" });
  for (const d of ["lower/d", "lower/keep", "upper", "work", "rootfs"]) {
    await Deno.mkdir(join(dir, d), { recursive: true });
  }
  await Deno.writeTextFile(join(dir, "lower/gone.txt"), "x");
  await Deno.writeTextFile(join(dir, "lower/d/old.txt"), "x");
  await Deno.writeTextFile(join(dir, "lower/keep/k.txt"), "x");
  mountOverlay({
    lowerBase: dir,
    lower: ["lower"],
    upper: join(dir, "upper"),
    work: join(dir, "work"),
    target: join(dir, "rootfs"),
  });
  try {
    await change(join(dir, "rootfs"));
  } finally {
    unmountRootfs(join(dir, "rootfs"));
  }
  return dir;
}

Deno.test({
  name: "layer: overlay deletions become OCI whiteouts, a replaced dir is opaque",
  ignore: !isRoot,
  fn: async () => {
    const dir = await changeSet(async (root) => {
      await Deno.remove(join(root, "gone.txt"));
      await Deno.remove(join(root, "d"), { recursive: true });
      await Deno.mkdir(join(root, "d"));
      await Deno.writeTextFile(join(root, "d/new.txt"), "new");
      await Deno.writeTextFile(join(root, "added.txt"), "added");
      await Deno.chown(join(root, "added.txt"), 33, 33);
    });
    try {
      const entries = [];
      for await (const e of diffEntries(join(dir, "upper"))) {
        entries.push([e.name, e.type, e.uid ?? 0]);
        if (e.type === "file" && !(e.body instanceof Uint8Array)) {
          for await (const _ of e.body) { /* drain so the file closes */ }
        }
      }
      assertEquals(entries, [
        ["added.txt", "file", 33],
        ["d", "directory", 0],
        ["d/.wh..wh..opq", "file", 0],
        ["d/new.txt", "file", 0],
        [".wh.gone.txt", "file", 0],
      ]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "layer: commitLayer publishes a gzip blob and a layer dir; same change set, same digests",
  ignore: !isRoot,
  fn: async () => {
    const dir = await changeSet(async (root) => {
      await Deno.writeTextFile(join(root, "keep/new.txt"), "hello");
      await Deno.remove(join(root, "gone.txt"));
    });
    const root = await Deno.makeTempDir({ prefix: "tsbox-layer-store-" });
    const store = await Store.open(root);
    try {
      const scratch = await Deno.makeTempDir({ dir: root });
      const a = await commitLayer(store, join(dir, "upper"), scratch);
      const b = await commitLayer(store, join(dir, "upper"), scratch);
      assertOk(a && b);
      assertEquals(a, b);
      const blob = await store.blobs.read(a.blobDigest);
      assertEquals(blob.length, a.blobSize);
      assertEquals(gunzipSync(blob).length, a.size);
      const layer = store.layers.dir(a.diffId);
      assertEquals(await Deno.readTextFile(join(layer, "keep/new.txt")), "hello");
      const wh = await Deno.lstat(join(layer, "gone.txt"));
      assertEquals([wh.isCharDevice, wh.rdev], [true, 0]);
      assertEquals(store.layerShortId(a.diffId), a.shortId);
      const empty = await Deno.makeTempDir({ dir: root });
      assertEquals(await commitLayer(store, empty, scratch), undefined);
      const forced = await commitLayer(store, empty, scratch, true);
      assertEquals(forced?.size, 1024);
    } finally {
      store.close();
      await Deno.remove(root, { recursive: true });
      await Deno.remove(dir, { recursive: true });
    }
  },
});
