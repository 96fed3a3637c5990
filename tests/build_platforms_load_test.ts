/**
 * `load` of a multi-platform OCI archive (issue 23) brings every variant back with the image
 * index under its name: what `save --format oci --platform a,b` wrote round-trips (the same
 * index, byte for byte), and so does an index skopeo copied with `--all` into an oci-archive.
 * A docker archive of several variants keeps its per-variant entries (the name on the host's).
 */
import { assertEquals, assertOk, assertStringIncludes } from "./assert.ts";
import { join } from "node:path";
import { dirWith, rootTest, tempRoot, tsbox } from "./cli.ts";
import { platformFixtures } from "./fixtures/arm64.ts";

async function ok(root: string, args: string[]): Promise<string> {
  const r = await tsbox(args, { root });
  assertEquals(r.code, 0, `tsbox ${args.join(" ")}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

async function skopeo(...args: string[]): Promise<string> {
  const r = await new Deno.Command("skopeo", { args, stdout: "piped", stderr: "piped" }).output();
  const dec = new TextDecoder();
  assertEquals(r.code, 0, `skopeo ${args.join(" ")}: ${dec.decode(r.stderr)}`);
  return dec.decode(r.stdout);
}

rootTest(
  "save --format oci --platform a,b then load: both variants under the name, the same index saved again",
  async () => {
    const p = await platformFixtures();
    const { root, cleanup } = await tempRoot();
    const fresh = await tempRoot();
    const docker = await tempRoot();
    const ctx = await dirWith({
      Dockerfile: `FROM ${p.multi}\nARG TARGETARCH\nRUN echo $TARGETARCH > /built-for\n`,
    });
    const out = await Deno.makeTempDir({ prefix: "t-platload-" });
    const name = "t-plat/load:1";
    const both = ["--platform", "linux/amd64,linux/arm64"];
    try {
      const built = await ok(root, ["build", "-q", ...both, "-t", name, ctx]);
      const ids = Object.fromEntries(built.trim().split("\n").map((l) => l.split(" ")));
      const amd = ids["linux/amd64"], arm = ids["linux/arm64"];
      assertOk(amd && arm, built);
      await ok(root, ["save", "--format", "oci", ...both, "-o", `${out}/a.tar`, name]);

      // Reported once, by its name, as docker reports a multi-platform image.
      assertEquals(
        await ok(fresh.root, ["load", "-i", `${out}/a.tar`]).then((s) =>
          s.split("\n").filter((l) => l.startsWith("Loaded"))
        ),
        [`Loaded image: ${name}`],
      );
      const listed = await ok(fresh.root, [
        "images",
        "--no-trunc",
        "--format",
        "{{.Repository}}:{{.Tag}} {{.ID}}",
      ]);
      assertEquals(listed, `${name} ${amd}\n`);
      const all = await ok(fresh.root, ["images", "-aq", "--no-trunc"]);
      assertEquals(all.trim().split("\n").sort(), [amd, arm].sort());
      // The arm64 variant is the index's, not dangling: prune keeps it.
      await ok(fresh.root, ["image", "prune", "-f"]);
      assertStringIncludes(await ok(fresh.root, ["images", "-aq", "--no-trunc"]), arm);
      assertEquals(await ok(fresh.root, ["run", "--rm", name, "cat", "/built-for"]), "amd64\n");
      assertEquals(
        await ok(fresh.root, [
          "run",
          "--rm",
          "--platform",
          "linux/arm64",
          name,
          "cat",
          "/built-for",
        ]),
        "arm64\n",
      );
      // Saved again from the loaded store: the same index.
      await ok(fresh.root, ["save", "--format", "oci", ...both, "-o", `${out}/b.tar`, name]);
      assertEquals(
        await skopeo("inspect", "--raw", `oci-archive:${out}/b.tar:1`),
        await skopeo("inspect", "--raw", `oci-archive:${out}/a.tar:1`),
      );

      // A docker archive has no index: each variant is an image of its own, the name on amd64.
      await ok(root, ["save", ...both, "-o", `${out}/d.tar`, name]);
      const loaded = await ok(docker.root, ["load", "-i", `${out}/d.tar`]);
      assertStringIncludes(loaded, `Loaded image: ${name}\n`);
      assertStringIncludes(loaded, `Loaded image ID: ${arm}\n`);
      assertEquals(await ok(docker.root, ["run", "--rm", name, "cat", "/built-for"]), "amd64\n");
    } finally {
      await Deno.remove(out, { recursive: true });
      await Deno.remove(ctx, { recursive: true });
      await docker.cleanup();
      await fresh.cleanup();
      await cleanup();
    }
  },
);

/**
 * Runs `tsbox load -i ARCHIVE` paused after it recorded the images of an index and before the
 * index (the TSBOX_TEST_PAUSE_AT seam, store/test_pause.ts), and kills it there with SIGKILL.
 */
async function loadKilledBeforeIndex(root: string, archive: string): Promise<void> {
  const marker = `${root}-paused`;
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--quiet",
      new URL("../main.ts", import.meta.url).pathname,
      "--root",
      root,
      "load",
      "-i",
      archive,
    ],
    env: { NO_COLOR: "1", TSBOX_TEST_PAUSE_AT: "before-index", TSBOX_TEST_PAUSE_FILE: marker },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let exited = false;
  child.status.then(() => exited = true);
  const paused = () => {
    try {
      return Deno.readTextFileSync(marker).endsWith("\n");
    } catch {
      return false;
    }
  };
  while (!exited && !paused()) await new Promise((r) => setTimeout(r, 20));
  if (!paused()) {
    const status = await child.status;
    throw new Error(
      `load never paused before the index (exit ${status.code}): ${await new Response(
        child.stderr,
      ).text()}`,
    );
  }
  child.kill("SIGKILL");
  const status = await child.status;
  await child.stderr.cancel();
  assertEquals(status.signal, "SIGKILL");
  await Deno.remove(marker);
}

rootTest(
  "a load of a multi-platform archive killed before its index: plain dangling images, a consistent store",
  async () => {
    const p = await platformFixtures();
    const { root, cleanup } = await tempRoot();
    const out = await Deno.makeTempDir({ prefix: "t-platload-" });
    const name = "t-plat/killed:1";
    try {
      await skopeo(
        "--insecure-policy",
        "copy",
        "--quiet",
        "--all",
        "--src-tls-verify=false",
        `docker://${p.multi}`,
        `oci-archive:${join(out, "multi.tar")}:${name}`,
      );
      await loadKilledBeforeIndex(root, join(out, "multi.tar"));
      // Both images are recorded, nothing names them: no index, no tag, nothing broken.
      const check = await tsbox(["system", "check"], { root });
      assertEquals(check.code, 0, check.stdout + check.stderr);
      const dangling = await ok(root, ["images", "-q", "-f", "dangling=true"]);
      assertEquals(dangling.trim().split("\n").length, 2, dangling);
      assertEquals(await ok(root, ["images", "-aq"]), dangling);
      const missing = await tsbox(["image", "inspect", name], { root });
      assertOk(missing.code !== 0, missing.stdout);
      // Dangling, they go with a plain prune; the load done again records the index.
      await ok(root, ["image", "prune", "-f"]);
      assertEquals(await ok(root, ["images", "-aq"]), "");
      await ok(root, ["load", "-q", "-i", join(out, "multi.tar")]);
      assertEquals(
        await ok(root, ["run", "--rm", "--platform", "linux/arm64", name, "cat", "/arch"]),
        "arm64\n",
      );
      assertEquals(await ok(root, ["run", "--rm", name, "cat", "/arch"]), "amd64\n");
    } finally {
      await Deno.remove(out, { recursive: true });
      await cleanup();
    }
  },
);

