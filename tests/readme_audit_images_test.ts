/**
 * README audit (issue 19), images and exchange: `pull -q`, `images --digests / --no-trunc / -q /
 * REPO[:TAG]`, `tag` and `rmi` of one name, `history -q / --no-trunc`, `save --format oci` (an OCI
 * layout), `save` to stdout and `load` from stdin. Images come from the fixture registry on
 * 127.0.0.1 through tsbox's own pull (root).
 */
import { assertEquals, assertMatch, assertOk, assertStringIncludes } from "./assert.ts";
import { tempRoot } from "./cli.ts";
import { purgeRootSync } from "./cleanup.ts";
import { fixtureRegistry } from "./fixtures/images.ts";
import { type Cli, cliFor, rootTest, sha256, uniqueName } from "./readme_audit.ts";

interface Env extends Cli {
  busybox: string;
  nginx: string;
  digests: { busybox: string; nginx: string };
}

let shared: Promise<Env> | undefined;

/** One store per test file with busybox and nginx, pulled with `pull -q`. */
function env(): Promise<Env> {
  shared ??= (async () => {
    const fx = await fixtureRegistry();
    const { root } = await tempRoot();
    globalThis.addEventListener("unload", () => purgeRootSync(root));
    const cli = cliFor(root);
    for (const ref of [fx.refs.busybox, fx.refs.nginx]) {
      // -q: the name pulled, alone, without progress.
      assertEquals(await cli.ok(["pull", "-q", ref]), `${ref}\n`);
    }
    return {
      ...cli,
      busybox: fx.refs.busybox,
      nginx: fx.refs.nginx,
      digests: { busybox: fx.digests.busybox, nginx: fx.digests.nginx },
    };
  })();
  return shared;
}

async function imageId(e: Cli, name: string): Promise<string> {
  return (await e.ok(["image", "inspect", "-f", "{{.Id}}", name])).trim();
}

function rows(out: string): string[][] {
  return out.trim().split("\n").slice(1).map((l) => l.split(/\s{2,}/));
}

function repoTag(ref: string): [string, string] {
  const i = ref.lastIndexOf(":");
  return [ref.slice(0, i), ref.slice(i + 1)];
}

rootTest("images --digests, --no-trunc, -q and REPO[:TAG] show what the store holds", async () => {
  const e = await env();
  const bbId = await imageId(e, e.busybox);
  const ngId = await imageId(e, e.nginx);
  assertMatch(bbId, /^sha256:[0-9a-f]{64}$/);
  const [bbRepo, bbTag] = repoTag(e.busybox);

  // --digests: a DIGEST column with the manifest digest the registry reported.
  const digests = await e.ok(["images", "--digests"]);
  assertEquals(digests.split("\n")[0].split(/\s{2,}/).slice(0, 4), [
    "REPOSITORY",
    "TAG",
    "DIGEST",
    "IMAGE ID",
  ]);
  const bbRow = rows(digests).find((r) => r[0] === bbRepo);
  assertOk(bbRow, digests);
  assertEquals(bbRow.slice(0, 4), [bbRepo, bbTag, e.digests.busybox, bbId.slice(7, 19)]);
  // Without the flag there is no digest anywhere.
  const plain = await e.ok(["images"]);
  assertOk(!plain.includes(e.digests.busybox.slice(7)), plain);
  assertOk(!plain.includes("DIGEST"), plain);

  // --no-trunc: the full sha256:... id; default: 12 hex digits.
  const full = rows(await e.ok(["images", "--no-trunc"])).find((r) => r[0] === bbRepo);
  assertEquals(full?.[2], bbId);
  assertEquals(rows(plain).find((r) => r[0] === bbRepo)?.[2], bbId.slice(7, 19));

  // -q: short ids only, one per image; with --no-trunc, full ids.
  assertEquals(
    (await e.ok(["images", "-q"])).trim().split("\n").sort(),
    [bbId.slice(7, 19), ngId.slice(7, 19)].sort(),
  );
  assertEquals(
    (await e.ok(["images", "-q", "--no-trunc"])).trim().split("\n").sort(),
    [bbId, ngId].sort(),
  );

  // REPO and REPO:TAG select; a tag the store does not have selects nothing.
  const [ngRepo] = repoTag(e.nginx);
  assertEquals(rows(await e.ok(["images", ngRepo])).map((r) => r[0]), [ngRepo]);
  assertEquals((await e.ok(["images", "-q", e.busybox])).trim(), bbId.slice(7, 19));
  assertEquals((await e.ok(["images", "-q", `${bbRepo}:no-such-tag`])).trim(), "");
});

