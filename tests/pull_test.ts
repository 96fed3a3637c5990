/**
 * Pull against real registries (Debian's docker-registry on 127.0.0.1) serving images built from
 * Debian packages and pushed by skopeo.
 */
import { join } from "node:path";
import { RegistryClient } from "../registry/client.ts";
import type { Reference } from "../registry/reference.ts";
import { pullImage } from "../src/image/pull.ts";
import { Store } from "../src/store/mod.ts";
import {
  assertEquals,
  assertMatch,
  assertOk,
  assertRejects,
  assertStringIncludes,
} from "./assert.ts";
import { tempRoot, tsbox } from "./cli.ts";
import { compareTrees, scanTree } from "./tree_compare.ts";
import { authRegistry, fixtureRegistry, type LayoutRef, pushLayout } from "./fixtures/images.ts";
import { buildLayout } from "./fixtures/oci.ts";
import { startRegistry } from "./fixtures/registry.ts";

/** A client that counts the blob requests it makes. */
class CountingClient extends RegistryClient {
  blobRequests = 0;
  override fetchBlob(ref: Reference, digest: string) {
    this.blobRequests++;
    return super.fetchBlob(ref, digest);
  }
}

async function withStore<T>(fn: (store: Store, root: string) => Promise<T>): Promise<T> {
  const { root, cleanup } = await tempRoot();
  const store = await Store.open(root);
  try {
    return await fn(store, root);
  } finally {
    store.close();
    await cleanup();
  }
}

/** The layer descriptors of the image a layout's tag points at, with their blob paths. */
async function layoutLayers(layout: LayoutRef): Promise<{ digest: string; path: string }[]> {
  const blob = (digest: string) => join(layout.dir, "blobs/sha256", digest.slice(7));
  const manifest = JSON.parse(await Deno.readTextFile(blob(layout.digest)));
  return manifest.layers.map((l: { digest: string }) => ({
    digest: l.digest,
    path: blob(l.digest),
  }));
}

async function gunzippedSize(path: string, compression: "gzip" | "zstd"): Promise<number> {
  const out = await new Deno.Command(compression === "gzip" ? "gzip" : "zstd", {
    args: ["-dc", path],
    stdout: "piped",
  }).output();
  return out.stdout.byteLength;
}

Deno.test("pull of every fixture format lands in the store with the right layers", async () => {
  const fx = await fixtureRegistry();
  const refs = [
    fx.refs.busybox,
    fx.refs.busyboxOci,
    fx.refs.busyboxZstd,
    fx.refs.nginx,
    fx.refs.layered,
  ];
  const diffIds = new Map<string, string[]>();
  for (const ref of refs) {
    // A fresh store each, so that every format's blobs are really fetched and decompressed.
    await withStore(async (store) => {
      const result = await pullImage(store, ref);
      assertEquals(result.upToDate, false);
      const image = store.findImage(ref);
      assertOk(image, `image ${ref} is found by its name after pull`);
      assertEquals(image.layers.length, image.config.rootfs.diff_ids.length);
      for (const layer of image.layers) {
        assertOk((await Deno.stat(layer.dir)).isDirectory);
        assertOk(await store.blobs.has(layer.blobDigest), `blob ${layer.blobDigest} stored`);
      }
      diffIds.set(ref, image.layers.map((l) => l.diffId));
      if (ref !== fx.refs.nginx && ref !== fx.refs.layered) {
        // The busybox shell is in the layer dir, byte for byte the Debian binary.
        const inLayer = await Deno.readFile(join(image.layers[0].dir, "bin/busybox"));
        assertEquals(inLayer, await Deno.readFile("/bin/busybox"));
      }
    });
  }
  // gzip, OCI gzip and zstd of the same content unpack to the same layers.
  assertEquals(diffIds.get(fx.refs.busyboxOci), diffIds.get(fx.refs.busybox));
  assertEquals(diffIds.get(fx.refs.busyboxZstd), diffIds.get(fx.refs.busybox));
});

Deno.test("images that share layers share their directories", async () => {
  const fx = await fixtureRegistry();
  await withStore(async (store) => {
    await pullImage(store, fx.refs.busybox);
    const events: string[] = [];
    const { image } = await pullImage(store, fx.refs.busyboxZstd, {
      onProgress: (e) => e.type === "layer" && events.push(e.status),
    });
    assertEquals(events, image.layers.map(() => "Already exists"));
    assertEquals(image.layers[0].dir, store.findImage(fx.refs.busybox)!.layers[0].dir);
  });
});

