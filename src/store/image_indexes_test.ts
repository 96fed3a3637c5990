/**
 * The image index a multi-platform build records (Store.setIndex): listed in order, keeping its
 * untagged variants out of the dangling ones, and dropped when its name's tag moves or goes.
 */
import { assertEquals, assertOk } from "../../tests/assert.ts";
import { sha256Digest } from "./digest.ts";
import { Store } from "./mod.ts";

function image(store: Store, arch: string): string {
  const configJson = JSON.stringify({ architecture: arch, os: "linux", rootfs: { diff_ids: [] } });
  const id = sha256Digest(new TextEncoder().encode(configJson));
  store.addImage({
    id,
    configJson,
    manifestDigest: id,
    manifestMediaType: "application/vnd.oci.image.manifest.v1+json",
    layers: [],
  });
  return id;
}

Deno.test("an image index: ordered entries, the tag on one, dropped when the tag moves or goes", async () => {
  const root = await Deno.makeTempDir({ prefix: "tsbox-store-index-" });
  const store = await Store.open(root);
  try {
    const amd = image(store, "amd64"), arm = image(store, "arm64");
    const name = "127.0.0.1:5000/app:1";
    const entries = [{ platform: "linux/amd64", imageId: amd }, {
      platform: "linux/arm64",
      imageId: arm,
    }];
    store.setIndex(name, entries, amd);
    assertEquals(store.indexOf(name), entries);
    assertEquals(store.findImage(name)?.id, amd);
    assertOk(store.inIndex(arm), "an untagged variant is listed");
    // Recorded again (a rebuild): the new entries replace the old.
    store.setIndex(name, entries.slice(1), arm);
    assertEquals(store.indexOf(name), entries.slice(1));
    // A tag that moves is no longer the index.
    store.tag(amd, name);
    assertEquals(store.indexOf(name), []);
    assertOk(!store.inIndex(arm));
    store.setIndex(name, entries, amd);
    assertOk(store.untag(name));
    assertEquals(store.indexOf(name), []);
    // A variant removed leaves the index; the tagged image removed takes the index along.
    store.setIndex(name, entries, amd);
    store.deleteImage(arm);
    assertEquals(store.indexOf(name), entries.slice(0, 1));
    store.deleteImage(amd);
    assertEquals(store.indexOf(name), []);
  } finally {
    store.close();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("indexGroup: the variants sharing an index, with the image its name is tagged to", async () => {
  const root = await Deno.makeTempDir({ prefix: "tsbox-store-index-" });
  const store = await Store.open(root);
  try {
    const amd = image(store, "amd64"), arm = image(store, "arm64"), lone = image(store, "s390x");
    const name = "127.0.0.1:5000/app:1";
    store.setIndex(name, [{ platform: "linux/amd64", imageId: amd }, {
      platform: "linux/arm64",
      imageId: arm,
    }], amd);
    const both = [amd, arm].sort();
    assertEquals(store.indexGroup(arm), both);
    assertEquals(store.indexGroup(amd), both);
    assertEquals(store.indexGroup(lone), []);
    assertEquals(store.indexesOf(arm), [name]);
    // Dropped from the index with its image: the rest of the group stays, naming no missing image.
    store.deleteImage(arm);
    assertEquals(store.indexGroup(amd), [amd]);
    assertEquals(store.indexesOf(arm), []);
  } finally {
    store.close();
    await Deno.remove(root, { recursive: true });
  }
});
