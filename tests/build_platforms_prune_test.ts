/**
 * A multi-platform image (issue 23) is removed as one: `image prune -a` and `system prune -a`
 * keep every variant of an index while a container uses one of them (docker's containerd store
 * keeps the index, which the container names), and remove them all otherwise; `rmi` of one
 * variant by id needs `-f` and then takes that platform out of the index, so that no index ever
 * names an image the store no longer has.
 */
import { assertEquals, assertOk, assertStringIncludes } from "./assert.ts";
import { dirWith, rootTest, tempRoot, tsbox } from "./cli.ts";
import { platformFixtures } from "./fixtures/arm64.ts";

async function ok(root: string, args: string[]): Promise<string> {
  const r = await tsbox(args, { root });
  assertEquals(r.code, 0, `tsbox ${args.join(" ")}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

rootTest(
  "prune -a keeps a multi-platform image's variants while a container uses one; rmi -f of a variant drops its platform",
  async () => {
    const p = await platformFixtures();
    const { root, cleanup } = await tempRoot();
    const ctx = await dirWith({
      Dockerfile: `FROM ${p.multi}\nARG TARGETARCH\nRUN echo $TARGETARCH > /built-for\n`,
    });
    const name = "t-plat/pruned:1";
    try {
      const built = await ok(root, [
        "build",
        "-q",
        "--platform",
        "linux/amd64,linux/arm64",
        "-t",
        name,
        ctx,
      ]);
      const ids = Object.fromEntries(built.trim().split("\n").map((l) => l.split(" ")));
      const amd = ids["linux/amd64"], arm = ids["linux/arm64"];
      assertOk(amd && arm, built);
      // The container uses the host variant, which NAME's tag points at.
      await ok(root, ["create", "--name", "t-plat-prune-keep", name, "true"]);

      const pruned = await ok(root, ["image", "prune", "-a", "-f"]);
      assertOk(!pruned.includes(arm) && !pruned.includes(amd), pruned);
      const left = await ok(root, ["images", "-aq", "--no-trunc"]);
      assertStringIncludes(left, arm);
      assertStringIncludes(left, amd);
      // What prune -a keeps is not counted as reclaimable either.
      const df = await ok(root, ["system", "df", "--format", "{{.Type}} {{.Reclaimable}}"]);
      assertStringIncludes(df, "Images 0B (0%)\n");
      // The index still names both platforms: either runs by NAME.
      assertEquals(
        await ok(root, ["run", "--rm", "--platform", "linux/arm64", name, "cat", "/built-for"]),
        "arm64\n",
      );
      assertEquals(await ok(root, ["run", "--rm", name, "cat", "/built-for"]), "amd64\n");

      // One variant by id: refused without -f, naming the image it belongs to.
      const refused = await tsbox(["rmi", arm], { root });
      assertOk(refused.code !== 0, refused.stdout);
      assertStringIncludes(refused.stderr, "must be forced");
      assertStringIncludes(refused.stderr, name);
      assertStringIncludes(await ok(root, ["images", "-aq", "--no-trunc"]), arm);
      // Forced: the platform leaves the index with its image.
      assertStringIncludes(await ok(root, ["rmi", "-f", arm]), `Deleted: ${arm}\n`);
      const out = await Deno.makeTempFile({ prefix: "tsbox-prune-save-" });
      try {
        const saved = await tsbox(
          ["save", "--platform", "linux/arm64", "-o", out, name],
          { root },
        );
        assertOk(saved.code !== 0, saved.stdout);
        assertStringIncludes(saved.stderr, "has no variant for linux/arm64");
      } finally {
        await Deno.remove(out);
      }
      assertEquals(await ok(root, ["run", "--rm", name, "cat", "/built-for"]), "amd64\n");

      // Nothing uses it any more: system prune -a takes the rest.
      await ok(root, ["rm", "t-plat-prune-keep"]);
      await ok(root, ["system", "prune", "-a", "-f"]);
      assertEquals(await ok(root, ["images", "-aq"]), "");
    } finally {
      await Deno.remove(ctx, { recursive: true });
      await cleanup();
    }
  },
);

rootTest(
  "image prune -a with no container removes every variant of a multi-platform image and its index",
  async () => {
    const p = await platformFixtures();
    const { root, cleanup } = await tempRoot();
    const ctx = await dirWith({ Dockerfile: `FROM ${p.multi}\nLABEL pruned=1\n` });
    try {
      await ok(root, [
        "build",
        "-q",
        "--platform",
        "linux/amd64,linux/arm64",
        "-t",
        "t-plat/x:1",
        ctx,
      ]);
      // A container of the arm64 variant alone keeps the host variant (and the name) too.
      await ok(root, [
        "create",
        "--platform",
        "linux/arm64",
        "--name",
        "t-plat-prune-arm",
        "t-plat/x:1",
        "true",
      ]);
      await ok(root, ["image", "prune", "-a", "-f"]);
      assertEquals(
        await ok(root, ["run", "--rm", "t-plat/x:1", "cat", "/arch"]),
        "amd64\n",
      );
      await ok(root, ["rm", "t-plat-prune-arm"]);
      await ok(root, ["image", "prune", "-a", "-f"]);
      assertEquals(await ok(root, ["images", "-aq"]), "");
      const gone = await tsbox(["image", "inspect", "t-plat/x:1"], { root });
      assertOk(gone.code !== 0, gone.stdout);
    } finally {
      await Deno.remove(ctx, { recursive: true });
      await cleanup();
    }
  },
);
