import { join } from "node:path";
import { assertEquals, assertRejects } from "../../tests/assert.ts";
import { DigestMismatchError, sha256Digest } from "../store/digest.ts";
import { Store } from "../store/mod.ts";
import { removeImage } from "./images.ts";
import { ArchiveError, loadImages } from "./load.ts";
import { tarStream, type TarWriterEntry } from "./tar_writer.ts";

const enc = new TextEncoder();

async function bytesOf(entries: TarWriterEntry[]): Promise<Uint8Array> {
  return new Uint8Array(await new Response(tarStream(entries)).arrayBuffer());
}

function file(name: string, body: Uint8Array | string): TarWriterEntry {
  const bytes = typeof body === "string" ? enc.encode(body) : body;
  return { type: "file", name, size: bytes.length, body: bytes };
}

/** A one-layer docker-archive; `mutate` may change its entries before they are written. */
async function archive(mutate: (e: TarWriterEntry[]) => void = () => {}): Promise<Uint8Array> {
  const layer = await bytesOf([file("hello.txt", "hello from a layer\n")]);
  const diffId = sha256Digest(layer);
  const config = JSON.stringify({
    architecture: "amd64",
    os: "linux",
    rootfs: { type: "layers", diff_ids: [diffId] },
    history: [{ created_by: "ADD hello.txt /" }],
  });
  const configName = `${sha256Digest(config).slice(7)}.json`;
  const entries = [
    file(configName, config),
    file("layer.tar", layer),
    file(
      "manifest.json",
      JSON.stringify([{ Config: configName, RepoTags: ["hello:1"], Layers: ["layer.tar"] }]),
    ),
  ];
  mutate(entries);
  return await bytesOf(entries);
}

async function withStore(fn: (store: Store, root: string) => Promise<void>): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "tsbox-load-test-" });
  const store = await Store.open(root);
  try {
    await fn(store, root);
  } finally {
    store.close();
    await Deno.remove(root, { recursive: true });
  }
}

async function leftovers(root: string): Promise<string[]> {
  const out: string[] = [];
  for (const sub of ["layers", "blobs/sha256", "tmp"]) {
    try {
      for await (const e of Deno.readDir(join(root, sub))) out.push(`${sub}/${e.name}`);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
  }
  return out;
}

const stream = (bytes: Uint8Array) => ReadableStream.from([bytes]);

Deno.test("load records a docker-archive image with its tag and unpacked layer", async () => {
  await withStore(async (store) => {
    const [loaded] = await loadImages(store, stream(await archive()));
    assertEquals(loaded.tags, ["docker.io/library/hello:1"]);
    const image = store.findImage("hello:1")!;
    assertEquals(image.id, loaded.id);
    assertEquals(
      await Deno.readTextFile(join(image.layers[0].dir, "hello.txt")),
      "hello from a layer\n",
    );
  });
});

Deno.test("load refuses a config whose name is not its digest, and adds nothing", async () => {
  await withStore(async (store, root) => {
    const bytes = await archive((e) => {
      const config = e[0] as { name: string; body: Uint8Array };
      e[0] = file(config.name, new TextDecoder().decode(config.body).replace("amd64", "arm64"));
    });
    await assertRejects(() => loadImages(store, stream(bytes)), DigestMismatchError);
    assertEquals(store.listImages().length, 0);
    assertEquals(await leftovers(root), []);
  });
});

Deno.test("load refuses archives that lack a layer or are not image archives", async () => {
  await withStore(async (store, root) => {
    const missing = await archive((e) => e.splice(1, 1));
    await assertRejects(() => loadImages(store, stream(missing)), ArchiveError, "lacks the layer");
    const other = await bytesOf([file("README", "not an image")]);
    await assertRejects(() => loadImages(store, stream(other)), ArchiveError, "not an image");
    assertEquals(store.listImages().length, 0);
    assertEquals(await leftovers(root), []);
  });
});

/** Each layer's link `l/<shortId>` (the name the record holds) leads to its directory. */
async function assertLinked(store: Store, id: string): Promise<void> {
  const image = store.getImage(id)!;
  assertEquals(image.layers.length > 0, true);
  for (const l of image.layers) {
    assertEquals(
      await Deno.realPath(join(store.linkDir, l.shortId)),
      await Deno.realPath(l.dir),
      `link of ${l.diffId}`,
    );
  }
}

Deno.test("load links every layer under the short id it records, also after rmi and a second load", async () => {
  await withStore(async (store) => {
    const bytes = await archive();
    const [first] = await loadImages(store, stream(bytes));
    await assertLinked(store, first.id);
    await removeImage(store, "hello:1");
    assertEquals(store.listImages().length, 0);
    const [again] = await loadImages(store, stream(bytes));
    await assertLinked(store, again.id);
  });
});

Deno.test("load of an image whose layer the store has restores a missing link", async () => {
  await withStore(async (store) => {
    const bytes = await archive();
    const [first] = await loadImages(store, stream(bytes));
    const shortId = first.image.layers[0].shortId;
    // As a store that an older tsbox loaded into: the layer recorded, its link under that name absent.
    await Deno.remove(join(store.linkDir, shortId));
    const [again] = await loadImages(store, stream(bytes));
    assertEquals(again.image.layers[0].shortId, shortId);
    await assertLinked(store, again.id);
  });
});
