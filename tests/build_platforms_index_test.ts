/**
 * What a docker or podman user meets after `build --platform linux/amd64,linux/arm64 -t NAME`
 * (issue 23), as root, through the host's qemu-aarch64 binfmt_misc handler (install_deps.sh):
 *
 * - `images` lists NAME once (the host variant's row), as docker with the containerd store and
 *   podman list a manifest list; `images -a` shows the arm64 variant as `<none>`, which is not
 *   dangling (`-f dangling=true` leaves it out);
 * - `image inspect NAME` is the host variant;
 * - `rmi NAME` removes the arm64 variant the index alone kept;
 * - `run` of a foreign-only image without `--platform` prints docker's platform warning and
 *   runs it through the emulator.
 */
import { assertOk, assertEquals, assertStringIncludes } from "./assert.ts";
import { dirWith, rootTest, tempRoot, tsbox } from "./cli.ts";
import { platformFixtures } from "./fixtures/arm64.ts";

async function ok(root: string, args: string[]): Promise<string> {
  const r = await tsbox(args, { root });
  assertEquals(r.code, 0, `tsbox ${args.join(" ")}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

rootTest(
  "a multi-platform image is listed once, inspected as the host variant, removed with its variants",
  async () => {
    const p = await platformFixtures();
    const { root, cleanup } = await tempRoot();
    const ctx = await dirWith({
      Dockerfile: `FROM ${p.multi}\nARG TARGETARCH\nRUN echo $TARGETARCH > /built-for\n`,
    });
    const name = "t-plat/app:1";
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
      // -q prints "PLATFORM ID" per platform.
      const ids = Object.fromEntries(built.trim().split("\n").map((l) => l.split(" ")));
      const amd = ids["linux/amd64"], arm = ids["linux/arm64"];
      assertOk(amd && arm && amd !== arm, built);

      const listed = await ok(root, [
        "images",
        "--no-trunc",
        "--format",
        "{{.Repository}}:{{.Tag}} {{.ID}}",
      ]);
      const rows = listed.trim().split("\n");
      assertEquals(rows.filter((r) => r.startsWith("t-plat/app:")), [`t-plat/app:1 ${amd}`]);
      assertOk(!listed.includes(arm), `the arm64 variant is not listed:\n${listed}`);
      const all = await ok(root, [
        "images",
        "-a",
        "--no-trunc",
        "--format",
        "{{.Repository}} {{.ID}}",
      ]);
      assertStringIncludes(all, `<none> ${arm}`);
      const dangling = await ok(root, ["images", "-q", "--no-trunc", "-f", "dangling=true"]);
      assertOk(!dangling.includes(arm), `a variant is not dangling:\n${dangling}`);

      const inspected = JSON.parse(await ok(root, ["image", "inspect", name]))[0];
      assertEquals([inspected.Id, inspected.Architecture], [amd, "amd64"]);

      const removed = await ok(root, ["rmi", name]);
      assertStringIncludes(removed, "Untagged: t-plat/app:1\n");
      assertStringIncludes(removed, `Deleted: ${amd}\n`);
      assertStringIncludes(removed, `Deleted: ${arm}\n`);
      const left = await ok(root, ["images", "-aq", "--no-trunc"]);
      assertOk(!left.includes(arm) && !left.includes(amd), left);
      // The base image the build pulled stays.
      assertEquals((await tsbox(["image", "inspect", p.multi], { root })).code, 0);
    } finally {
      await Deno.remove(ctx, { recursive: true });
      await cleanup();
    }
  },
);

rootTest(
  "rmi of one of two tags of a multi-platform image keeps its variants for the other",
  async () => {
    const p = await platformFixtures();
    const { root, cleanup } = await tempRoot();
    const ctx = await dirWith({ Dockerfile: `FROM ${p.multi}\nLABEL x=1\n` });
    try {
      const built = await ok(root, [
        "build",
        "-q",
        "--platform",
        "linux/amd64,linux/arm64",
        "-t",
        "t-plat/a:1",
        "-t",
        "t-plat/b:1",
        ctx,
      ]);
      const arm = built.split("\n").find((l) => l.startsWith("linux/arm64 "))!.split(" ")[1];
      const removed = await ok(root, ["rmi", "t-plat/a:1"]);
      assertEquals(removed, "Untagged: t-plat/a:1\n");
      assertEquals(
        await ok(root, ["run", "--rm", "--platform", "linux/arm64", "t-plat/b:1", "cat", "/arch"]),
        "arm64\n",
      );
      const gone = await ok(root, ["rmi", "t-plat/b:1"]);
      assertStringIncludes(gone, `Deleted: ${arm}\n`);
    } finally {
      await Deno.remove(ctx, { recursive: true });
      await cleanup();
    }
  },
);

rootTest(
  "run of a foreign-only image without --platform: docker's warning, then the arm64 program runs",
  async () => {
    const p = await platformFixtures();
    const { root, cleanup } = await tempRoot();
    try {
      await ok(root, ["pull", "-q", p.arm64]);
      const r = await tsbox(["run", "--rm", p.arm64, "uname", "-m"], { root });
      assertEquals(r.code, 0, r.stderr);
      assertEquals(r.stdout, "aarch64\n");
      assertEquals(
        r.stderr,
        "WARNING: The requested image's platform (linux/arm64) does not match the detected " +
          "host platform (linux/amd64) and no specific platform was requested\n",
      );
      // With --platform asked, no warning.
      const asked = await tsbox(["run", "--rm", "--platform", "linux/arm64", p.arm64, "true"], {
        root,
      });
      assertEquals([asked.code, asked.stderr], [0, ""]);
    } finally {
      await cleanup();
    }
  },
);
