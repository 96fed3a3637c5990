/**
 * Round trips through every kind of image the store can hold (needs root, the fixture registry
 * and podman): pulled, built, built `FROM scratch` into an empty store, and loaded from docker
 * and OCI archives written by tsbox's own `save` and by `podman save`, each loaded into the
 * store it came from and into a fresh one. Every image then goes the way a user takes it: `run`
 * (output checked), `exec` into a running container, a build `FROM` it and the same build again
 * from the cache, `save` (read back by skopeo), and `push` to the test registry, pulled back
 * into a fresh store and run there. All through the tsbox command line.
 */
import { join } from "node:path";
import { type ImageManifest, layersMatchSchema } from "../registry/manifest.ts";
import { assertEquals, assertOk, assertStringIncludes } from "./assert.ts";
import { tempRoot, tsbox } from "./cli.ts";
import { fixtureRegistry } from "./fixtures/images.ts";
import { podmanConfText } from "./podman_conf.ts";

const isRoot = Deno.uid() === 0;
const dec = new TextDecoder();

function rootTest(name: string, fn: () => Promise<void>) {
  Deno.test({ name, ignore: !isRoot, sanitizeResources: false, sanitizeOps: false, fn });
}

/** Runs tsbox and fails the test unless it exits 0; returns stdout. */
async function ok(root: string, args: string[]): Promise<string> {
  const r = await tsbox(args, { root });
  assertEquals(r.code, 0, `tsbox ${args.join(" ")}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

async function run(cmd: string, args: string[], env?: Record<string, string>) {
  const out = await new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped" })
    .output();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

const HELLO = "hello from the build context\n";
/** The command every image is probed with (scratch images have no /bin/sh) and its output. */
const PROBE = ["/bin/busybox", "sh", "-c", "echo probe; cat /hello.txt 2>/dev/null || true"];

let work: Promise<string> | undefined;

/** The module's scratch dir with the build contexts, removed when the module unloads. */
function workDir(): Promise<string> {
  work ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: "tsbox-roundtrip-" });
    globalThis.addEventListener("unload", () => {
      try {
        Deno.removeSync(dir, { recursive: true });
      } catch { /* gone */ }
    });
    const fx = await fixtureRegistry();
    const ctx = join(dir, "ctx");
    await Deno.mkdir(ctx);
    await Deno.writeTextFile(join(ctx, "hello.txt"), HELLO);
    await Deno.copyFile("/bin/busybox", join(ctx, "busybox"));
    await Deno.writeTextFile(
      join(ctx, "Dockerfile"),
      `FROM ${fx.refs.busybox}\nCOPY hello.txt /hello.txt\nRUN echo built > /built\n`,
    );
    await Deno.writeTextFile(
      join(ctx, "Dockerfile.scratch"),
      'FROM scratch\nCOPY busybox /bin/busybox\nCOPY hello.txt /hello.txt\nCMD ["/bin/busybox", "true"]\n',
    );
    return dir;
  })();
  return work;
}

/** An image in a store and what the probe prints in it. */
interface Subject {
  root: string;
  /** Its name or id, as the user would type it. */
  name: string;
  /** The image id, to compare with what a load or a pull gives. */
  id: string;
  /** Whether it has the build context's /hello.txt. */
  hello: boolean;
}

function probeOutput(s: Pick<Subject, "hello">): string {
  return `probe\n${s.hello ? HELLO : ""}`;
}

async function imageId(root: string, name: string): Promise<string> {
  return (JSON.parse(await ok(root, ["image", "inspect", name])) as { Id: string }[])[0].Id;
}

/** `run --rm` prints the probe; `exec` into a running container prints it too. */
async function checkRunAndExec(s: Subject): Promise<void> {
  assertEquals(await ok(s.root, ["run", "--rm", s.name, ...PROBE]), probeOutput(s), "run");
  const name = `rt-${crypto.randomUUID().slice(0, 8)}`;
  await ok(s.root, ["run", "-d", "--name", name, s.name, "/bin/busybox", "sleep", "1000"]);
  try {
    assertEquals(await ok(s.root, ["exec", name, ...PROBE]), probeOutput(s), "exec");
  } finally {
    await tsbox(["rm", "-f", name], { root: s.root });
  }
}

/** Builds `FROM` the image twice: the second build takes every step from the cache. */
async function checkBuildFrom(s: Subject): Promise<void> {
  const dir = await Deno.makeTempDir({ dir: await workDir(), prefix: "from-" });
  await Deno.writeTextFile(
    join(dir, "Dockerfile"),
    `FROM ${s.name}\nRUN ["/bin/busybox", "sh", "-c", "echo derived > /derived"]\n`,
  );
  const tag = `rt-derived-${crypto.randomUUID().slice(0, 8)}:1`;
  const first = await ok(s.root, ["build", "-t", tag, dir]);
  assertEquals(first.includes("Using cache"), false, first);
  const again = await ok(s.root, ["build", "-t", tag, dir]);
  assertStringIncludes(again, "Using cache");
  const built = (s: string) => /^Successfully built ([a-f0-9]{12})$/m.exec(s)?.[1];
  assertEquals(built(again), built(first));
  assertEquals(
    await ok(s.root, ["run", "--rm", tag, "/bin/busybox", "cat", "/derived"]),
    "derived\n",
  );
  await ok(s.root, ["rmi", tag]);
}

/** `save` in both formats; skopeo reads each and finds the image's config. */
async function checkSave(s: Subject): Promise<void> {
  const dir = await Deno.makeTempDir({ dir: await workDir(), prefix: "save-" });
  for (const [format, transport] of [["docker", "docker-archive"], ["oci", "oci-archive"]]) {
    const file = join(dir, `${format}.tar`);
    await ok(s.root, ["save", "--format", format, "-o", file, s.name]);
    const raw = await run("skopeo", ["inspect", "--raw", `${transport}:${file}`]);
    assertEquals(raw.code, 0, `${format}: ${raw.stderr}`);
    const manifest = JSON.parse(raw.stdout) as ImageManifest;
    assertEquals(manifest.config.digest, s.id, format);
    assertOk(layersMatchSchema(manifest), `${format}: one schema's media types: ${raw.stdout}`);
  }
  await Deno.remove(dir, { recursive: true });
}

