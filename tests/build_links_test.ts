/**
 * Build details through the real command line (root): a `Containerfile` is the build file when
 * the context has no `Dockerfile` (a `Dockerfile` wins when both are there), and COPY keeps
 * hard links of the context as hard links in the image (same inode, link count 2).
 */
import { join } from "node:path";
import { assertEquals, assertNotEquals, assertStringIncludes } from "./assert.ts";
import { sharedBusyboxRoot } from "./busybox_store.ts";
import { tsbox } from "./cli.ts";

const isRoot = Deno.uid() === 0;

Deno.test({
  name: "build: Containerfile without Dockerfile; COPY keeps hard links (inode numbers)",
  ignore: !isRoot,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const root = await sharedBusyboxRoot();
    const t = (args: string[]) => tsbox(args, { root });
    const ctx = await Deno.makeTempDir({ prefix: "tsbox-ctx-" });
    try {
      await Deno.mkdir(join(ctx, "dir"));
      await Deno.writeTextFile(join(ctx, "dir", "a"), "same file\n");
      await Deno.link(join(ctx, "dir", "a"), join(ctx, "dir", "b"));
      await Deno.writeTextFile(join(ctx, "dir", "c"), "other file\n");
      await Deno.writeTextFile(
        join(ctx, "Containerfile"),
        "FROM busybox\nCOPY dir/ /data/\nCOPY dir/a dir/b /pair/\n",
      );
      const built = await t(["build", "-q", "-t", "t-links:1", ctx]);
      assertEquals(built.code, 0, built.stderr);
      const run = await t([
        "run",
        "--rm",
        "t-links:1",
        "stat",
        "-c",
        "%n %i %h",
        "/data/a",
        "/data/b",
        "/data/c",
        "/pair/a",
        "/pair/b",
      ]);
      assertEquals(run.code, 0, run.stderr);
      const rows = run.stdout.trim().split("\n").map((l) => l.split(" "));
      const ino = Object.fromEntries(rows.map(([n, i]) => [n, i]));
      const links = Object.fromEntries(rows.map(([n, , h]) => [n, h]));
      assertEquals(ino["/data/a"], ino["/data/b"], run.stdout);
      assertNotEquals(ino["/data/a"], ino["/data/c"], run.stdout);
      assertEquals(links["/data/a"], "2", run.stdout);
      assertEquals(links["/data/c"], "1", run.stdout);
      assertEquals(ino["/pair/a"], ino["/pair/b"], run.stdout);
      assertNotEquals(ino["/pair/a"], ino["/data/a"], run.stdout);
      const cat = await t(["run", "--rm", "t-links:1", "cat", "/data/b"]);
      assertEquals(cat.stdout, "same file\n");

      // Both files: the Dockerfile is the one built.
      await Deno.writeTextFile(join(ctx, "Dockerfile"), "FROM busybox\nLABEL which=dockerfile\n");
      await Deno.writeTextFile(
        join(ctx, "Containerfile"),
        "FROM busybox\nLABEL which=containerfile\n",
      );
      assertEquals((await t(["build", "-q", "-t", "t-links:2", ctx])).code, 0);
      assertEquals(
        (await t(["image", "inspect", "-f", "{{.Config.Labels.which}}", "t-links:2"])).stdout,
        "dockerfile\n",
      );
      // Neither: docker's message names the Dockerfile.
      await Deno.remove(join(ctx, "Dockerfile"));
      await Deno.remove(join(ctx, "Containerfile"));
      const none = await t(["build", "-q", ctx]);
      assertEquals(none.code, 125);
      assertStringIncludes(none.stderr, "Dockerfile");
    } finally {
      await Deno.remove(ctx, { recursive: true });
      await t(["rmi", "t-links:1", "t-links:2"]);
    }
  },
});