Deno.test("images lists pulled images with their uncompressed size", async () => {
  const fx = await fixtureRegistry();
  const { root, cleanup } = await tempRoot();
  try {
    const pulled = await tsbox(["pull", fx.refs.busybox], { root });
    assertEquals(pulled.code, 0, pulled.stderr);
    assertMatch(pulled.stdout, /Digest: sha256:[a-f0-9]{64}/);
    assertStringIncludes(pulled.stdout, `Status: Downloaded newer image for ${fx.refs.busybox}`);
    const listed = await tsbox(["images", "--format", "json"], { root });
    assertEquals(listed.code, 0, listed.stderr);
    const rows = listed.stdout.trim().split("\n").map((l) => JSON.parse(l));
    assertEquals(rows.length, 1);
    const [repo, tag] = [fx.refs.busybox.replace(/:[^:/]+$/, ""), "latest"];
    assertEquals(rows[0].Repository, repo);
    assertEquals(rows[0].Tag, tag);
    // SIZE is the sum of the uncompressed layers: measured independently from the layout.
    let expected = 0;
    for (const layer of await layoutLayers(fx.layouts.busybox)) {
      expected += await gunzippedSize(layer.path, "gzip");
    }
    const store = await Store.open(root);
    try {
      assertEquals(store.findImage(fx.refs.busybox)!.size, expected);
    } finally {
      store.close();
    }
    const table = await tsbox(["images"], { root });
    assertMatch(table.stdout, /^REPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE$/m);
  } finally {
    await cleanup();
  }
});

Deno.test("a second pull is up to date and requests no blob", async () => {
  const fx = await fixtureRegistry();
  await withStore(async (store) => {
    const first = new CountingClient();
    await pullImage(store, fx.refs.nginx, { client: first });
    assertOk(first.blobRequests > 0);
    const second = new CountingClient();
    const again = await pullImage(store, fx.refs.nginx, { client: second });
    assertEquals(again.upToDate, true);
    assertEquals(second.blobRequests, 0);
  });
});

Deno.test("from an OCI index and a Docker manifest list the host's platform is chosen", async () => {
  const fx = await fixtureRegistry();
  await withStore(async (store) => {
    for (const ref of [fx.refs.multiOci, fx.refs.multiDocker]) {
      const { image } = await pullImage(store, ref);
      assertEquals(image.config.architecture, "amd64");
      assertEquals(image.config.os, "linux");
      const arm = await pullImage(store, ref, { platform: "linux/arm64" });
      assertEquals(arm.image.config.architecture, "arm64");
    }
  });
});

Deno.test("the Basic-auth registry needs credentials from the docker config", async () => {
  const reg = await authRegistry();
  const configDir = await Deno.makeTempDir();
  try {
    await withStore(async (store) => {
      const ref = `${reg.registry.host}/busybox:latest`;
      const err = await assertRejects(
        () =>
          pullImage(store, ref, { client: new RegistryClient({ credentials: () => undefined }) }),
      );
      assertMatch(err.message, /401|unauthorized|authentication required/i);
      assertEquals(store.listImages().length, 0);

      const auth = btoa(`${reg.registry.username}:${reg.registry.password}`);
      await Deno.writeTextFile(
        join(configDir, "config.json"),
        JSON.stringify({ auths: { [reg.registry.host]: { auth } } }),
      );
      const cli = await tsboxWithConfig(["pull", "-q", ref], configDir);
      assertEquals(cli.code, 0, cli.stderr);
      assertEquals(cli.stdout.trim(), ref);
    });
  } finally {
    await Deno.remove(configDir, { recursive: true });
  }
});

async function tsboxWithConfig(args: string[], dockerConfig: string) {
  const { root, cleanup } = await tempRoot();
  try {
    return await tsbox(args, { root, env: { DOCKER_CONFIG: dockerConfig } });
  } finally {
    await cleanup();
  }
}

Deno.test("a blob served corrupted fails the pull with a digest error and stores nothing", async () => {
  const fx = await fixtureRegistry();
  const reg = await startRegistry();
  try {
    const target = `${reg.host}/corrupt:latest`;
    const copy = await new Deno.Command("skopeo", {
      args: [
        "copy",
        "-q",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        `docker://${fx.refs.busybox}`,
        `docker://${target}`,
      ],
      stdout: "null",
      stderr: "piped",
    }).output();
    assertOk(copy.success, new TextDecoder().decode(copy.stderr));
    // Flip one byte in the middle of the layer blob, in the registry's own storage.
    const layer = (await layoutLayers(fx.layouts.busybox))[0].digest.slice(7);
    const data = join(
      reg.dir,
      "data/docker/registry/v2/blobs/sha256",
      layer.slice(0, 2),
      layer,
      "data",
    );
    const bytes = await Deno.readFile(data);
    bytes[bytes.length >> 1] ^= 0xff;
    await Deno.writeFile(data, bytes);

    await withStore(async (store, root) => {
      const err = await assertRejects(() => pullImage(store, target));
      assertMatch(err.message, /digest mismatch/);
      assertEquals(store.listImages().length, 0);
      const leftovers = [];
      const layersDir = join(root, "layers");
      const exists = await Deno.stat(layersDir).then(() => true, () => false);
      if (exists) { for await (const e of Deno.readDir(layersDir)) leftovers.push(e.name); }
      assertEquals(leftovers, []);
    });
  } finally {
    await reg.stop();
  }
});