/** `push` to the test registry, then pull into a fresh store and run it there. */
async function checkPush(s: Subject): Promise<void> {
  const fx = await fixtureRegistry();
  const target = `${fx.registry.host}/roundtrip/${crypto.randomUUID().slice(0, 8)}:1`;
  await ok(s.root, ["tag", s.name, target]);
  await ok(s.root, ["push", target]);
  // Another client can take it, also as Docker v2s2 (which fails on a manifest mixing schemas).
  const copied = await run("skopeo", [
    "copy",
    "--quiet",
    "--src-tls-verify=false",
    "--format",
    "v2s2",
    `docker://${target}`,
    `dir:${await Deno.makeTempDir({ dir: await workDir(), prefix: "skopeo-" })}`,
  ]);
  assertEquals(copied.code, 0, copied.stderr);
  const fresh = await tempRoot();
  try {
    await ok(fresh.root, ["pull", "-q", target]);
    assertEquals(await imageId(fresh.root, target), s.id, "pulled back");
    assertEquals(await ok(fresh.root, ["run", "--rm", target, ...PROBE]), probeOutput(s));
  } finally {
    await fresh.cleanup();
  }
  await ok(s.root, ["rmi", target]);
}

/** Everything a user does with an image. */
async function roundTrip(s: Subject): Promise<void> {
  await checkRunAndExec(s);
  await checkBuildFrom(s);
  await checkSave(s);
  await checkPush(s);
}

/** Loads `archive` into `root`; returns the name `load` reported (a tag, else the id). */
async function load(root: string, archive: string): Promise<string> {
  const out = await ok(root, ["load", "-i", archive]);
  const m = /^Loaded image(?: ID)?: (\S+)$/m.exec(out);
  assertOk(m, out);
  return m[1];
}

/** A store with busybox pulled from the fixture registry. */
async function pulledStore(): Promise<{ root: string; cleanup: () => Promise<void> } & Subject> {
  const fx = await fixtureRegistry();
  const t = await tempRoot();
  await ok(t.root, ["pull", "-q", fx.refs.busybox]);
  return { ...t, name: fx.refs.busybox, id: await imageId(t.root, fx.refs.busybox), hello: false };
}

/** A store with busybox pulled and the context's Dockerfile built on it as `rt-built:1`. */
async function builtStore(): Promise<{ root: string; cleanup: () => Promise<void> } & Subject> {
  const t = await pulledStore();
  await ok(t.root, ["build", "-t", "rt-built:1", join(await workDir(), "ctx")]);
  return { ...t, name: "rt-built:1", id: await imageId(t.root, "rt-built:1"), hello: true };
}

rootTest("round trip: a pulled image", async () => {
  const s = await pulledStore();
  try {
    await roundTrip(s);
  } finally {
    await s.cleanup();
  }
});

rootTest("round trip: a built image", async () => {
  const s = await builtStore();
  try {
    await roundTrip(s);
  } finally {
    await s.cleanup();
  }
});

rootTest("round trip: an image built FROM scratch into an empty store", async () => {
  const t = await tempRoot();
  try {
    const ctx = join(await workDir(), "ctx");
    await ok(t.root, ["build", "-t", "rt-scratch:1", "-f", join(ctx, "Dockerfile.scratch"), ctx]);
    await roundTrip({
      root: t.root,
      name: "rt-scratch:1",
      id: await imageId(t.root, "rt-scratch:1"),
      hello: true,
    });
  } finally {
    await t.cleanup();
  }
});