rootTest("tag adds a name; rmi of one of two names only untags, the image stays", async () => {
  const e = await env();
  const id = await imageId(e, e.nginx);
  const alias = `${uniqueName("alias")}:1`;
  await e.ok(["tag", e.nginx, alias]);
  try {
    assertEquals(await imageId(e, alias), id);
    const listed = rows(await e.ok(["images", "--no-trunc"])).filter((r) => r[2] === id);
    assertEquals(listed.map((r) => `${r[0]}:${r[1]}`).sort(), [alias, e.nginx].sort());

    // rmi of the registry name: untagged, not deleted; the alias still names the same image,
    // whose layers are still there (a container of it runs).
    const removed = await e.ok(["rmi", e.nginx]);
    assertStringIncludes(removed, `Untagged: ${e.nginx}`);
    assertOk(!removed.includes("Deleted"), removed);
    assertEquals(await imageId(e, alias), id);
    assertEquals((await e.t(["image", "inspect", e.nginx])).code !== 0, true);
    const ran = await e.ok(["run", "--rm", "--entrypoint", "cat", alias, "/etc/hostname"]);
    assertMatch(ran, /^[0-9a-f]{12}\n$/);
  } finally {
    // Give the image its registry name back for the other tests, then drop the alias.
    await e.t(["tag", alias, e.nginx]);
    await e.t(["rmi", alias]);
  }
  assertEquals(await imageId(e, e.nginx), id);
  assertOk((await e.t(["image", "inspect", alias])).code !== 0, "the alias is gone");
});

rootTest("history -q lists ids only; CREATED BY is cut unless --no-trunc", async () => {
  const e = await env();
  const id = await imageId(e, e.busybox);
  // The step as the image's config (in the store's blobs) records it.
  const config = JSON.parse(await Deno.readTextFile(`${e.root}/blobs/sha256/${id.slice(7)}`));
  const createdBy: string = config.history[0].created_by;
  assertOk(createdBy.length > 45, `a long step to cut: ${createdBy}`);

  assertEquals(await e.ok(["history", "-q", e.busybox]), `${id.slice(7, 19)}\n`);
  assertEquals(await e.ok(["history", "-q", "--no-trunc", e.busybox]), `${id}\n`);

  const short = (await e.ok(["history", e.busybox])).split("\n")[1];
  assertOk(!short.includes(createdBy), short);
  assertStringIncludes(short, `${createdBy.slice(0, 20)}`);
  assertStringIncludes(short, "…");
  const long = (await e.ok(["history", "--no-trunc", e.busybox])).split("\n")[1];
  assertStringIncludes(long, createdBy);
  assertOk(long.startsWith(id), long);
});

async function untar(tar: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "tsbox-audit-untar-" });
  const r = await new Deno.Command("tar", { args: ["-xf", tar, "-C", dir] }).output();
  assertOk(r.success, new TextDecoder().decode(r.stderr));
  return dir;
}

