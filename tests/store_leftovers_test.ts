/**
 * What killed tsbox processes leave in a store, and who removes it (issue 16), against the real
 * CLI and the fixture registry on 127.0.0.1 (root): a `load` killed while spooling its archive,
 * a pull or a load killed between publishing its layers and recording its image (paused there by
 * the TSBOX_TEST_PAUSE_AT seam), a concurrent pull racing the sweep of such leftovers, a build
 * killed during a RUN followed by a command that is not a build, and `system check`.
 */
import { join } from "node:path";
import { assertEquals, assertMatch, assertOk, assertStringIncludes } from "./assert.ts";
import { tempRoot, tsbox } from "./cli.ts";
import { mountsUnder } from "./cleanup.ts";
import { seedStore } from "./busybox_store.ts";
import { fixtureRegistry, makeBigImage, pushLayout } from "./fixtures/images.ts";
import { publishLockPath } from "../src/store/publish_lock.ts";
import { cgroupDirs, cgroupIdsOf } from "./cgroups.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const isRoot = Deno.uid() === 0;

/** Starts `tsbox --root ROOT ARGS...` without waiting for it. */
function spawnTsbox(
  root: string,
  args: string[],
  env: Record<string, string> = {},
): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", MAIN, "--root", root, ...args],
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
}

/** Names in `dir`, sorted; none when it does not exist. */
function names(dir: string): string[] {
  try {
    return [...Deno.readDirSync(dir)].map((e) => e.name).sort();
  } catch {
    return [];
  }
}

/**
 * Every leftover of a process under `root`: store-level entries named `.tmp-*` (temp files,
 * dirs, links) or `.pub-*` (publishers' claims), anything in `tmp/` (where `load` spooled
 * before) and any build directory.
 */
function leftovers(root: string): string[] {
  const found: string[] = [];
  for (const dir of ["", "blobs", "blobs/sha256", "layers", "l", "containers"]) {
    for (const n of names(join(root, dir))) {
      if (n.startsWith(".tmp-") || n.startsWith(".pub-")) found.push(join(dir, n));
    }
  }
  for (const n of names(join(root, "tmp"))) found.push(join("tmp", n));
  for (const n of names(join(root, "build"))) found.push(join("build", n));
  return found;
}

/** Polls `ready` every `ms` until it holds or `child` exits; true when it held. */
async function waitFor(
  child: Deno.ChildProcess,
  ready: () => boolean,
  ms = 1,
): Promise<boolean> {
  let exited = false;
  child.status.then(() => exited = true);
  while (!exited) {
    if (ready()) return true;
    await new Promise((r) => setTimeout(r, ms));
  }
  return ready();
}

/** Kills `child` with SIGKILL and waits for it; asserts that the kill is what ended it. */
async function kill9(child: Deno.ChildProcess, what: string): Promise<void> {
  child.kill("SIGKILL");
  const status = await child.status;
  await child.stderr.cancel();
  assertEquals(status.signal, "SIGKILL", what);
}

/**
 * Runs `tsbox ARGS` (a pull or load) on `root` paused just before it records the image (after
 * its layer dirs, links and blobs are published) and kills it there with SIGKILL.
 */
async function killedBeforeRecord(root: string, args: string[]): Promise<void> {
  const marker = join(root, "..", `paused-${crypto.randomUUID()}`);
  const child = spawnTsbox(root, args, {
    TSBOX_TEST_PAUSE_AT: "before-record",
    TSBOX_TEST_PAUSE_FILE: marker,
  });
  const paused = await waitFor(
    child,
    () => names(join(root, "..")).includes(marker.split("/").pop()!),
  );
  if (!paused) {
    const status = await child.status;
    const err = await new Response(child.stderr).text();
    throw new Error(`${args[0]} never paused before its record (exit ${status.code}): ${err}`);
  }
  await kill9(child, `${args[0]} paused before its record`);
  await Deno.remove(marker);
}

let bigTar: Promise<string> | undefined;

