/**
 * A build killed with SIGKILL (root): at its start, during a RUN step and while it commits a
 * RUN's layer. Right after the kill its overlay mount, cgroups and build directory are still
 * there (it could not clean up); the next build removes them, and `images`/`ps -a` never show a
 * half-made image or a container.
 */
import { join } from "node:path";
import { assertEquals, assertOk } from "./assert.ts";
import { tempRoot, tsbox } from "./cli.ts";
import { fixtureRegistry } from "./fixtures/images.ts";
import { cgroupDirs, cgroupIdsOf } from "./cgroups.ts";

const isRoot = Deno.uid() === 0;
const MAIN = new URL("../main.ts", import.meta.url).pathname;

function rootTest(name: string, fn: () => Promise<void>) {
  Deno.test({ name, ignore: !isRoot, sanitizeResources: false, sanitizeOps: false, fn });
}

/** Every RUN step cgroup id the tests saw, removed at the end should a test fail. */
const seenIds = new Set<string>();

let shared: Promise<string> | undefined;
/** One store root for this file, holding the fixture busybox tagged `busybox`. */
function sharedRoot(): Promise<string> {
  shared ??= (async () => {
    const fx = await fixtureRegistry();
    const { root } = await tempRoot();
    globalThis.addEventListener("unload", () => {
      // Should a test fail, what its killed build left must not outlive the test run.
      for (const point of mountsUnder(root)) {
        new Deno.Command("umount", { args: ["-l", point] }).outputSync();
      }
      for (const id of seenIds) {
        for (const dir of cgroupDirs(id)) {
          try {
            Deno.removeSync(dir);
          } catch { /* busy or gone */ }
        }
      }
      try {
        Deno.removeSync(root, { recursive: true });
      } catch { /* already gone */ }
    });
    const pulled = await tsbox(["pull", "-q", fx.refs.busybox], { root });
    if (pulled.code !== 0) throw new Error(pulled.stderr);
    const tagged = await tsbox(["tag", fx.refs.busybox, "busybox"], { root });
    if (tagged.code !== 0) throw new Error(tagged.stderr);
    return root;
  })();
  return shared;
}

async function contextDir(dockerfile: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "tsbox-ctx-" });
  await Deno.writeTextFile(join(dir, "Dockerfile"), dockerfile);
  return dir;
}

/** Mount points (as the kernel lists them) under `dir`; none when it is gone. */
function mountsUnder(dir: string): string[] {
  let real: string;
  try {
    real = Deno.realPathSync(dir);
  } catch (err) {
    // tempRoot's own unload handler (tests/cli.ts) may have purged the root first.
    if (err instanceof Deno.errors.NotFound) return [];
    throw err;
  }
  return Deno.readTextFileSync("/proc/self/mountinfo").split("\n")
    .map((l) => l.split(" ")[4])
    .filter((p): p is string => p !== undefined && p.startsWith(`${real}/`));
}

/** Build directories (`b-*`) under the root. */
function buildDirs(root: string): string[] {
  try {
    return [...Deno.readDirSync(join(root, "build"))].map((e) => join(root, "build", e.name));
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return [];
    throw err;
  }
}

/** Whether a build directory holds a RUN step's directory (`run-*`). */
function hasRunDir(buildDir: string): boolean {
  try {
    return [...Deno.readDirSync(buildDir)].some((e) => e.name.startsWith("run-"));
  } catch {
    return false;
  }
}

/**
 * The ids of tsbox cgroups (`.../tsbox/<id>`) of the processes whose command line holds
 * `marker`: the RUN step's, found through its process, whatever tsbox names its files.
 */
async function poll(what: string, check: () => boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Starts `tsbox build` as a child that the test can kill. */
function spawnBuild(root: string, args: string[]): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", MAIN, "--root", root, "build", ...args],
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
}

/** What a build being watched has made so far. */
interface Progress {
  /** Its build directory, once it exists. */
  readonly dir?: string;
  /** The cgroup ids of its RUN steps seen so far. */
  readonly ids: readonly string[];
}

/**
 * Kills the build with SIGKILL once `moment` holds; returns its build directory and the cgroup
 * ids of its RUN steps that ran a command holding `marker`.
 */
async function killBuildWhen(
  root: string,
  dockerfile: string,
  marker: string,
  what: string,
  moment: (p: Progress) => boolean,
): Promise<{ dir: string; ids: string[] }> {
  const ctx = await contextDir(dockerfile);
  const earlier = new Set(buildDirs(root));
  const child = spawnBuild(root, [ctx]);
  const ids = new Set<string>();
  let dir: string | undefined;
  try {
    await poll(what, () => {
      for (const id of cgroupIdsOf(marker)) {
        ids.add(id);
        seenIds.add(id);
      }
      dir ??= buildDirs(root).find((d) => !earlier.has(d));
      return moment({ dir, ids: [...ids] });
    });
    child.kill("SIGKILL");
    const status = await child.status;
    assertEquals(status.signal, "SIGKILL", "the build was killed, not finished");
    assertOk(dir, "the build made its directory");
    return { dir, ids: [...ids] };
  } finally {
    try {
      child.kill("SIGKILL");
    } catch { /* already ended */ }
    await Deno.remove(ctx, { recursive: true });
  }
}

/** The images of the root, one line each. */
async function imageLines(root: string): Promise<string> {
  const images = await tsbox(["images", "-a", "--no-trunc"], { root });
  assertEquals(images.code, 0, images.stderr);
  return images.stdout;
}