Deno.test("rmi untags, then deletes layers no other image uses", async () => {
  const fx = await fixtureRegistry();
  const { root, cleanup } = await tempRoot();
  try {
    assertEquals((await tsbox(["pull", "-q", fx.refs.busybox], { root })).code, 0);
    assertEquals((await tsbox(["tag", fx.refs.busybox, "mine:1"], { root })).code, 0);
    const untag = await tsbox(["rmi", "mine:1"], { root });
    assertEquals(untag.stdout.trim(), "Untagged: mine:1");
    const rm = await tsbox(["rmi", fx.refs.busybox], { root });
    assertEquals(rm.code, 0, rm.stderr);
    assertMatch(rm.stdout, /^Deleted: sha256:/m);
    const layers = [];
    for await (const e of Deno.readDir(join(root, "layers"))) layers.push(e.name);
    assertEquals(layers, []);
    const missing = await tsbox(["rmi", "nothing-here"], { root });
    assertEquals(missing.code, 1);
    assertStringIncludes(missing.stderr, "No such image: nothing-here");
  } finally {
    await cleanup();
  }
});

async function run(cmd: string, ...args: string[]): Promise<void> {
  const out = await new Deno.Command(cmd, { args, stdout: "null", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
}

Deno.test("the overlay view of a pulled multi-layer image equals umoci's unpack", async () => {
  const fx = await fixtureRegistry();
  await withStore(async (store, root) => {
    const { image } = await pullImage(store, fx.refs.layered);
    assertOk(image.layers.length >= 3);
    const work = await Deno.makeTempDir({ dir: root });
    const merged = join(work, "merged");
    await Deno.mkdir(merged);
    const lower = image.layers.map((l) => l.dir).reverse().join(":");
    await run("mount", "-t", "overlay", "overlay", "-o", `ro,lowerdir=${lower}`, merged);
    try {
      await run("umoci", "unpack", "--image", fx.layouts.layered.image, join(work, "bundle"));
      const diffs = await compareTrees(merged, join(work, "bundle/rootfs"), {
        xattrs: (name) => name.startsWith("user."),
      });
      assertEquals(diffs, []);
      // Not vacuous: the merged tree has content from several layers and none of the deletions.
      const entries = await scanTree(merged);
      assertOk(entries.size > 20, `merged tree has ${entries.size} entries`);
      assertOk(entries.has("opq/new.txt") && entries.has("bin/sh"));
      for (const gone of ["data/gone.txt", "data/gonedir", "opq/old.txt", "opq/sub", "bin/vi"]) {
        assertOk(!entries.has(gone), `${gone} is deleted by a whiteout`);
      }
    } finally {
      await run("umount", merged);
    }
  });
});

Deno.test("a hostile image pulled from a registry writes nothing outside its layer dir", async () => {
  const fx = await fixtureRegistry();
  const sentinel = await Deno.makeTempDir({ prefix: "tsbox-sentinel-" });
  try {
    const layout = await buildLayout("hostile", {
      latest: {
        architecture: "amd64",
        os: "linux",
        config: { Cmd: ["/bin/sh"] },
        layers: [{
          createdBy: "hostile: a symlink to a host dir, then a write through it",
          entries: [
            { path: "escape", type: "symlink", target: sentinel },
            { path: "escape/pwned", type: "file", text: "escaped\n" },
            { path: "rel", type: "symlink", target: `../../../../../../..${sentinel}` },
            { path: "rel/pwned2", type: "file", text: "escaped\n" },
          ],
        }],
      },
    });
    const ref = `${fx.registry.host}/hostile:latest`;
    await pushLayout({ image: `${layout.dir}:latest` }, ref);
    await withStore(async (store) => {
      // The unpacker keeps such writes inside (src/image/unpack.ts: RESOLVE_IN_ROOT, the meaning
      // the links have in the image's own root, as containerd and umoci resolve them): the pull
      // succeeds, and both writes land in the layer dir, the `..`s clamped at its root.
      const { image } = await pullImage(store, ref);
      const dir = image.layers[0].dir;
      for (const name of ["pwned", "pwned2"]) {
        const inside = join(dir, sentinel, name);
        assertEquals(await Deno.readTextFile(inside), "escaped\n", inside);
      }
      assertEquals(await Deno.readLink(join(dir, "escape")), sentinel, "the link itself is kept");
    });
    assertEquals([...Deno.readDirSync(sentinel)], []);
  } finally {
    await Deno.remove(sentinel, { recursive: true });
  }
});