/** A docker-archive of a 5-layer image of ~48 MB of random files, made by `tsbox save`. */
function bigArchive(): Promise<string> {
  bigTar ??= (async () => {
    const fx = await fixtureRegistry();
    const layout = await makeBigImage({ bytes: 48 << 20, files: 480, layers: 4 });
    const ref = `${fx.registry.host}/leftovers-big:latest`;
    await pushLayout(layout, ref);
    const { root, cleanup } = await tempRoot();
    try {
      const pull = await tsbox(["pull", "-q", ref], { root });
      assertEquals(pull.code, 0, pull.stderr);
      const dir = await Deno.makeTempDir({ prefix: "tsbox-leftovers-" });
      const tar = join(dir, "big.tar");
      const save = await tsbox(["save", "-o", tar, ref], { root });
      assertEquals(save.code, 0, save.stderr);
      globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
      return tar;
    } finally {
      await cleanup();
    }
  })();
  return bigTar;
}

Deno.test({
  name: "a load killed while spooling or before its record leaves nothing the next command keeps",
  ignore: !isRoot,
  async fn() {
    const tar = await bigArchive();
    const { root, cleanup } = await tempRoot();
    try {
      // Mid-way: the archive is being spooled (its first files are written, not all).
      const child = spawnTsbox(root, ["load", "-i", tar]);
      const spooling = () =>
        leftovers(root).some((p) => /load-/.test(p) && names(join(root, p)).length >= 2);
      assertOk(await waitFor(child, spooling), "the load was never seen spooling");
      await kill9(child, "load");
      assertOk(leftovers(root).length > 0, "the killed load left no temp entry");

      const images = await tsbox(["images", "-q"], { root });
      assertEquals([images.code, images.stdout, images.stderr], [0, "", ""]);
      assertEquals(leftovers(root), [], "temp entries after the next command");

      // Killed once everything is published, before the image is recorded.
      await killedBeforeRecord(root, ["load", "-q", "-i", tar]);
      assertEquals(names(join(root, "layers")).filter((n) => /^[0-9a-f]{64}$/.test(n)).length, 5);
      const next = await tsbox(["images", "-q"], { root });
      assertEquals([next.code, next.stdout, next.stderr], [0, "", ""]);
      assertEquals(leftovers(root), [], "temp entries after the next command");
      for (const dir of ["layers", "l", "blobs/sha256"]) assertEquals(names(join(root, dir)), []);

      const load = await tsbox(["load", "-i", tar], { root });
      assertEquals(load.code, 0, load.stderr);
      const listed = await tsbox(["images", "--format", "{{.Repository}}:{{.Tag}}"], { root });
      assertEquals(listed.stdout.trim().split("\n").length, 1, listed.stdout);
      assertMatch(listed.stdout, /leftovers-big:latest/);
      assertEquals(names(join(root, "layers")).length, 5);
      assertEquals(leftovers(root), []);
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name:
    "a pull killed between publishing its layers and recording them: the next command removes them",
  ignore: !isRoot,
  async fn() {
    const fx = await fixtureRegistry();
    const { root, cleanup } = await tempRoot();
    try {
      const store = join(root, "store");
      await killedBeforeRecord(store, ["pull", "-q", fx.refs.layered]);
      // Published: four layer dirs with their links and blobs, and no image records them.
      assertEquals(names(join(store, "layers")).filter((n) => /^[0-9a-f]{64}$/.test(n)).length, 4);
      assertEquals(names(join(store, "l")).length, 4);
      assertOk(names(join(store, "blobs", "sha256")).length >= 6, "blobs published");

      const images = await tsbox(["images", "-q"], { root: store });
      assertEquals([images.code, images.stdout, images.stderr], [0, "", ""]);
      assertEquals(names(join(store, "layers")), []);
      assertEquals(names(join(store, "l")), []);
      assertEquals(names(join(store, "blobs", "sha256")), []);
      assertEquals(leftovers(store), []);

      // And the image comes back whole.
      const pull = await tsbox(["pull", "-q", fx.refs.layered], { root: store });
      assertEquals(pull.code, 0, pull.stderr);
      const run = await tsbox(["run", "--rm", fx.refs.layered, "cat", "/etc/motd"], {
        root: store,
      });
      assertEquals([run.code, run.stdout], [0, "layered\n"], run.stderr);
    } finally {
      await cleanup();
    }
  },
});

/** Copies the tree `from` to `to` as it is (modes, links). */
async function copyTree(from: string, to: string): Promise<void> {
  const cp = await new Deno.Command("cp", { args: ["-a", from, to] }).output();
  assertOk(cp.success, new TextDecoder().decode(cp.stderr));
}

/**
 * Moves the leftovers of the killed pull staged in `stage` into the live store `store`; what
 * the live pull has published already under the same name stays its own.
 */
function plant(stage: string, store: string): void {
  const move = (from: string, to: string) => {
    try {
      Deno.renameSync(from, to);
    } catch (err) {
      // A layer dir the pull published first (ENOTEMPTY); anything else is a test failure.
      if (!Deno.statSync(to).isDirectory) throw err;
    }
  };
  // The claim first, as its dead owner wrote it before publishing.
  const layers = names(join(stage, "layers")).sort((x, y) =>
    Number(y.startsWith(".pub-")) - Number(x.startsWith(".pub-"))
  );
  for (const n of layers) move(join(stage, "layers", n), join(store, "layers", n));
  for (const n of names(join(stage, "l"))) move(join(stage, "l", n), join(store, "l", n));
  for (const n of names(join(stage, "blobs", "sha256"))) {
    move(join(stage, "blobs", "sha256", n), join(store, "blobs", "sha256", n));
  }
}

Deno.test({
  name:
    "a pull racing the sweep of a killed pull's leftovers of the same image is unaffected (20 rounds)",
  ignore: !isRoot,
  async fn() {
    const fx = await fixtureRegistry();
    const { root, cleanup } = await tempRoot();
    try {
      // The leftovers of one pull killed before its record: four unrecorded layer dirs, their
      // links and blobs, and its claim, planted into a live pull's store each round.
      const killed = join(root, "killed");
      await killedBeforeRecord(killed, ["pull", "-q", fx.refs.layered]);
      assertOk(names(join(killed, "layers")).some((n) => n.startsWith(".pub-")), "no claim");
      const store = join(root, "store");
      const stage = join(root, "stage");
      for (let round = 0; round < 20; round++) {
        const what = `round ${round}`;
        for (const dir of [store, stage]) {
          await Deno.remove(dir, { recursive: true }).catch(() => {});
        }
        await Deno.mkdir(stage);
        for (const dir of ["layers", "l", "blobs"]) await copyTree(join(killed, dir), stage);
        const pull = spawnTsbox(store, ["pull", "-q", fx.refs.layered]);
        // When the pull is about to publish (its claim appears), the leftovers appear too: it
        // finds unrecorded layer dirs of the same names in place, while this process and
        // another command sweep.
        const publishing = await waitFor(
          pull,
          () => names(join(store, "layers")).some((n) => n.startsWith(".pub-")),
        );
        if (publishing) plant(stage, store);
        let done = false;
        const status = pull.status.then((s) => {
          done = true;
          return s;
        });
        const sweeping = (async () => {
          const { Store } = await import("../src/store/mod.ts");
          const opened = await Store.open(store);
          try {
            do await opened.sweepAbandoned(); while (!done);
          } finally {
            opened.close();
          }
        })();
        const [pulled, err, images] = await Promise.all([
          status,
          new Response(pull.stderr).text(),
          tsbox(["images", "-q"], { root: store }),
          sweeping,
        ]);
        assertEquals(pulled.code, 0, `${what}: ${err}`);
        assertEquals([images.code, images.stderr], [0, ""], what);
        if (!publishing) {
          console.error(`note: ${what}: the pull ended before it was seen publishing`);
          plant(stage, store);
        }

        // The image is whole: each layer recorded, present, linked under its recorded name.
        const inspect = await tsbox(["image", "inspect", fx.refs.layered], { root: store });
        assertEquals(inspect.code, 0, `${what}: ${inspect.stderr}`);
        const diffIds: string[] = JSON.parse(inspect.stdout)[0].RootFS.Layers;
        const hexes = diffIds.map((d) => d.slice(7)).sort();
        const links = names(join(store, "l"));
        assertEquals(links.length, 4, `${what}: ${links.join(" ")}`);
        for (const l of links) {
          const target = Deno.readLinkSync(join(store, "l", l));
          assertOk(hexes.includes(target.split("/").pop()!), `${what}: ${l} -> ${target}`);
          assertOk(Deno.statSync(join(store, "l", l)).isDirectory, `${what}: ${l}`);
        }
        // Once no process works on the store, the next command leaves nothing of the dead pull.
        const again = await tsbox(["images", "-q"], { root: store });
        assertEquals(again.code, 0, again.stderr);
        assertEquals(leftovers(store), [], what);
        assertEquals(names(join(store, "layers")), hexes, what);
        const check = await tsbox(["system", "check"], { root: store });
        assertEquals(check.code, 0, `${what}: ${check.stdout}${check.stderr}`);
      }
      const run = await tsbox(["run", "--rm", fx.refs.layered, "cat", "/etc/motd"], {
        root: store,
      });
      assertEquals([run.code, run.stdout], [0, "layered\n"], run.stderr);
    } finally {
      await cleanup();
    }
  },
});

/**
 * The ids of tsbox cgroups (`.../tsbox/<id>`) of the processes whose command line holds
 * `marker`: a RUN step's, found through its process.
 */
Deno.test({
  name:
    "a build killed during a RUN: ps, not only the next build, removes its mount, cgroups and dir",
  ignore: !isRoot,
  async fn() {
    const { root, cleanup } = await tempRoot();
    const ctx = await Deno.makeTempDir({ prefix: "tsbox-ctx-" });
    const marker = `leftovers-${crypto.randomUUID().slice(0, 8)}`;
    let ids: string[] = [];
    try {
      await seedStore(root);
      await Deno.writeTextFile(
        join(ctx, "Dockerfile"),
        // The shell, whose command line holds the marker, waits in the step's cgroup.
        `FROM busybox\nRUN sleep 300 && echo ${marker}\n`,
      );
      const build = spawnTsbox(root, ["build", ctx]);
      const running = await waitFor(build, () => (ids = cgroupIdsOf(marker)).length > 0, 20);
      if (!running) {
        const err = await new Response(build.stderr).text();
        throw new Error(`the build's RUN step was never seen running: ${err}`);
      }
      await kill9(build, "build");
      assertEquals(names(join(root, "build")).length, 1, "the killed build left its directory");
      assertOk(mountsUnder(root).length > 0, "the killed build left its mount");

      const ps = await tsbox(["ps", "-a", "-q"], { root });
      assertEquals([ps.code, ps.stdout, ps.stderr], [0, "", ""]);
      assertEquals(mountsUnder(root), []);
      for (const id of ids) assertEquals(cgroupDirs(id), [], `cgroups of step ${id}`);
      assertEquals(names(join(root, "build")), []);
      assertEquals(cgroupIdsOf(marker), [], "the RUN step's processes");
    } finally {
      await Deno.remove(ctx, { recursive: true });
      await cleanup();
      // Should the test fail, the step's `sleep` must not outlive it.
      for (const dir of ids.flatMap(cgroupDirs)) {
        try {
          for (const pid of Deno.readTextFileSync(join(dir, "cgroup.procs")).split("\n")) {
            if (pid) Deno.kill(Number(pid), "SIGKILL");
          }
          await new Promise((r) => setTimeout(r, 100));
          Deno.removeSync(dir);
        } catch { /* gone meanwhile */ }
      }
    }
  },
});

Deno.test({
  name: "system check reports what the database does not know and --repair removes it",
  ignore: !isRoot,
  async fn() {
    const { root, cleanup } = await tempRoot();
    try {
      await seedStore(root);
      const clean = await tsbox(["system", "check"], { root });
      assertEquals([clean.code, clean.stderr], [0, ""], clean.stdout);
      const created = await tsbox(["create", "--name", "t-check", "busybox", "true"], { root });
      assertEquals(created.code, 0, created.stderr);
      const gone = await tsbox(["create", "--name", "t-gone", "busybox", "true"], { root });
      assertEquals(gone.code, 0, gone.stderr);
      const goneId = gone.stdout.trim();

      // Plant leftovers no row knows, as a killed process or a lost database leaves them.
      const hex = "b".repeat(64);
      const layer = join(root, "layers", hex);
      await Deno.mkdir(join(layer, "etc"), { recursive: true });
      await Deno.writeTextFile(join(layer, "etc", "x"), "x");
      const link = join(root, "l", "bbbbbbbbbbbbbbbb");
      await Deno.symlink(`../layers/${hex}`, link);
      const dangling = join(root, "l", "cccccccccccccccc");
      await Deno.symlink(`../layers/${"c".repeat(64)}`, dangling);
      const blob = join(root, "blobs", "sha256", "d".repeat(64));
      await Deno.writeTextFile(blob, "unreferenced");
      const orphan = join(root, "containers", "e".repeat(64));
      await Deno.mkdir(join(orphan, "upper"), { recursive: true });
      // The spool dir of an older tsbox's load, two days old.
      const spool = join(root, "tmp", "load-Ab12Cd");
      await Deno.mkdir(spool, { recursive: true });
      const twoDaysAgo = new Date(Date.now() - 48 * 3600_000);
      await Deno.utime(spool, twoDaysAgo, twoDaysAgo);
      // A container whose directory is gone: reported, never "repaired" away.
      await Deno.remove(join(root, "containers", goneId), { recursive: true });

      const check = await tsbox(["system", "check"], { root });
      assertEquals(check.code, 1, check.stdout);
      for (
        const [kind, path] of [
          ["unrecorded layer", layer],
          ["stray link", link],
          ["stray link", dangling],
          ["unreferenced blob", blob],
          ["container without record", orphan],
          ["container without files", join(root, "containers", goneId)],
          ["old temp dir", spool],
        ]
      ) {
        assertStringIncludes(check.stdout, `${kind}: ${path}:`);
      }
      assertEquals(check.stdout.trim().split("\n").length, 7, check.stdout);
      // Only reported: everything is still there.
      for (const p of [layer, link, dangling, blob, orphan, spool]) Deno.lstatSync(p);

      // While a process publishes into the store, layers, links and blobs are not judged.
      const lock = await Deno.open(publishLockPath(root), { write: true });
      try {
        await lock.lock(false);
        const busy = await tsbox(["system", "check", "--repair"], { root });
        assertEquals(busy.code, 1, busy.stdout);
        assertStringIncludes(busy.stdout, "not checked: another tsbox process");
        for (const p of [layer, link, dangling, blob]) Deno.lstatSync(p);
        // Container directories need no lock (a row is written before its directory).
        assertStringIncludes(busy.stdout, `container without record: ${orphan}:`);
        assertStringIncludes(busy.stdout, `old temp dir: ${spool}:`);
        assertEquals(busy.stdout.match(/\[removed\]/g)?.length, 2, busy.stdout);
      } finally {
        lock.close();
      }

      const repair = await tsbox(["system", "check", "--repair"], { root });
      assertEquals(repair.code, 1, repair.stdout);
      assertEquals(repair.stdout.match(/\[removed\]/g)?.length, 4, repair.stdout);
      for (const p of [layer, link, dangling, blob, orphan, spool]) {
        assertEquals(names(join(p, "..")).includes(p.split("/").pop()!), false, p);
      }
      // What was recorded is untouched: busybox still runs, t-check still starts.
      const start = await tsbox(["start", "-a", "t-check"], { root });
      assertEquals(start.code, 0, start.stderr);
      const rm = await tsbox(["rm", "-f", "t-check", goneId], { root });
      assertEquals(rm.code, 0, rm.stderr);
      const after = await tsbox(["system", "check"], { root });
      assertEquals([after.code, after.stderr], [0, ""], after.stdout);
      assertEquals(leftovers(root), []);
    } finally {
      await cleanup();
    }
  },
});