rootTest(
  "load of an index skopeo copied with --all into an oci-archive: every platform runs by the name",
  async () => {
    const p = await platformFixtures();
    const { root, cleanup } = await tempRoot();
    const out = await Deno.makeTempDir({ prefix: "t-platload-" });
    const name = "t-plat/copied:1";
    try {
      await skopeo(
        "--insecure-policy",
        "copy",
        "--quiet",
        "--all",
        "--src-tls-verify=false",
        `docker://${p.multi}`,
        `oci-archive:${out}/multi.tar:${name}`,
      );
      const loaded = await ok(root, ["load", "-i", `${out}/multi.tar`]);
      assertEquals(
        loaded.split("\n").filter((l) => l.startsWith("Loaded")),
        [`Loaded image: ${name}`],
      );
      assertEquals(await ok(root, ["images", "-aq"]).then((s) => s.trim().split("\n").length), 2);
      assertEquals(await ok(root, ["run", "--rm", name, "cat", "/arch"]), "amd64\n");
      assertEquals(
        await ok(root, ["run", "--rm", "--platform", "linux/arm64", name, "cat", "/arch"]),
        "arm64\n",
      );
      // The index pushes as the registry's own: the same platforms, the same manifests.
      const pushed = `${p.host}/t-plat-copied:1`;
      await ok(root, ["tag", name, pushed]);
      await ok(root, ["push", "-q", pushed]);
      const want = JSON.parse(
        await skopeo("inspect", "--raw", "--tls-verify=false", `docker://${p.multi}`),
      );
      const got = JSON.parse(
        await skopeo("inspect", "--raw", "--tls-verify=false", `docker://${pushed}`),
      );
      const digests = (i: { manifests: { digest: string }[] }) => i.manifests.map((m) => m.digest);
      assertEquals(digests(got), digests(want));
    } finally {
      await Deno.remove(out, { recursive: true });
      await cleanup();
    }
  },
);
