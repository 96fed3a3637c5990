/**
 * `system check` finds an image index that names a missing image or whose name is tagged to
 * none of its variants (a database changed behind tsbox's back), and repair drops the index
 * only; what tsbox itself writes (Store.setIndex, deleteImage) never breaks the rules.
 */
import { assertEquals } from "../../tests/assert.ts";
import { checkStore } from "./check.ts";
import { brokenIndexes } from "./check_indexes.ts";
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

Deno.test("broken image indexes are found and dropped; tsbox's own writes keep indexes whole", async () => {
  const root = await Deno.makeTempDir({ prefix: "tsbox-check-index-" });
  const store = await Store.open(root);
  try {
    const amd = image(store, "amd64"), arm = image(store, "arm64"), other = image(store, "s390x");
    const entries = [{ platform: "linux/amd64", imageId: amd }, {
      platform: "linux/arm64",
      imageId: arm,
    }];
    const [a, b, c] = ["127.0.0.1:5000/a:1", "127.0.0.1:5000/b:1", "127.0.0.1:5000/c:1"];
    store.setIndex(a, entries, amd);
    store.setIndex(b, entries, amd);
    store.setIndex(c, entries, amd);
    store.deleteImage(arm);
    assertEquals(brokenIndexes(store.db), []);

    // Behind tsbox's back: a tag removed, a tag moved, an image row deleted without cascade.
    store.db.run("DELETE FROM tags WHERE name = ?", a);
    store.db.run("UPDATE tags SET image_id = ? WHERE name = ?", other, b);
    store.db.run("PRAGMA foreign_keys = OFF");
    store.db.run(
      "INSERT INTO image_indexes (name, platform, position, image_id) VALUES (?, 'linux/arm64', 1, ?)",
      c,
      arm,
    );
    store.db.run("PRAGMA foreign_keys = ON");
    assertEquals(brokenIndexes(store.db).map((x) => x.name), [a, b, c]);

    const report = await checkStore(root, store.db, { repair: true });
    const found = report.findings.filter((f) => f.kind === "broken image index");
    assertEquals(found.map((f) => f.repaired), [true, true, true]);
    assertEquals(found.map((f) => f.detail), [
      `image index ${a}: its name is tagged to no image`,
      `image index ${b}: its name is tagged to ${other}, which is none of its platforms' images`,
      `image index ${c}: names the image ${arm}, which the store does not have`,
    ]);
    assertEquals(brokenIndexes(store.db), []);
    assertEquals([store.indexOf(a), store.indexOf(b), store.indexOf(c)], [[], [], []]);
    // The tags and images stay.
    assertEquals(store.findImage(b)?.id, other);
    assertEquals(store.findImage(c)?.id, amd);
  } finally {
    store.close();
    await Deno.remove(root, { recursive: true });
  }
});
