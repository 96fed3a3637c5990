/**
 * `RUN --mount` in `tsbox build` (root), on real builds of the fixture busybox: a cache mount
 * kept in the store across builds (and `sharing=locked` serialising two builds at once), a
 * bind of another stage, a tmpfs, and a secret that is found nowhere after its step.
 */
import { join } from "node:path";
import { createHash } from "node:crypto";
import { gunzipSync } from "node:zlib";
import { layerBlobBytes } from "../src/image/layer_blob.ts";
import { TarReader } from "../src/image/tar.ts";
import { Store } from "../src/store/mod.ts";
import { assertEquals, assertMatch, assertOk, assertStringIncludes } from "./assert.ts";
import { sharedBusyboxRoot } from "./busybox_store.ts";
import { dirWith, rootTest, tempRoot, tsbox } from "./cli.ts";
import { seedStore } from "./busybox_store.ts";

async function cat(root: string, image: string, ...paths: string[]): Promise<string> {
  const r = await tsbox(["run", "--rm", image, "cat", ...paths], { root });
  assertEquals(r.code, 0, r.stderr);
  return r.stdout;
}

/** Whether `path` exists in `image` (`test -e` in a container of it). */
async function existsIn(root: string, image: string, path: string): Promise<boolean> {
  return (await tsbox(["run", "--rm", image, "test", "-e", path], { root })).code === 0;
}

/**
 * Paths in the tar of `image`'s top layer: its blob as push and save send it (a built layer's
 * tar is made from its directory in the store, checked against its diffID).
 */
async function topLayerEntries(root: string, image: string): Promise<string[]> {
  const store = await Store.open(root);
  const names: string[] = [];
  try {
    const img = store.findImage(image);
    assertOk(img, image);
    const tar = ReadableStream.from(layerBlobBytes(store, img.layers.at(-1)!));
    for await (const e of new TarReader(tar)) names.push(e.header.name);
  } finally {
    store.close();
  }
  return names;
}

function cacheDataDir(root: string, id: string): string {
  return join(root, "cache-mounts", createHash("sha256").update(id).digest("hex"), "data");
}

rootTest("RUN --mount=type=cache keeps a counter across two --no-cache builds", async () => {
  const root = await sharedBusyboxRoot();
  const ctx = await dirWith({
    Dockerfile: `FROM busybox
RUN --mount=type=cache,target=/var/counter,id=counter-test \\
    n=$(cat /var/counter/n 2>/dev/null || echo 0); n=$((n + 1)); \\
    echo $n > /var/counter/n; echo $n > /count
`,
  });
  try {
    for (const want of ["1\n", "2\n"]) {
      const r = await tsbox(["build", "--no-cache", "-t", "cache-count", ctx], { root });
      assertEquals(r.code, 0, r.stderr + r.stdout);
      assertEquals(await cat(root, "cache-count", "/count"), want);
    }
    // The cache lives in the store, not in the image; its lock file is beside it.
    assertEquals(await Deno.readTextFile(join(cacheDataDir(root, "counter-test"), "n")), "2\n");
    assertOk(await Deno.stat(join(cacheDataDir(root, "counter-test"), "..", "lock")));
    assertEquals(await existsIn(root, "cache-count", "/var/counter"), false);
    const entries = await topLayerEntries(root, "cache-count");
    assertOk(entries.includes("count"), entries.join(" "));
    assertEquals(entries.filter((e) => e.startsWith("var")), []);
  } finally {
    await Deno.remove(ctx, { recursive: true });
  }
});

rootTest("RUN --mount=type=cache,sharing=locked serialises two builds at once", async () => {
  const root = await sharedBusyboxRoot();
  const step = (who: string) =>
    `FROM busybox
RUN --mount=type=cache,target=/c,id=locked-test,sharing=locked \\
    s=$(cut -d' ' -f1 /proc/uptime); sleep 1; e=$(cut -d' ' -f1 /proc/uptime); \\
    echo "$s $e ${who}" >> /c/intervals
`;
  const a = await dirWith({ Dockerfile: step("a") });
  const b = await dirWith({ Dockerfile: step("b") });
  try {
    const [ra, rb] = await Promise.all([
      tsbox(["build", "--no-cache", a], { root }),
      tsbox(["build", "--no-cache", b], { root }),
    ]);
    assertEquals(ra.code, 0, ra.stderr);
    assertEquals(rb.code, 0, rb.stderr);
    const lines = (await Deno.readTextFile(join(cacheDataDir(root, "locked-test"), "intervals")))
      .trim().split("\n").map((l) => l.split(" "));
    assertEquals(lines.map((l) => l[2]).sort(), ["a", "b"]);
    const [x, y] = lines.map((l) => [Number(l[0]), Number(l[1])]);
    assertOk(x[1] <= y[0] || y[1] <= x[0], `locked steps overlapped: ${JSON.stringify(lines)}`);
  } finally {
    await Deno.remove(a, { recursive: true });
    await Deno.remove(b, { recursive: true });
  }
});