/**
 * After a kill: `images` and `ps -a` are as before it, the next build succeeds, and nothing of
 * the killed build (mount, cgroup, directory) is left.
 */
async function checkRecovery(
  root: string,
  left: { dir: string; ids: string[] },
  imagesBefore: string,
) {
  assertEquals(await imageLines(root), imagesBefore);
  const ps = await tsbox(["ps", "-aq"], { root });
  assertEquals(ps.code, 0, ps.stderr);
  assertEquals(ps.stdout, "");

  const ctx = await contextDir("FROM busybox\nRUN echo recovered > /ok\n");
  try {
    const next = await tsbox(["build", "--no-cache", "-t", "after-kill:1", ctx], { root });
    assertEquals(next.code, 0, next.stderr + next.stdout);
    assertEquals(next.stderr, "", "no warning from the sweep");
    const ran = await tsbox(["run", "--rm", "after-kill:1", "cat", "/ok"], { root });
    assertEquals(ran.stdout, "recovered\n", ran.stderr);
  } finally {
    await Deno.remove(ctx, { recursive: true });
  }
  assertEquals(mountsUnder(root).filter((m) => m.includes("/build/")), []);
  for (const id of left.ids) assertEquals(cgroupDirs(id), [], `cgroups of step ${id}`);
  assertEquals(buildDirs(root), []);
  const rmi = await tsbox(["rmi", "after-kill:1"], { root });
  assertEquals(rmi.code, 0, rmi.stderr);
}

rootTest(
  "build killed during a RUN: its mount, cgroups and directory go at the next build",
  async () => {
    const root = await sharedRoot();
    const before = await imageLines(root);
    const marker = "marker-during-run";
    const left = await killBuildWhen(
      root,
      `FROM busybox\nRUN sleep 30 && echo ${marker}\n`,
      marker,
      "the RUN step",
      ({ dir, ids }) =>
        ids.length > 0 && dir !== undefined &&
        mountsUnder(dir).some((m) => /\/run-[^/]+\/rootfs$/.test(m)),
    );
    assertEquals(left.ids.length, 1);
    // What the killed build could not clean up is there (before the fix it stayed for ever).
    assertOk(mountsUnder(left.dir).length > 0, "the RUN's overlay is still mounted");
    assertOk(cgroupDirs(left.ids[0]).length > 0, "the RUN's cgroups are still there");
    await checkRecovery(root, left, before);
  },
);

rootTest("build killed at its start leaves nothing after the next build", async () => {
  const root = await sharedRoot();
  const before = await imageLines(root);
  const left = await killBuildWhen(
    root,
    "FROM busybox\nRUN sleep 30\n",
    "marker-early",
    "the build directory",
    ({ dir }) => dir !== undefined,
  );
  assertOk(buildDirs(root).includes(left.dir));
  await checkRecovery(root, left, before);
});

rootTest(
  "build killed while committing a RUN's layer leaves nothing after the next build",
  async () => {
    const root = await sharedRoot();
    const before = await imageLines(root);
    const marker = "marker-late";
    // 32 MB of random bytes: gzip takes a while, and the RUN's mount and process are gone by then.
    const left = await killBuildWhen(
      root,
      `FROM busybox\nRUN sleep 1 && head -c 33554432 /dev/urandom > /blob && echo ${marker}\nCMD true\n`,
      marker,
      "the RUN's commit",
      ({ dir, ids }) =>
        ids.length > 0 && dir !== undefined && cgroupIdsOf(marker).length === 0 &&
        !mountsUnder(dir).some((m) => m.includes("/run-")) && hasRunDir(dir),
    );
    assertEquals(left.ids.length, 1);
    await checkRecovery(root, left, before);
  },
);

rootTest("a build that starts while another runs leaves the running one alone", async () => {
  const root = await sharedRoot();
  // The first build's RUN waits until the test's server says "go", which it says only once
  // the second build (and its sweep) is over, so the sweep surely met a running build.
  let go = false;
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () => new Response(go ? "go\n" : "wait\n"),
  );
  const marker = "marker-concurrent";
  const first = await contextDir(
    `FROM busybox\nRUN until printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc 127.0.0.1 ${server.addr.port} | grep -q go; do sleep 0.1; done; echo ${marker} > /first\nCMD ["cat", "/first"]\n`,
  );
  const second = await contextDir("FROM busybox\nRUN echo second > /second\n");
  const earlier = new Set(buildDirs(root));
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", MAIN, "--root", root, "build", "-q", "-t", "first:1", first],
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  try {
    await poll("the first build's RUN", () => {
      const dir = buildDirs(root).find((d) => !earlier.has(d));
      return dir !== undefined && mountsUnder(dir).some((m) => m.includes("/run-"));
    });
    const other = await tsbox(["build", "--no-cache", "-t", "second:1", second], { root });
    assertEquals(other.code, 0, other.stderr + other.stdout);
    go = true;
    const out = await child.output();
    assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
    const ran = await tsbox(["run", "--rm", "first:1"], { root });
    assertEquals(ran.stdout, `${marker}\n`, ran.stderr);
    assertEquals(buildDirs(root), []);
    for (const tag of ["first:1", "second:1"]) {
      assertEquals((await tsbox(["rmi", tag], { root })).code, 0);
    }
  } finally {
    try {
      child.kill("SIGKILL");
    } catch { /* already ended */ }
    await server.shutdown();
    for (const dir of [first, second]) await Deno.remove(dir, { recursive: true });
  }
});
