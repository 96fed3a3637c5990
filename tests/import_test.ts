/**
 * `tsbox import` through the real command line (root): a container's exported filesystem comes
 * back as a one-layer image from a file (with `-c` and `-m`), from stdin gzip-compressed, and
 * from an http URL of the test's own server on 127.0.0.1; each image runs. Bad changes and
 * non-tar input are refused and leave the store as it was.
 */
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { assertEquals, assertMatch, assertStringIncludes } from "./assert.ts";
import { seedStore } from "./busybox_store.ts";
import { type CliResult, tempRoot, tsbox } from "./cli.ts";

const isRoot = Deno.uid() === 0;

Deno.test({
  name: "import: file with -c/-m, stdin gzip, http URL; each image runs; bad input refused",
  ignore: !isRoot,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const { root, cleanup } = await tempRoot();
    const work = await Deno.makeTempDir({ prefix: "tsbox-import-" });
    const t = (args: string[], stdin?: Uint8Array): Promise<CliResult> =>
      tsbox(args, { root, stdin });
    const ok = async (args: string[], stdin?: Uint8Array) => {
      const r = await t(args, stdin);
      assertEquals(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
      return r.stdout;
    };
    let server: Deno.HttpServer<Deno.NetAddr> | undefined;
    try {
      await seedStore(root);
      await ok(["run", "--name", "t-imp-src", "busybox", "sh", "-c", "echo marked > /marker"]);
      const tarPath = join(work, "fs.tar");
      await ok(["export", "-o", tarPath, "t-imp-src"]);
      await ok(["rm", "t-imp-src"]);

      // A file, with changes and a message.
      const id = (await ok([
        "import",
        "-c",
        "ENV GREETING=hello",
        "-c",
        'CMD ["/bin/sh", "-c", "echo $GREETING $(cat /marker) from $(pwd)"]',
        "-c",
        "WORKDIR /tmp",
        "-c",
        "LABEL origin=test",
        "-m",
        "my import",
        tarPath,
        "t-imp:1",
      ])).trim();
      assertMatch(id, /^sha256:[0-9a-f]{64}$/);
      assertEquals(await ok(["run", "--rm", "t-imp:1"]), "hello marked from /tmp\n");
      assertEquals(
        await ok([
          "image",
          "inspect",
          "-f",
          "{{.Id}} {{.Comment}} {{len .RootFS.Layers}} {{.Config.Labels.origin}} {{.Os}}",
          "t-imp:1",
        ]),
        `${id} my import 1 test linux\n`,
      );

      // stdin, gzip-compressed; the default comment names the source.
      const gz = gzipSync(await Deno.readFile(tarPath));
      const id2 = (await ok(["import", "-", "t-imp:2"], gz)).trim();
      assertEquals(
        await ok(["image", "inspect", "-f", "{{.Comment}}", id2]),
        "Imported from -\n",
      );
      assertEquals(await ok(["run", "--rm", "t-imp:2", "cat", "/marker"]), "marked\n");
      // The same filesystem, so the same layer as the first image.
      assertEquals(
        await ok(["image", "inspect", "-f", "{{index .RootFS.Layers 0}}", "t-imp:2"]),
        await ok(["image", "inspect", "-f", "{{index .RootFS.Layers 0}}", "t-imp:1"]),
      );

      // An http URL of the test's own server on the loopback.
      const bytes = await Deno.readFile(tarPath);
      server = Deno.serve(
        { hostname: "127.0.0.1", port: 0, onListen: () => {} },
        (req) =>
          new URL(req.url).pathname === "/fs.tar"
            ? new Response(bytes)
            : new Response("no", { status: 404 }),
      );
      const url = `http://127.0.0.1:${server.addr.port}/fs.tar`;
      const id3 = (await ok(["import", url, "t-imp:3"])).trim();
      assertEquals(
        await ok(["image", "inspect", "-f", "{{.Comment}}", id3]),
        `Imported from ${url}\n`,
      );
      assertEquals(await ok(["run", "--rm", "t-imp:3", "cat", "/marker"]), "marked\n");
      const missing = await t(["import", `http://127.0.0.1:${server.addr.port}/nope.tar`]);
      assertEquals(missing.code, 125);
      assertStringIncludes(missing.stderr, "404");

      // Refused: a change import does not take, and bytes that are no tar.
      const images = await ok(["images", "-q", "--no-trunc"]);
      const bad = await t(["import", "-c", "RUN true", tarPath]);
      assertEquals(bad.code, 125);
      assertStringIncludes(bad.stderr, "RUN is not a valid change command");
      const junk = join(work, "junk");
      await Deno.writeTextFile(junk, "this is not a tarball at all\n".repeat(40));
      const notTar = await t(["import", junk, "t-imp:junk"]);
      assertEquals(notTar.code, 125, notTar.stderr);
      assertEquals(await ok(["images", "-q", "--no-trunc"]), images);
      const none = await t(["import", join(work, "absent.tar")]);
      assertEquals(none.code, 125);
      assertStringIncludes(none.stderr, "no such file or directory");
    } finally {
      await server?.shutdown();
      await cleanup();
      await Deno.remove(work, { recursive: true });
    }
  },
});
