/**
 * `tsbox build --build-context` and `--output` (root), on real builds of the fixture busybox:
 * a named directory read by COPY --from and RUN --mount from= (a rw bind's writes never reach
 * it), an image context used by FROM, a context replacing a stage of the same name (the stage
 * does not run), and the final filesystem sent to a directory and to a tar with no image made.
 */
import { join } from "node:path";
import { TarReader } from "../src/image/tar.ts";
import { assertEquals, assertMatch, assertOk, assertStringIncludes } from "./assert.ts";
import { sharedBusyboxRoot } from "./busybox_store.ts";
import { dirWith, rootTest, tempRoot, tsbox } from "./cli.ts";

async function cat(root: string, image: string, ...paths: string[]): Promise<string> {
  const r = await tsbox(["run", "--rm", image, "cat", ...paths], { root });
  assertEquals(r.code, 0, r.stderr);
  return r.stdout;
}

rootTest("build --build-context: a directory for COPY --from and RUN --mount from=", async () => {
  const root = await sharedBusyboxRoot();
  const extra = await dirWith({ "lib/a.txt": "from-extra\n", ".dockerignore": "secret.txt\n" });
  await Deno.writeTextFile(join(extra, "secret.txt"), "ignored\n");
  const ctx = await dirWith({
    Dockerfile: `FROM busybox
COPY --from=extra lib/a.txt /a.txt
RUN --mount=type=bind,from=extra,target=/x,rw cat /x/lib/a.txt > /seen; echo scribble > /x/lib/a.txt
RUN --mount=type=bind,from=extra,target=/x test ! -e /x/nothing && echo ok > /bound
`,
  });
  try {
    const r = await tsbox(
      ["build", "--build-context", `extra=${extra}`, "-t", "t-bctx:1", ctx],
      { root },
    );
    assertEquals(r.code, 0, r.stderr + r.stdout);
    assertEquals(
      await cat(root, "t-bctx:1", "/a.txt", "/seen", "/bound"),
      "from-extra\nfrom-extra\nok\n",
    );
    // The rw bind wrote into its own throwaway layer, never into the user's directory.
    assertEquals(await Deno.readTextFile(join(extra, "lib/a.txt")), "from-extra\n");

    // A change in the named directory invalidates the COPY that reads it.
    await Deno.writeTextFile(join(extra, "lib/a.txt"), "changed\n");
    const again = await tsbox(
      ["build", "--build-context", `extra=${extra}`, "-t", "t-bctx:2", ctx],
      { root },
    );
    assertEquals(again.code, 0, again.stderr + again.stdout);
    assertEquals(await cat(root, "t-bctx:2", "/a.txt"), "changed\n");

    // Its .dockerignore applies: the ignored file is not found.
    const ignored = await dirWith({
      Dockerfile: "FROM busybox\nCOPY --from=extra secret.txt /s\n",
    });
    const bad = await tsbox(["build", "--build-context", `extra=${extra}`, ignored], { root });
    assertOk(bad.code !== 0, bad.stdout);
    assertStringIncludes(bad.stderr, "secret.txt");
    await Deno.remove(ignored, { recursive: true });
  } finally {
    await Deno.remove(ctx, { recursive: true });
    await Deno.remove(extra, { recursive: true });
    await tsbox(["rmi", "t-bctx:1", "t-bctx:2"], { root });
  }
});

rootTest("build --build-context: an image for FROM, and a context replacing a stage", async () => {
  const root = await sharedBusyboxRoot();
  // An image of another name: FROM base resolves to it through the context, not the registry.
  const base = await dirWith({ Dockerfile: "FROM busybox\nRUN echo marker > /marker\n" });
  const ctx = await dirWith({
    Dockerfile: `FROM busybox AS builder
RUN echo stage-ran; echo from-stage > /out

FROM base
COPY --from=builder /out /out
`,
  });
  const over = await dirWith({ out: "from-context\n" });
  try {
    const b = await tsbox(["build", "-t", "t-bctx-base:1", base], { root });
    assertEquals(b.code, 0, b.stderr + b.stdout);
    const r = await tsbox([
      "build",
      "--build-context",
      "base=docker-image://t-bctx-base:1",
      "-t",
      "t-bctx:3",
      ctx,
    ], { root });
    assertEquals(r.code, 0, r.stderr + r.stdout);
    assertStringIncludes(r.stdout, "stage-ran");
    assertEquals(await cat(root, "t-bctx:3", "/marker", "/out"), "marker\nfrom-stage\n");

    // --build-context builder=DIR replaces the stage "builder": it is not run.
    const o = await tsbox([
      "build",
      "--no-cache",
      "--build-context",
      "base=docker-image://t-bctx-base:1",
      "--build-context",
      `builder=${over}`,
      "-t",
      "t-bctx:4",
      ctx,
    ], { root });
    assertEquals(o.code, 0, o.stderr + o.stdout);
    assertOk(!o.stdout.includes("stage-ran"), o.stdout);
    assertEquals(await cat(root, "t-bctx:4", "/out"), "from-context\n");

    // A directory cannot be a base image; an unknown scheme is refused by name.
    const notImage = await tsbox(["build", "--build-context", `base=${over}`, ctx], { root });
    assertOk(notImage.code !== 0, notImage.stdout);
    assertStringIncludes(notImage.stderr, "is a directory, not an image");
    const git = await tsbox(["build", "--build-context", "x=git://h/r", ctx], { root });
    assertEquals(git.code, 125);
    assertStringIncludes(git.stderr, "git:// contexts are not supported");
  } finally {
    for (const d of [base, ctx, over]) await Deno.remove(d, { recursive: true });
    await tsbox(["rmi", "t-bctx:3", "t-bctx:4", "t-bctx-base:1"], { root });
  }
});