rootTest(
  "save --format oci writes an OCI image layout whose blobs match their digests",
  async () => {
    const e = await env();
    const id = await imageId(e, e.busybox);
    const work = await Deno.makeTempDir({ prefix: "tsbox-audit-save-" });
    try {
      const tar = `${work}/bb.tar`;
      await e.ok(["save", "--format", "oci", "-o", tar, e.busybox]);
      const dir = await untar(tar);
      try {
        assertEquals(JSON.parse(await Deno.readTextFile(`${dir}/oci-layout`)), {
          imageLayoutVersion: "1.0.0",
        });
        const index = JSON.parse(await Deno.readTextFile(`${dir}/index.json`));
        assertEquals(index.schemaVersion, 2);
        assertEquals(index.manifests.length, 1);
        const desc = index.manifests[0];
        assertEquals(desc.mediaType, "application/vnd.oci.image.manifest.v1+json");
        // Every blob's bytes hash to its file name.
        const blobs = [...Deno.readDirSync(`${dir}/blobs/sha256`)].map((b) => b.name);
        for (const name of blobs) {
          const bytes = await Deno.readFile(`${dir}/blobs/sha256/${name}`);
          assertEquals(await sha256(bytes), `sha256:${name}`, `blob ${name}`);
        }
        const blob = (d: string) => Deno.readFile(`${dir}/blobs/sha256/${d.slice(7)}`);
        const manifestBytes = await blob(desc.digest);
        assertEquals(manifestBytes.length, desc.size);
        const manifest = JSON.parse(new TextDecoder().decode(manifestBytes));
        assertEquals(manifest.mediaType ?? desc.mediaType, desc.mediaType);
        assertEquals(manifest.config.mediaType, "application/vnd.oci.image.config.v1+json");
        assertEquals(manifest.config.digest, id, "the config is the image id");
        assertEquals(manifest.layers.length, 1);
        for (const layer of manifest.layers) {
          assertMatch(layer.mediaType, /^application\/vnd\.oci\.image\.layer\.v1\.tar/);
          assertEquals((await blob(layer.digest)).length, layer.size);
        }
        assertEquals(
          blobs.sort(),
          [
            desc.digest,
            manifest.config.digest,
            ...manifest.layers.map((l: { digest: string }) => l.digest),
          ].map((d: string) => d.slice(7)).sort(),
        );
        // No docker-archive file in an OCI layout.
        assertOk(!blobs.includes("manifest.json"));
        await Deno.stat(`${dir}/manifest.json`).then(
          () => assertOk(false, "manifest.json in an OCI save"),
          () => {},
        );
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    } finally {
      await Deno.remove(work, { recursive: true });
    }
  },
);

rootTest("save without -o writes the archive to stdout; load without -i reads stdin", async () => {
  const e = await env();
  const id = await imageId(e, e.busybox);
  const work = await Deno.makeTempDir({ prefix: "tsbox-audit-save-" });
  const fresh = await tempRoot();
  try {
    // save to stdout, collected as bytes (tsbox() decodes stdout as text).
    const main = new URL("../main.ts", import.meta.url).pathname;
    const saved = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--quiet", main, "--root", e.root, "save", e.busybox],
      env: { DENO_NO_UPDATE_CHECK: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assertEquals(saved.code, 0, new TextDecoder().decode(saved.stderr));
    const tar = `${work}/bb.tar`;
    await Deno.writeFile(tar, saved.stdout);
    const dir = await untar(tar);
    try {
      // docker-archive by default: manifest.json with the tag and the config.
      const manifest = JSON.parse(await Deno.readTextFile(`${dir}/manifest.json`));
      assertEquals(manifest.length, 1);
      assertEquals(manifest[0].RepoTags, [e.busybox]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }

    // load from stdin (a shell redirect) into an empty store: the same image id, and it runs.
    const loaded = await new Deno.Command("sh", {
      args: [
        "-c",
        'exec "$0" run -A --quiet "$1" --root "$2" load -q < "$3"',
        Deno.execPath(),
        main,
        fresh.root,
        tar,
      ],
      env: { DENO_NO_UPDATE_CHECK: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const out = new TextDecoder().decode(loaded.stdout);
    assertEquals(loaded.code, 0, new TextDecoder().decode(loaded.stderr));
    assertEquals(out, `Loaded image: ${e.busybox}\n`);
    const other = cliFor(fresh.root);
    assertEquals(await imageId(other, e.busybox), id);
    assertEquals(
      await other.ok(["run", "--rm", e.busybox, "echo", "loaded-runs"]),
      "loaded-runs\n",
    );
  } finally {
    await fresh.cleanup();
    await Deno.remove(work, { recursive: true });
  }
});