rootTest(
  "RUN --mount=type=bind from another stage: read-only, or rw with writes discarded",
  async () => {
    const root = await sharedBusyboxRoot();
    const ctx = await dirWith({
      Dockerfile: `FROM busybox AS src
RUN mkdir /data && echo from-stage > /data/f
FROM busybox
RUN --mount=type=bind,from=src,source=/data,target=/mnt \\
    cat /mnt/f > /copied; (touch /mnt/x 2>/dev/null && echo writable || echo read-only) > /ro
RUN --mount=type=bind,from=src,source=/data,target=/mnt,rw echo y > /mnt/g && cat /mnt/g > /rw
RUN --mount=type=bind,from=src,source=/data,target=/mnt ls /mnt > /after
RUN --mount=type=bind,source=ctx.txt,target=/etc/ctx.txt cat /etc/ctx.txt > /ctx
RUN --mount=type=bind,from=busybox,source=/etc,target=/image-etc cat /image-etc/group > /img
WORKDIR /w
RUN --mount=type=cache,id=seeded-test,target=c,from=src,source=/data cat c/f > /seeded
`,
      "ctx.txt": "from-context\n",
    });
    try {
      const r = await tsbox(["build", "-t", "bind-stage", ctx], { root });
      assertEquals(r.code, 0, r.stderr + r.stdout);
      assertEquals(
        await cat(root, "bind-stage", "/copied", "/ro", "/rw", "/after", "/ctx", "/seeded"),
        "from-stage\nread-only\ny\nf\nfrom-context\nfrom-stage\n",
      );
      assertEquals(await existsIn(root, "bind-stage", "/mnt"), false);
      assertEquals(await existsIn(root, "bind-stage", "/w/c"), false);
      // A bind from an image (the base itself here): its /etc/group as the image has it.
      assertStringIncludes(await cat(root, "bind-stage", "/img"), "extra:x:2000:app");
      assertEquals(await existsIn(root, "bind-stage", "/etc/ctx.txt"), false);
    } finally {
      await Deno.remove(ctx, { recursive: true });
    }
  },
);

rootTest("RUN --mount=type=tmpfs leaves nothing in the layer", async () => {
  const root = await sharedBusyboxRoot();
  const ctx = await dirWith({
    Dockerfile: `FROM busybox
RUN --mount=type=tmpfs,target=/scratch/deep,size=1m \\
    echo data > /scratch/deep/file && grep -c ' /scratch/deep tmpfs ' /proc/mounts > /mounted
`,
  });
  try {
    const r = await tsbox(["build", "-t", "tmpfs-mount", ctx], { root });
    assertEquals(r.code, 0, r.stderr + r.stdout);
    assertEquals(await cat(root, "tmpfs-mount", "/mounted"), "1\n");
    const entries = await topLayerEntries(root, "tmpfs-mount");
    assertOk(entries.includes("mounted"), entries.join(" "));
    assertEquals(entries.filter((e) => e.startsWith("scratch")), []);
  } finally {
    await Deno.remove(ctx, { recursive: true });
  }
});

rootTest("RUN --mount of an unknown or unsupported type is refused naming the flag", async () => {
  const root = await sharedBusyboxRoot();
  for (
    const [flag, message] of [
      ["--mount=type=ssh,required", "ssh agent default: not provided"],
      ["--mount=type=nfs,target=/x", 'unsupported mount type "nfs"'],
      ["--mount=type=cache,target=/x,color=red", 'unknown key "color"'],
      ["--mount=type=secret,id=absent,required", "secret absent"],
      ["--security=insecure", "--security=insecure"],
    ]
  ) {
    const ctx = await dirWith({ Dockerfile: `FROM busybox\nRUN ${flag} true\n` });
    try {
      const r = await tsbox(["build", ctx], { root });
      assertEquals(r.code, 125, r.stdout + r.stderr);
      assertStringIncludes(r.stderr, message);
      assertStringIncludes(r.stderr, "Dockerfile:2: RUN");
    } finally {
      await Deno.remove(ctx, { recursive: true });
    }
  }
});

