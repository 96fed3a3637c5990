/**
 * `tsbox build --cache-to` / `--cache-from` (root), on real builds of the fixture busybox: a
 * build's cache written to a directory and to a registry on 127.0.0.1 (Debian's
 * docker-registry), then read by a build in a fresh store, whose steps are then cache hits
 * (the RUN's random output is the first build's). skopeo reads the pushed cache manifest.
 */
import { join } from "node:path";
import { assertEquals, assertMatch, assertOk, assertStringIncludes } from "./assert.ts";
import { seedStore, sharedBusyboxRoot } from "./busybox_store.ts";
import { dirWith, rootTest, tempRoot, tsbox } from "./cli.ts";
import { startRegistry } from "./fixtures/registry.ts";

const DOCKERFILE = `FROM busybox AS tool
RUN head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n' > /tool-random

FROM busybox
COPY app.txt /app.txt
COPY --from=tool /tool-random /tool-random
RUN head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n' > /random
`;

async function cat(root: string, image: string, path: string): Promise<string> {
  const r = await tsbox(["run", "--rm", image, "cat", path], { root });
  assertEquals(r.code, 0, r.stderr);
  return r.stdout;
}

/** Builds in a fresh store from `cacheFrom`; returns its output and the RUN's random value. */
async function buildFresh(
  ctx: string,
  cacheFrom: string,
  extra: string[] = [],
): Promise<{ stdout: string; random: string }> {
  const { root, cleanup } = await tempRoot();
  try {
    await seedStore(root);
    const r = await tsbox(["build", "--cache-from", cacheFrom, ...extra, "-t", "t-cio:2", ctx], {
      root,
    });
    assertEquals(r.code, 0, r.stderr + r.stdout);
    return { stdout: r.stdout, random: await cat(root, "t-cio:2", "/random") };
  } finally {
    await cleanup();
  }
}

rootTest("build --cache-to type=local then --cache-from in a fresh store: cache hits", async () => {
  const root = await sharedBusyboxRoot();
  const ctx = await dirWith({ Dockerfile: DOCKERFILE, "app.txt": "app\n" });
  const cacheDir = await Deno.makeTempDir({ prefix: "tsbox-cache-" });
  try {
    const first = await tsbox([
      "build",
      "--no-cache",
      "--cache-to",
      `type=local,dest=${cacheDir},mode=max`,
      "-t",
      "t-cio:1",
      ctx,
    ], { root });
    assertEquals(first.code, 0, first.stderr + first.stdout);
    const random = await cat(root, "t-cio:1", "/random");
    assertMatch(random, /^[0-9a-f]{32}$/);
    // An OCI image layout: index.json names the manifest, whose config is the cache's records.
    const index = JSON.parse(await Deno.readTextFile(join(cacheDir, "index.json")));
    const manifestDigest: string = index.manifests[0].digest;
    const manifest = JSON.parse(
      await Deno.readTextFile(join(cacheDir, "blobs/sha256", manifestDigest.slice(7))),
    );
    assertEquals(manifest.config.mediaType, "application/vnd.tsbox.buildcache.config.v1+json");
    assertOk(manifest.layers.length >= 4, JSON.stringify(manifest.layers));
    for (const l of manifest.layers) {
      assertMatch(l.annotations["containerd.io/uncompressed"], /^sha256:[0-9a-f]{64}$/);
    }

    const hit = await buildFresh(ctx, `type=local,src=${cacheDir}`);
    assertEquals(hit.random, random, hit.stdout);
    // Every step but the two FROMs came from the cache.
    assertEquals(hit.stdout.match(/ ---> Using cache/g)?.length, 4, hit.stdout);

    // A changed file misses from its COPY on; an empty directory is a warning, not a failure.
    await Deno.writeTextFile(join(ctx, "app.txt"), "changed\n");
    const miss = await buildFresh(ctx, `type=local,src=${cacheDir}`);
    assertOk(miss.random !== random, miss.stdout);
    const empty = await Deno.makeTempDir({ prefix: "tsbox-cache-" });
    const { root: r2, cleanup } = await tempRoot();
    try {
      await seedStore(r2);
      const w = await tsbox(["build", "--cache-from", `type=local,src=${empty}`, ctx], {
        root: r2,
      });
      assertEquals(w.code, 0, w.stderr);
      assertStringIncludes(w.stderr, `build cache ${empty}`);
    } finally {
      await cleanup();
      await Deno.remove(empty, { recursive: true });
    }
  } finally {
    await Deno.remove(ctx, { recursive: true });
    await Deno.remove(cacheDir, { recursive: true });
    await tsbox(["rmi", "t-cio:1"], { root });
  }
});

rootTest("build --cache-to type=registry then --cache-from it into a fresh store", async () => {
  const root = await sharedBusyboxRoot();
  const registry = await startRegistry();
  const ctx = await dirWith({ Dockerfile: DOCKERFILE, "app.txt": "app\n" });
  const ref = `${registry.host}/cache/app:buildcache`;
  try {
    const first = await tsbox([
      "build",
      "--no-cache",
      "--cache-to",
      `type=registry,ref=${ref},mode=max`,
      "-t",
      "t-cio:3",
      ctx,
    ], { root });
    assertEquals(first.code, 0, first.stderr + first.stdout);
    const random = await cat(root, "t-cio:3", "/random");
    // An independent client reads what was pushed: an OCI manifest with tsbox's cache config.
    const raw = await new Deno.Command("skopeo", {
      args: ["inspect", "--raw", "--tls-verify=false", `docker://${ref}`],
    }).output();
    assertEquals(raw.code, 0, new TextDecoder().decode(raw.stderr));
    const manifest = JSON.parse(new TextDecoder().decode(raw.stdout));
    assertEquals(manifest.mediaType, "application/vnd.oci.image.manifest.v1+json");
    assertEquals(manifest.config.mediaType, "application/vnd.tsbox.buildcache.config.v1+json");

    const hit = await buildFresh(ctx, `type=registry,ref=${ref}`);
    assertEquals(hit.random, random, hit.stdout);
    assertEquals(hit.stdout.match(/ ---> Using cache/g)?.length, 4, hit.stdout);
    // A bare reference is a registry cache too.
    const bare = await buildFresh(ctx, ref);
    assertEquals(bare.random, random, bare.stdout);

    // mode=min (the default) keeps the target stage's steps alone: in a fresh store the
    // stage "tool" runs again while the final stage's first COPY still hits.
    const min = `${registry.host}/cache/app:min`;
    const m = await tsbox(["build", "--cache-to", `type=registry,ref=${min}`, ctx], { root });
    assertEquals(m.code, 0, m.stderr + m.stdout);
    const fromMin = await buildFresh(ctx, min);
    assertMatch(fromMin.stdout, /Step 2\/6 : RUN head[^\n]*\n ---> [0-9a-f]{12} /);
    assertMatch(fromMin.stdout, /Step 4\/6 : COPY app.txt \/app.txt\n ---> Using cache/);
  } finally {
    await Deno.remove(ctx, { recursive: true });
    await registry.stop();
    await tsbox(["rmi", "t-cio:3"], { root });
  }
});
