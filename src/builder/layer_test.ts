import { join } from "node:path";
import { AT_FDCWD, lsetxattr, makedev, mknodat } from "../../ffi/fs.ts";
import { layerDirTar } from "../image/layer_blob.ts";
import { TarReader } from "../image/tar.ts";
import { tarStream } from "../image/tar_writer.ts";
import { DigestMismatchError } from "../store/digest.ts";
import { mountOverlay, unmountRootfs } from "../runtime/rootfs.ts";
import { Store } from "../store/mod.ts";
import { assertEquals, assertOk } from "../../tests/assert.ts";
import { commitLayer, diffEntries } from "./layer.ts";

const isRoot = Deno.uid() === 0;
const S_IFIFO = 0o010000;
const S_IFCHR = 0o020000;

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
  name: "layer: commitLayer stores the change set once, as its dir; its tar is made again the same",
  ignore: !isRoot,
  fn: async () => {
    const dir = await changeSet(async (root) => {
      await Deno.writeTextFile(join(root, "keep/new.txt"), "hello");
      await Deno.remove(join(root, "gone.txt"));
    });
    const root = await Deno.makeTempDir({ prefix: "tsbox-layer-store-" });
    const store = await Store.open(root);
    try {
      // A copy of the same change set (same times, owners, modes) gives the same layer.
      const copy = join(dir, "upper-copy");
      const cp = await new Deno.Command("cp", { args: ["-a", join(dir, "upper"), copy] }).output();
      assertOk(cp.success);
      const a = await commitLayer(store, join(dir, "upper"));
      assertOk(a);
      assertEquals(a.blobDigest, a.diffId, "a built layer names its uncompressed tar");
      assertEquals(a.blobSize, a.size);
      assertEquals(await store.blobs.has(a.blobDigest), false, "no blob beside the layer dir");
      let exists = true;
      await Deno.lstat(join(dir, "upper")).catch(() => exists = false);
      assertEquals(exists, false, "the upper dir became the layer dir");
      const b = await commitLayer(store, copy);
      assertEquals(b, a);
      const layer = store.layers.dir(a.diffId);
      assertEquals(await Deno.readTextFile(join(layer, "keep/new.txt")), "hello");
      const wh = await Deno.lstat(join(layer, "gone.txt"));
      assertEquals([wh.isCharDevice, wh.rdev], [true, 0]);
      assertEquals(store.layerShortId(a.diffId), a.shortId);
      // What push and save send: the tar made from the layer dir, checked against the diffID.
      let bytes = 0;
      for await (const chunk of layerDirTar(store, a.diffId)) bytes += chunk.length;
      assertEquals(bytes, a.size);
      const empty = await Deno.makeTempDir({ dir: root });
      assertEquals(await commitLayer(store, empty), undefined);
      const forced = await commitLayer(store, empty, true);
      assertEquals(forced?.size, 1024);
    } finally {
      store.close();
      await Deno.remove(root, { recursive: true });
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "layer: a changed layer dir no longer matches its diffID when its tar is made again",
  ignore: !isRoot,
  fn: async () => {
    const dir = await changeSet(async (root) => {
      await Deno.writeTextFile(join(root, "keep/new.txt"), "hello");
    });
    const root = await Deno.makeTempDir({ prefix: "tsbox-layer-store-" });
    const store = await Store.open(root);
    try {
      const a = await commitLayer(store, join(dir, "upper"));
      assertOk(a);
      await Deno.writeTextFile(join(store.layers.dir(a.diffId), "keep/new.txt"), "HELLO");
      let failed: unknown;
      try {
        for await (const _ of layerDirTar(store, a.diffId)) { /* drain */ }
      } catch (err) {
        failed = err;
      }
      assertOk(failed instanceof DigestMismatchError, String(failed));
    } finally {
      store.close();
      await Deno.remove(root, { recursive: true });
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "layer: hard links, fifos, device nodes and xattrs of a change set are entries of its tar",
  ignore: !isRoot,
  fn: async () => {
    const cap = new Uint8Array([1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    const dir = await changeSet(async (root) => {
      await Deno.writeTextFile(join(root, "a"), "x\n");
      await Deno.link(join(root, "a"), join(root, "b"));
      mknodat(AT_FDCWD, join(root, "ff"), S_IFIFO | 0o644);
      mknodat(AT_FDCWD, join(root, "nul"), S_IFCHR | 0o666, makedev(1, 3));
      lsetxattr(join(root, "a"), "security.capability", cap);
    });
    try {
      const entries = [];
      const tar = tarStream(diffEntries(join(dir, "upper")));
      for await (const e of new TarReader(tar)) {
        const h = e.header;
        entries.push([h.name, h.type, h.linkname, h.devmajor, h.devminor]);
        if (h.name === "a") assertEquals(h.xattrs.get("security.capability"), cap);
        else assertEquals(h.xattrs.size, 0, h.name);
      }
      assertEquals(entries, [
        ["a", "file", "", 0, 0],
        ["b", "hardlink", "a", 0, 0],
        ["ff", "fifo", "", 0, 0],
        ["nul", "char", "", 1, 3],
      ]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