for (const source of ["pulled", "built"] as const) {
  for (const format of ["docker", "oci"] as const) {
    rootTest(
      `round trip: a ${source} image saved as ${format}, rmi, loaded into the same store`,
      async () => {
        const s = source === "pulled" ? await pulledStore() : await builtStore();
        try {
          const archive = join(s.root, "saved.tar");
          await ok(s.root, ["save", "--format", format, "-o", archive, s.name]);
          await ok(s.root, ["rmi", s.name]);
          assertEquals(await load(s.root, archive), s.name);
          assertEquals(await imageId(s.root, s.name), s.id);
          await roundTrip(s);
          if (source === "built") {
            // The build that made it, again: every step from the cache, and the image it gives
            // still saves and pushes (the cache named blobs that rmi had taken).
            const again = await ok(s.root, [
              "build",
              "-t",
              "rt-rebuilt:1",
              join(await workDir(), "ctx"),
            ]);
            assertEquals(again.match(/Using cache/g)?.length, 2, again);
            assertEquals(await imageId(s.root, "rt-rebuilt:1"), s.id);
            await roundTrip({ ...s, name: "rt-rebuilt:1" });
          }
        } finally {
          await s.cleanup();
        }
      },
    );

    rootTest(
      `round trip: a ${source} image saved as ${format}, loaded into a fresh store`,
      async () => {
        const s = source === "pulled" ? await pulledStore() : await builtStore();
        const fresh = await tempRoot();
        try {
          const archive = join(s.root, "saved.tar");
          await ok(s.root, ["save", "--format", format, "-o", archive, s.name]);
          const name = await load(fresh.root, archive);
          assertEquals(await imageId(fresh.root, name), s.id);
          await roundTrip({ ...s, root: fresh.root, name });
        } finally {
          await fresh.cleanup();
          await s.cleanup();
        }
      },
    );
  }
}

let podman: Promise<{ docker: string; oci: string }> | undefined;

/**
 * busybox pulled by podman from the fixture registry and saved in both of its archive formats.
 * podman gets a store of its own (vfs: no mounts to leave behind), removed once the archives are
 * written; its --runroot stays under the 50 characters podman accepts.
 */
function podmanArchives(): Promise<{ docker: string; oci: string }> {
  podman ??= (async () => {
    const fx = await fixtureRegistry();
    const out = await workDir();
    const dir = await Deno.makeTempDir({ prefix: "tsbox-pm-" });
    const conf = join(dir, "containers.conf");
    await Deno.writeTextFile(
      conf,
      podmanConfText(dir),
    );
    const pm = (args: string[]) =>
      run("podman", [
        "--root",
        join(dir, "root"),
        "--runroot",
        join(dir, "run"),
        "--storage-driver",
        "vfs",
        ...args,
      ], { ...Deno.env.toObject(), CONTAINERS_CONF: conf });
    try {
      const pulled = await pm(["pull", "-q", "--tls-verify=false", fx.refs.busybox]);
      assertEquals(pulled.code, 0, pulled.stderr);
      const archives = { docker: join(out, "podman-docker.tar"), oci: join(out, "podman-oci.tar") };
      for (
        const [format, file] of [["docker-archive", archives.docker], ["oci-archive", archives.oci]]
      ) {
        const saved = await pm(["save", "--format", format, "-o", file, fx.refs.busybox]);
        assertEquals(saved.code, 0, saved.stderr);
      }
      return archives;
    } finally {
      await pm(["system", "reset", "-f"]);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  })();
  return podman;
}

for (const format of ["docker", "oci"] as const) {
  rootTest(
    `round trip: busybox from podman save (${format}) loaded into a fresh store`,
    async () => {
      const archive = (await podmanArchives())[format];
      const s = await pulledStore();
      const fresh = await tempRoot();
      try {
        const name = await load(fresh.root, archive);
        assertEquals(await imageId(fresh.root, name), s.id);
        await roundTrip({ ...s, root: fresh.root, name });
      } finally {
        await fresh.cleanup();
        await s.cleanup();
      }
    },
  );

  rootTest(
    `round trip: busybox from podman save (${format}) loaded where tsbox pulled it`,
    async () => {
      const archive = (await podmanArchives())[format];
      const s = await pulledStore();
      try {
        // The layers are there already: load verifies them and records the image again.
        const name = await load(s.root, archive);
        assertEquals(await imageId(s.root, name), s.id);
        await roundTrip({ ...s, name });
      } finally {
        await s.cleanup();
      }
    },
  );
}