/** Every file under `dir` (gzip members unpacked) that holds `marker`. */
async function filesHolding(dir: string, marker: string): Promise<string[]> {
  const needle = new TextEncoder().encode(marker);
  const found: string[] = [];
  const holds = (data: Uint8Array): boolean => {
    if (data.length > 2 && data[0] === 0x1f && data[1] === 0x8b) {
      try {
        return holds(new Uint8Array(gunzipSync(data)));
      } catch { /* not gzip after all */ }
    }
    outer: for (let i = data.indexOf(needle[0]); i >= 0; i = data.indexOf(needle[0], i + 1)) {
      for (let j = 1; j < needle.length; j++) if (data[i + j] !== needle[j]) continue outer;
      return true;
    }
    return false;
  };
  const walk = async (d: string) => {
    for await (const e of Deno.readDir(d)) {
      const p = join(d, e.name);
      if (e.isDirectory) await walk(p);
      else if (e.isFile && holds(await Deno.readFile(p))) found.push(p);
    }
  };
  await walk(dir);
  return found;
}

rootTest(
  "RUN --mount=type=secret: read in its step, found nowhere afterwards, not in the cache key",
  async () => {
    // A store of its own: every file in it is searched for the secret.
    const { root, cleanup } = await tempRoot();
    const work = await Deno.makeTempDir({ prefix: "tsbox-secret-" });
    const marker = `S3CRET-${crypto.randomUUID()}`;
    const ctx = await dirWith({
      Dockerfile: `FROM busybox
RUN --mount=type=secret,id=tok wc -c < /run/secrets/tok > /len; \\
    ls -ln /run/secrets/tok | cut -c1-10 > /perm
RUN --mount=type=secret,id=tok,env=TOKEN,target=/s/tok,mode=0440,uid=1000 \\
    test "$TOKEN" = "$(cat /s/tok)" && ls -ln /s/tok | awk '{print $1, $3}' > /same
RUN --mount=type=secret,id=fromenv,env=FROM_ENV test "\${#FROM_ENV}" = ${marker.length + 4} && \\
    test ! -e /run/secrets/fromenv && echo env-ok > /env
`,
    });
    try {
      await seedStore(root);
      const secretFile = join(work, "secret");
      await Deno.writeTextFile(secretFile, marker);
      const build = (extra: string[]) =>
        tsbox([
          "build",
          ...extra,
          "--secret",
          `id=tok,src=${secretFile}`,
          "--secret",
          "id=fromenv,env=TSBOX_TEST_SECRET_ENV",
          "-t",
          "sec",
          ctx,
        ], { root, env: { TSBOX_TEST_SECRET_ENV: `env-${marker}` } });
      const r = await build([]);
      assertEquals(r.code, 0, r.stderr + r.stdout);
      assertEquals(
        await cat(root, "sec", "/len", "/perm", "/same", "/env"),
        `${marker.length}\n-r--------\n-r--r----- 1000\nenv-ok\n`,
      );

      // The mount points made for the secrets are not left in the image.
      assertEquals(await existsIn(root, "sec", "/run"), false);
      assertEquals(await existsIn(root, "sec", "/s"), false);
      const history = await tsbox(["history", "--no-trunc", "sec"], { root });
      const inspect = await tsbox(["inspect", "sec"], { root });
      const saved = join(work, "saved.tar");
      const save = await tsbox(["save", "-o", saved, "sec"], { root });
      assertEquals(save.code, 0, save.stderr);
      const unpacked = join(work, "saved");
      await Deno.mkdir(unpacked);
      const tar = await new Deno.Command("tar", { args: ["-xf", saved, "-C", unpacked] }).output();
      assertOk(tar.success);
      for (
        const [what, text] of [
          ["build output", r.stdout + r.stderr],
          ["history", history.stdout],
          ["inspect", inspect.stdout],
        ]
      ) assertOk(!text.includes(marker), `the secret is in the ${what}`);
      assertMatch(history.stdout, /RUN \/bin\/sh -c wc -c < \/run\/secrets\/tok/);
      // The whole store: layer tars and directories, blobs, configs, the database and its WAL.
      assertEquals(await filesHolding(root, marker), []);
      assertEquals(await filesHolding(unpacked, marker), []);

      // A changed secret keeps the cache (as BuildKit); --no-cache reads the new one.
      await Deno.writeTextFile(secretFile, `${marker}-longer`);
      const again = await build([]);
      assertEquals(again.code, 0, again.stderr);
      assertEquals(again.stdout.match(/---> CACHED/g)?.length, 3, again.stdout);
      assertEquals(await cat(root, "sec", "/len"), `${marker.length}\n`);
      const fresh = await build(["--no-cache"]);
      assertEquals(fresh.code, 0, fresh.stderr);
      assertEquals(await cat(root, "sec", "/len"), `${marker.length + 7}\n`);
      assertEquals(await filesHolding(root, marker), []);
    } finally {
      await cleanup();
      await Deno.remove(work, { recursive: true });
      await Deno.remove(ctx, { recursive: true });
    }
  },
);
