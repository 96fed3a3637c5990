import { join } from "../path.ts";
import { assertEquals, assertOk } from "../../tests/assert.ts";
import { Store } from "./mod.ts";

async function withStore(fn: (store: Store) => Promise<void>): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "tsbox-store-test-" });
  const store = await Store.open(root);
  try {
    await fn(store);
  } finally {
    store.close();
    await Deno.remove(root, { recursive: true });
  }
}

const hexA = "0123456789abcdef".repeat(4);
const hexB = "fedcba9876543210".repeat(4);

/** Records an image of one layer `diffId` linked as `shortId`, as pull and load do. */
function record(store: Store, diffId: string, shortId: string): void {
  const configJson = JSON.stringify({ rootfs: { type: "layers", diff_ids: [diffId] } });
  store.addImage({
    id: `sha256:${"c".repeat(63)}${store.listImages().length}`,
    configJson,
    manifestDigest: `sha256:${"d".repeat(64)}`,
    manifestMediaType: "application/vnd.oci.image.manifest.v1+json",
    layers: [{
      diffId,
      shortId,
      size: 1,
      blobDigest: diffId,
      mediaType: "application/vnd.oci.image.layer.v1.tar",
      blobSize: 1,
    }],
  });
}

Deno.test("a fresh store has its link dir: overlay's cwd for a build FROM scratch", async () => {
  await withStore(async (store) => {
    assertOk((await Deno.stat(store.linkDir)).isDirectory);
  });
});

Deno.test("shortIdFor names a layer the same on every call, before and after it is recorded", async () => {
  await withStore((store) => {
    const diffId = `sha256:${hexA}`;
    const first = store.shortIdFor(diffId);
    assertEquals(first, hexA.slice(0, 16));
    assertEquals(store.shortIdFor(diffId), first);
    record(store, diffId, first);
    assertEquals(store.shortIdFor(diffId), first);
    assertEquals(store.layerShortId(diffId), first);
    return Promise.resolve();
  });
});

Deno.test("shortIdFor keeps a recorded name and skips names another layer holds", async () => {
  await withStore(async (store) => {
    // A layer recorded by an older tsbox under a random name keeps it.
    record(store, `sha256:${hexB}`, "k3j2h1g0f9");
    assertEquals(store.shortIdFor(`sha256:${hexB}`), "k3j2h1g0f9");

    // Another layer's record holds the first window: the next one is taken, stably.
    const taken = `sha256:${"0123456789abcdef"}${"1".repeat(48)}`;
    record(store, `sha256:${"2".repeat(64)}`, "0123456789abcdef");
    assertEquals(store.shortIdFor(taken), "1".repeat(16));
    assertEquals(store.shortIdFor(taken), "1".repeat(16));

    // A link not yet recorded (a load between publishing and recording) holds a name too, for
    // its own layer only.
    const linked = `sha256:${"3".repeat(16)}${"4".repeat(48)}`;
    await Deno.symlink(join("..", "layers", "9".repeat(64)), join(store.linkDir, "3".repeat(16)));
    assertEquals(store.shortIdFor(linked), "4".repeat(16));
    await Deno.symlink(join("..", "layers", linked.slice(7)), join(store.linkDir, "4".repeat(16)));
    assertEquals(store.shortIdFor(linked), "4".repeat(16));
  });
});