rootTest("build --output: the final filesystem to a directory and to a tar, no image", async () => {
  const root = await sharedBusyboxRoot();
  const ctx = await dirWith({
    Dockerfile: `FROM busybox AS build
RUN mkdir -p /out/sub && echo built > /out/sub/file && ln -s sub/file /out/link && \\
    ln /out/sub/file /out/hard && mkfifo /out/fifo && chmod 0750 /out/sub

FROM scratch
COPY --from=build /out /
`,
  });
  const dest = await Deno.makeTempDir({ prefix: "tsbox-out-" });
  try {
    const before = await tsbox(["images", "-q", "-a"], { root });
    const local = await tsbox(["build", "-o", join(dest, "dir"), ctx], { root });
    assertEquals(local.code, 0, local.stderr + local.stdout);
    assertEquals(await Deno.readTextFile(join(dest, "dir/sub/file")), "built\n");
    assertEquals(await Deno.readLink(join(dest, "dir/link")), "sub/file");
    const hard = await Deno.lstat(join(dest, "dir/hard"));
    assertEquals(hard.ino, (await Deno.lstat(join(dest, "dir/sub/file"))).ino);
    // The whole filesystem of a stage with --target: the fifo its RUN made is kept.
    const whole = await tsbox(["build", "--target", "build", "-o", join(dest, "whole"), ctx], {
      root,
    });
    assertEquals(whole.code, 0, whole.stderr + whole.stdout);
    assertOk((await Deno.lstat(join(dest, "whole/out/fifo"))).isFifo, "fifo kept");
    assertOk((await Deno.lstat(join(dest, "whole/bin/busybox"))).isFile, "base layer there");
    assertEquals((await Deno.stat(join(dest, "dir/sub"))).mode! & 0o7777, 0o750);
    // No image was recorded (the filesystem went out instead).
    const after = await tsbox(["images", "-q", "-a"], { root });
    assertEquals(after.stdout, before.stdout);

    const tarPath = join(dest, "out.tar");
    const t = await tsbox(["build", "--output", `type=tar,dest=${tarPath}`, ctx], { root });
    assertEquals(t.code, 0, t.stderr + t.stdout);
    const names: string[] = [];
    for await (const e of new TarReader((await Deno.open(tarPath)).readable)) {
      names.push(`${e.header.name}:${e.header.type}`);
    }
    for (const want of ["sub/:directory", "link:symlink"]) {
      assertOk(names.includes(want), `${want} in ${names.join(" ")}`);
    }
    // One inode with two names: one entry holds the body, the other links to it.
    const linked = names.filter((n) => /^(hard|sub\/file):(file|hardlink)$/.test(n)).sort();
    assertEquals(linked.map((n) => n.split(":")[1]).sort(), ["file", "hardlink"], names.join(" "));

    // -o - : the tar on stdout, the build's own lines on stderr.
    const piped = await tsbox(["build", "-o", "-", ctx], { root });
    assertEquals(piped.code, 0, piped.stderr);
    assertMatch(piped.stderr, /Step 1\/4 : FROM busybox AS build/);
    assertOk(piped.stdout.includes("built\n"), "file content in the tar on stdout");

    const bad = await tsbox(["build", "--output", "type=registry,ref=x", ctx], { root });
    assertEquals(bad.code, 125);
    assertStringIncludes(bad.stderr, "type registry is not supported");
  } finally {
    await Deno.remove(ctx, { recursive: true });
    await Deno.remove(dest, { recursive: true });
  }
});

rootTest(
  "build --output type=oci and type=docker: the image's archive, as save writes it",
  async () => {
    const root = await sharedBusyboxRoot();
    const ctx = await dirWith({ Dockerfile: "FROM busybox\nRUN echo archived > /archived\n" });
    const dest = await Deno.makeTempDir({ prefix: "tsbox-out-" });
    try {
      const oci = join(dest, "img.oci.tar");
      const r = await tsbox(["build", "-t", "t-out:oci", "--output", `type=oci,dest=${oci}`, ctx], {
        root,
      });
      assertEquals(r.code, 0, r.stderr + r.stdout);
      // skopeo reads it as an OCI archive; the image is also in the store (type=oci records it).
      const inspect = await new Deno.Command("skopeo", {
        args: ["inspect", "--raw", `oci-archive:${oci}`],
      }).output();
      assertEquals(inspect.code, 0, new TextDecoder().decode(inspect.stderr));
      const manifest = JSON.parse(new TextDecoder().decode(inspect.stdout));
      assertEquals(manifest.layers.length, 2);
      const docker = join(dest, "img.docker.tar");
      const d = await tsbox(["build", "-o", `type=docker,dest=${docker}`, ctx], { root });
      assertEquals(d.code, 0, d.stderr + d.stdout);
      // A fresh store loads it and runs the step's file.
      const { root: other, cleanup } = await tempRoot();
      try {
        const loaded = await tsbox(["load", "-i", docker], { root: other });
        assertEquals(loaded.code, 0, loaded.stderr);
        const id = /sha256:[0-9a-f]{64}/.exec(loaded.stdout)?.[0];
        assertOk(id, loaded.stdout);
        const cat = await tsbox(["run", "--rm", id, "cat", "/archived"], { root: other });
        assertEquals(cat.stdout, "archived\n", cat.stderr);
      } finally {
        await cleanup();
      }
    } finally {
      await Deno.remove(ctx, { recursive: true });
      await Deno.remove(dest, { recursive: true });
      await tsbox(["rmi", "t-out:oci"], { root });
    }
  },
);
