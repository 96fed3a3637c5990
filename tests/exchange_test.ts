/**
 * Image exchange against real things: push to Debian's docker-registry checked by skopeo and
 * podman, login against the Basic-auth registry, save read by skopeo, load of archives skopeo
 * wrote, and broken archives that must leave the store untouched. Needs root (layer unpacking).
 */
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { RegistryClient, type UploadResult } from "../registry/client.ts";
import type { Reference } from "../registry/reference.ts";
import { loadImages } from "../src/image/load.ts";
import { pullImage } from "../src/image/pull.ts";
import { pushImage } from "../src/image/push.ts";
import { Store } from "../src/store/mod.ts";
import {
  assertEquals,
  assertMatch,
  assertOk,
  assertRejects,
  assertStringIncludes,
} from "./assert.ts";
import { tempRoot, tsbox } from "./cli.ts";
import { authRegistry, fixtureRegistry } from "./fixtures/images.ts";
import { startRegistry } from "./fixtures/registry.ts";
import { podmanConfText } from "./podman_conf.ts";

const dec = new TextDecoder();

async function run(cmd: string, args: string[], env?: Record<string, string>) {
  const out = await new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped" })
    .output();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** A client that records how each blob upload went. */
class RecordingClient extends RegistryClient {
  uploads: UploadResult[] = [];
  override async uploadBlob(
    repo: Reference,
    digest: string,
    size: number,
    body: Uint8Array | ReadableStream<Uint8Array>,
    mountFrom?: Reference,
  ): Promise<UploadResult> {
    const result = await super.uploadBlob(repo, digest, size, body, mountFrom);
    this.uploads.push(result);
    return result;
  }
}

/** Everything a store holds on disk besides its database: images, layer dirs, blobs. */
async function storeContents(root: string): Promise<{ images: number; entries: string[] }> {
  const entries: string[] = [];
  for (const sub of ["layers", "blobs/sha256", "l"]) {
    try {
      for await (const e of Deno.readDir(join(root, sub))) entries.push(`${sub}/${e.name}`);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
  }
  const store = await Store.open(root);
  try {
    return { images: store.listImages().length, entries: entries.sort() };
  } finally {
    store.close();
  }
}

Deno.test("push: a tagged busybox lands in a new repository that skopeo and podman use", async () => {
  const fx = await fixtureRegistry();
  const reg = await startRegistry();
  const { root, cleanup } = await tempRoot();
  const podmanDir = await Deno.makeTempDir({ prefix: "tsbox-podman-" });
  try {
    assertEquals((await tsbox(["pull", "-q", fx.refs.busybox], { root })).code, 0);
    const target = `${reg.host}/pushed/busybox:1.0`;
    assertEquals((await tsbox(["tag", fx.refs.busybox, target], { root })).code, 0);
    const pushed = await tsbox(["push", target], { root });
    assertEquals(pushed.code, 0, pushed.stderr);
    assertStringIncludes(
      pushed.stdout,
      `The push refers to repository [${reg.host}/pushed/busybox]`,
    );
    assertMatch(pushed.stdout, /: Pushed$/m);
    const m = /^1\.0: digest: (sha256:[a-f0-9]{64}) size: (\d+)$/m.exec(pushed.stdout);
    assertOk(m, pushed.stdout);

    // The registry serves the manifest under that digest; it is the one tsbox pulled.
    const inspect = await run("skopeo", ["inspect", "--tls-verify=false", `docker://${target}`]);
    assertEquals(inspect.code, 0, inspect.stderr);
    assertEquals(JSON.parse(inspect.stdout).Digest, m[1]);
    const store = await Store.open(root);
    try {
      assertEquals(store.findImage(target)!.manifestDigest, m[1]);
    } finally {
      store.close();
    }
    const copied = await run("skopeo", [
      "copy",
      "--src-tls-verify=false",
      `docker://${target}`,
      `oci:${join(podmanDir, "layout")}:x`,
    ]);
    assertEquals(copied.code, 0, copied.stderr);

    await Deno.writeTextFile(
      join(podmanDir, "containers.conf"),
      podmanConfText(podmanDir),
    );
    const podman = (args: string[]) =>
      run("podman", [
        "--root",
        join(podmanDir, "root"),
        "--runroot",
        join(podmanDir, "runroot"),
        ...args,
      ], { ...Deno.env.toObject(), CONTAINERS_CONF: join(podmanDir, "containers.conf") });
    const pulled = await podman(["pull", "-q", "--tls-verify=false", target]);
    assertEquals(pulled.code, 0, pulled.stderr);
    const ran = await podman([
      "run",
      "--rm",
      "--network",
      "none",
      "--runtime",
      "runc",
      target,
      "sh",
      "-c",
      "echo pushed-by-tsbox; busybox | head -1",
    ]);
    assertEquals(ran.code, 0, ran.stderr);
    assertMatch(ran.stdout, /^pushed-by-tsbox\nBusyBox v\d/);
  } finally {
    await run("podman", [
      "--root",
      join(podmanDir, "root"),
      "--runroot",
      join(podmanDir, "runroot"),
      "system",
      "reset",
      "-f",
    ]).catch(() => {});
    await Deno.remove(podmanDir, { recursive: true }).catch(() => {});
    await cleanup();
    await reg.stop();
  }
});

Deno.test("push: a second push uploads nothing, another repository mounts", async () => {
  const fx = await fixtureRegistry();
  const reg = await startRegistry();
  const { root, cleanup } = await tempRoot();
  const store = await Store.open(root);
  try {
    await pullImage(store, fx.refs.busybox);
    const image = store.findImage(fx.refs.busybox)!;
    const first = `${reg.host}/one/busybox:latest`;
    const second = `${reg.host}/two/busybox:latest`;
    store.tag(image.id, first);

    const c1 = new RecordingClient();
    const r1 = await pushImage(store, first, { client: c1 });
    assertEquals(r1.layers, image.layers.map(() => "uploaded" as const));

    const c2 = new RecordingClient();
    const r2 = await pushImage(store, first, { client: c2 });
    assertEquals(r2.digest, r1.digest);
    // Every blob, the config included, was found by HEAD: nothing uploaded or mounted.
    assertEquals(c2.uploads, [...image.layers.map(() => "exists"), "exists"]);

    store.tag(image.id, second);
    const c3 = new RecordingClient();
    const r3 = await pushImage(store, second, { client: c3 });
    assertEquals(r3.layers, image.layers.map(() => "mounted" as const));
    assertEquals(r3.digest, r1.digest);
    // The CLI shows it as docker does.
    store.tag(image.id, `${reg.host}/three/busybox:latest`);
    const cli = await tsbox(["push", `${reg.host}/three/busybox:latest`], { root });
    assertEquals(cli.code, 0, cli.stderr);
    assertMatch(cli.stdout, /^[a-f0-9]{12}: Mounted from (one|two)\/busybox$/m);
  } finally {
    store.close();
    await cleanup();
    await reg.stop();
  }
});

Deno.test("login verifies the password, then push and pull work; logout removes the entry", async () => {
  const fx = await fixtureRegistry();
  const reg = await authRegistry();
  const { host, username, password } = reg.registry;
  const configDir = await Deno.makeTempDir({ prefix: "tsbox-docker-config-" });
  const { root, cleanup } = await tempRoot();
  const env = { DOCKER_CONFIG: configDir };
  const configFile = join(configDir, "config.json");
  try {
    const wrong = await tsbox(["login", "-u", username!, "--password-stdin", host], {
      root,
      env,
      stdin: "not-the-password\n",
    });
    assertEquals(wrong.code, 125);
    assertMatch(wrong.stderr, /unauthorized|incorrect username or password/i);
    await assertRejects(() => Deno.stat(configFile), Deno.errors.NotFound);

    const right = await tsbox(["login", "-u", username!, "--password-stdin", host], {
      root,
      env,
      stdin: `${password}\n`,
    });
    assertEquals(right.code, 0, right.stderr);
    assertStringIncludes(right.stdout, "Login Succeeded");
    const saved = JSON.parse(await Deno.readTextFile(configFile));
    assertEquals(atob(saved.auths[host].auth), `${username}:${password}`);

    assertEquals((await tsbox(["pull", "-q", fx.refs.busybox], { root })).code, 0);
    const target = `${host}/private/busybox:latest`;
    assertEquals((await tsbox(["tag", fx.refs.busybox, target], { root })).code, 0);
    const pushed = await tsbox(["push", target], { root, env });
    assertEquals(pushed.code, 0, pushed.stderr);
    const other = await tempRoot();
    try {
      const pulled = await tsbox(["pull", "-q", target], { root: other.root, env });
      assertEquals(pulled.code, 0, pulled.stderr);
    } finally {
      await other.cleanup();
    }

    const out = await tsbox(["logout", host], { root, env });
    assertEquals(out.code, 0, out.stderr);
    assertStringIncludes(out.stdout, `Removing login credentials for ${host}`);
    assertEquals(JSON.parse(await Deno.readTextFile(configFile)).auths[host], undefined);
    const denied = await tsbox(["push", target], { root, env });
    assertEquals(denied.code, 125);
  } finally {
    await cleanup();
    await Deno.remove(configDir, { recursive: true });
  }
});

Deno.test("save: skopeo reads both formats; load of skopeo's archives gives the pulled image id", async () => {
  const fx = await fixtureRegistry();
  const { root, cleanup } = await tempRoot();
  const dir = await Deno.makeTempDir({ prefix: "tsbox-archives-" });
  try {
    assertEquals((await tsbox(["pull", "-q", fx.refs.busybox], { root })).code, 0);
    const store = await Store.open(root);
    const pulled = store.findImage(fx.refs.busybox)!;
    store.close();

    for (const [format, transport] of [["docker", "docker-archive"], ["oci", "oci-archive"]]) {
      const file = join(dir, `saved-${format}.tar`);
      const saved = await tsbox(["save", "--format", format, "-o", file, fx.refs.busybox], {
        root,
      });
      assertEquals(saved.code, 0, saved.stderr);
      const config = await run("skopeo", ["inspect", "--config", `${transport}:${file}`]);
      assertEquals(config.code, 0, config.stderr);
      assertEquals(JSON.parse(config.stdout).rootfs.diff_ids, pulled.config.rootfs.diff_ids);
      const raw = await run("skopeo", ["inspect", "--raw", `${transport}:${file}`]);
      assertEquals(JSON.parse(raw.stdout).config.digest, pulled.id);
    }
    // save to stdout (a pipe) is the same archive as -o writes.
    const piped = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--quiet", "main.ts", "--root", root, "save", fx.refs.busybox],
      cwd: new URL("..", import.meta.url).pathname,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assertEquals(piped.code, 0, dec.decode(piped.stderr));
    assertEquals(piped.stdout, await Deno.readFile(join(dir, "saved-docker.tar")));

    const sources = [
      [
        "skopeo docker-archive",
        `docker-archive:${join(dir, "skopeo-docker.tar")}:${fx.refs.busybox}`,
      ],
      ["skopeo oci-archive", `oci-archive:${join(dir, "skopeo-oci.tar")}`],
    ];
    for (const [, dest] of sources) {
      const c = await run("skopeo", [
        "copy",
        "--src-tls-verify=false",
        `docker://${fx.refs.busybox}`,
        dest,
      ]);
      assertEquals(c.code, 0, c.stderr);
    }
    for (
      const file of [
        "skopeo-docker.tar",
        "skopeo-oci.tar",
        "saved-docker.tar",
        "saved-oci.tar",
      ]
    ) {
      const fresh = await tempRoot();
      try {
        const loaded = await tsbox(["load", "-i", join(dir, file)], { root: fresh.root });
        assertEquals(loaded.code, 0, `${file}: ${loaded.stderr}`);
        assertMatch(loaded.stdout, /^Loaded image( ID)?: /m);
        const s = await Store.open(fresh.root);
        try {
          const images = s.listImages();
          assertEquals(images.length, 1, file);
          assertEquals(images[0].id, pulled.id, file);
          for (const l of images[0].layers) assertOk((await Deno.stat(l.dir)).isDirectory);
          // The unpacked busybox is the Debian binary.
          assertEquals(
            await Deno.readFile(join(images[0].layers[0].dir, "bin/busybox")),
            await Deno.readFile("/bin/busybox"),
          );
        } finally {
          s.close();
        }
        if (file === "skopeo-docker.tar" || file.startsWith("saved")) {
          assertStringIncludes(loaded.stdout, `Loaded image: ${fx.refs.busybox}`);
        }
        // What load reports runs: its layers are linked under the names their records hold.
        const ran = await tsbox(["run", "--rm", pulled.id, "sh", "-c", "echo loaded-runs"], {
          root: fresh.root,
        });
        assertEquals(ran.code, 0, `${file}: ${ran.stderr}`);
        assertEquals(ran.stdout, "loaded-runs\n", file);
      } finally {
        await fresh.cleanup();
      }
    }
  } finally {
    await cleanup();
    await Deno.remove(dir, { recursive: true });
  }
});

/** Rewrites a docker-archive with gzip-compressed layers, changing one byte of the last one. */
async function tamperedArchive(src: string, dst: string): Promise<void> {
  const res = await run("python3", [
    "-c",
    `import tarfile, io, gzip, json, sys
src, dst = sys.argv[1], sys.argv[2]
tin = tarfile.open(src)
files = {m.name: tin.extractfile(m).read() for m in tin if m.isfile()}
layers = json.loads(files["manifest.json"])[0]["Layers"]
for i, name in enumerate(layers):
    data = bytearray(files[name])
    if i == len(layers) - 1:
        inner = tarfile.open(fileobj=io.BytesIO(bytes(data)))
        body = next(m for m in inner if m.isfile() and m.size > 0)
        data[body.offset_data] ^= 1  # inside a file's body: the tar stays well-formed
    files[name] = gzip.compress(bytes(data))
tout = tarfile.open(dst, "w")
for name, data in files.items():
    info = tarfile.TarInfo(name); info.size = len(data)
    tout.addfile(info, io.BytesIO(data))
tout.close()`,
    src,
    dst,
  ]);
  assertEquals(res.code, 0, res.stderr);
}

Deno.test("load: a truncated or tampered archive fails and adds nothing", async () => {
  const fx = await fixtureRegistry();
  const { root, cleanup } = await tempRoot();
  const dir = await Deno.makeTempDir({ prefix: "tsbox-archives-" });
  try {
    const layered = fx.refs.layered;
    assertEquals((await tsbox(["pull", "-q", layered], { root })).code, 0);
    const good = join(dir, "good.tar");
    assertEquals((await tsbox(["save", "-o", good, layered], { root })).code, 0);
    const bytes = await Deno.readFile(good);

    const truncated = join(dir, "truncated.tar");
    await Deno.writeFile(truncated, bytes.subarray(0, Math.floor(bytes.length * 0.6)));
    const tampered = join(dir, "tampered.tar");
    await tamperedArchive(good, tampered);
    // The tampered layer is the last: earlier layers were unpacked before the mismatch showed.
    const fresh = await tempRoot();
    try {
      for (
        const [file, message] of [[truncated, /unexpected end of archive/], [
          tampered,
          /digest mismatch/,
        ]] as const
      ) {
        const r = await tsbox(["load", "-i", file], { root: fresh.root });
        assertEquals(r.code, 125, r.stdout);
        assertMatch(r.stderr, message);
        assertEquals(await storeContents(fresh.root), { images: 0, entries: [] });
      }
      // The API says the same, with the typed error.
      const s = await Store.open(fresh.root);
      try {
        await assertRejects(
          async () => await loadImages(s, (await Deno.open(tampered)).readable),
          Error,
          "digest mismatch",
        );
      } finally {
        s.close();
      }
      assertEquals(await storeContents(fresh.root), { images: 0, entries: [] });
      // The intact archive loads into the same store afterwards.
      const ok = await tsbox(["load", "-q", "-i", good], { root: fresh.root });
      assertEquals(ok.code, 0, ok.stderr);
      assertEquals((await storeContents(fresh.root)).images, 1);
    } finally {
      await fresh.cleanup();
    }
  } finally {
    await cleanup();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("history lists the config's steps newest first with the layers' sizes", async () => {
  const fx = await fixtureRegistry();
  const { root, cleanup } = await tempRoot();
  try {
    assertEquals((await tsbox(["pull", "-q", fx.refs.layered], { root })).code, 0);
    const r = await tsbox(["history", "--no-trunc", "--format", "json", fx.refs.layered], { root });
    assertEquals(r.code, 0, r.stderr);
    const rows = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
    const layout = fx.layouts.layered;
    // Sizes measured independently: the layout's gzip layers, decompressed, bottom first.
    const blob = (digest: string) => join(layout.dir, "blobs/sha256", digest.slice(7));
    const manifest = JSON.parse(await Deno.readTextFile(blob(layout.digest)));
    const expected = [];
    for (const layer of manifest.layers as { digest: string }[]) {
      expected.push(gunzipSync(await Deno.readFile(blob(layer.digest))).length);
    }
    const nonEmpty = rows.filter((row) => row.Size !== "0B").reverse();
    assertEquals(nonEmpty.length, expected.length);
    const store = await Store.open(root);
    try {
      const image = store.findImage(fx.refs.layered)!;
      assertEquals(rows[0].ID, image.id);
      assertEquals(rows.slice(1).every((row) => row.ID === "<missing>"), true);
      assertEquals(rows.length, image.config.history?.length ?? image.layers.length);
      assertEquals(image.layers.map((l) => l.size), expected);
    } finally {
      store.close();
    }
    const table = await tsbox(["history", fx.refs.layered], { root });
    assertMatch(table.stdout, /^IMAGE\s+CREATED\s+CREATED BY\s+SIZE\s+COMMENT$/m);
  } finally {
    await cleanup();
  }
});
