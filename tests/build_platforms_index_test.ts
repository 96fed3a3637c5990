/**
 * What a docker or podman user meets after `build --platform linux/amd64,linux/arm64 -t NAME`
 * (issue 23), as root, through the host's qemu-aarch64 binfmt_misc handler (install_deps.sh):
 *
 * - `images` lists NAME once (the host variant's row), as docker with the containerd store and
 *   podman list a manifest list; `images -a` shows the arm64 variant as `<none>`, which is not
 *   dangling (`-f dangling=true` leaves it out);
 * - `image inspect NAME` is the host variant;
 * - `rmi NAME` removes the arm64 variant the index alone kept; `tag NAME NEW` tags the index;
 * - `save --platform a,b NAME` (docker 28+) saves the variants named (an OCI archive: one index);
 * - `run` of a foreign-only image without `--platform` prints docker's platform warning and
 *   runs it through the emulator.
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
  "tag of a multi-platform image tags its index; rmi of one of its tags keeps the variants for the other",
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
      // `tag` of the name tags the index: the new name runs either variant.
      await ok(root, ["tag", "t-plat/a:1", "t-plat/c:1"]);
      assertEquals(
        await ok(root, ["run", "--rm", "--platform", "linux/arm64", "t-plat/c:1", "cat", "/arch"]),
        "arm64\n",
      );
      assertEquals(await ok(root, ["rmi", "t-plat/c:1"]), "Untagged: t-plat/c:1\n");
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

/** `tar -xOf ARCHIVE FILE`. */
async function fileIn(archive: string, file: string): Promise<string> {
  const out = await new Deno.Command("tar", { args: ["-xOf", archive, file], stdout: "piped" })
    .output();
  assertEquals(out.code, 0, `tar -xOf ${archive} ${file}`);
  return new TextDecoder().decode(out.stdout);
}

/** The architecture of each entry of a docker archive's manifest.json, with its RepoTags. */
async function dockerEntries(archive: string): Promise<[string, string[]][]> {
  const manifest = JSON.parse(await fileIn(archive, "manifest.json")) as {
    Config: string;
    RepoTags: string[] | null;
  }[];
  const out: [string, string[]][] = [];
  for (const m of manifest) {
    const config = JSON.parse(await fileIn(archive, m.Config));
    out.push([config.architecture, m.RepoTags ?? []]);
  }
  return out;
}

rootTest(
  "save of a multi-platform image: the host variant, or the variants --platform names",
  async () => {
    const p = await platformFixtures();
    const { root, cleanup } = await tempRoot();
    const fresh = await tempRoot();
    const ctx = await dirWith({
      Dockerfile: `FROM ${p.multi}\nARG TARGETARCH\nRUN echo $TARGETARCH > /built-for\n`,
    });
    const out = await Deno.makeTempDir({ prefix: "t-platsave-" });
    const name = "t-plat/save:1";
    try {
      await ok(root, ["build", "-q", "--platform", "linux/amd64,linux/arm64", "-t", name, ctx]);
      // By default the host variant, as docker's classic store saves it.
      await ok(root, ["save", "-o", `${out}/host.tar`, name]);
      assertEquals(await dockerEntries(`${out}/host.tar`), [["amd64", [name]]]);
      // --platform (docker 28+) picks a variant, saved under the name.
      await ok(root, ["save", "--platform", "linux/arm64", "-o", `${out}/arm.tar`, name]);
      assertEquals(await dockerEntries(`${out}/arm.tar`), [["arm64", [name]]]);
      await ok(fresh.root, ["load", "-q", "-i", `${out}/arm.tar`]);
      assertEquals(await ok(fresh.root, ["run", "--rm", name, "cat", "/built-for"]), "arm64\n");
      // Several: each variant in a docker archive, the name on the host's.
      await ok(root, [
        "save",
        "--platform",
        "linux/amd64,linux/arm64",
        "-o",
        `${out}/both.tar`,
        name,
      ]);
      assertEquals(await dockerEntries(`${out}/both.tar`), [["amd64", [name]], ["arm64", []]]);
      // In an OCI archive: one index of both under the name, which skopeo reads per platform.
      await ok(root, [
        "save",
        "--format",
        "oci",
        "--platform",
        "linux/amd64,linux/arm64",
        "-o",
        `${out}/both-oci.tar`,
        name,
      ]);
      const skopeo = async (...args: string[]) => {
        const r = await new Deno.Command("skopeo", { args, stdout: "piped", stderr: "piped" })
          .output();
        const dec = new TextDecoder();
        assertEquals(r.code, 0, dec.decode(r.stderr));
        return JSON.parse(dec.decode(r.stdout));
      };
      const index = await skopeo("inspect", "--raw", `oci-archive:${out}/both-oci.tar:1`);
      assertEquals(index.mediaType, "application/vnd.oci.image.index.v1+json");
      assertEquals(
        index.manifests.map((m: { platform: { architecture: string } }) => m.platform.architecture),
        ["amd64", "arm64"],
      );
      const arm = await skopeo(
        "--override-arch",
        "arm64",
        "inspect",
        "--config",
        `oci-archive:${out}/both-oci.tar:1`,
      );
      assertEquals(arm.architecture, "arm64");
      // A platform the image does not have is refused by name.
      const none = await tsbox(["save", "--platform", "linux/s390x", "-o", `${out}/x.tar`, name], {
        root,
      });
      assertEquals(none.code, 125, none.stdout);
      assertStringIncludes(none.stderr, "has no variant for linux/s390x");
    } finally {
      await Deno.remove(out, { recursive: true });
      await Deno.remove(ctx, { recursive: true });
      await fresh.cleanup();
      await cleanup();
    }
  },
);
