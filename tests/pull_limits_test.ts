/**
 * Pulls from a hostile registry (in this process, on 127.0.0.1) and onto a disk too small
 * (issue 20 "Denial of service", issue 16 finding 5): an endless manifest, an endless config, a
 * blob longer than its descriptor, a gzip bomb, a blob declared larger than the disk, a full
 * disk. Each pull must fail with a message naming the cause, keep its memory bounded, and leave
 * no temp file. Needs root (tmpfs mounts) and /usr/bin/time.
 */
import { join } from "node:path";
import {
  imageRepo,
  smallLayer,
  startHostileRegistry,
  zeroBombLayer,
} from "../registry/testing/hostile_registry.ts";
import { pullImage } from "../src/image/pull.ts";
import { DiskFullError } from "../src/store/space.ts";
import { Store } from "../src/store/mod.ts";
import { assertEquals, assertOk, assertRejects, assertStringIncludes } from "./assert.ts";
import { tempRoot, tsbox } from "./cli.ts";
import { fixtureRegistry } from "./fixtures/images.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const MiB = 1024 * 1024;
/** A pull child's memory may not grow with what the registry sends; Deno alone is ~100 MB. */
const MAX_RSS_KB = 200 * 1024;

/** `tsbox --root ROOT pull REF` under /usr/bin/time -v: exit code, stderr, peak RSS in KiB. */
async function measuredPull(
  root: string,
  ref: string,
): Promise<{ code: number; stderr: string; maxRssKb: number }> {
  const out = await new Deno.Command("/usr/bin/time", {
    args: ["-v", Deno.execPath(), "run", "-A", "--quiet", MAIN, "--root", root, "pull", "-q", ref],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(stderr);
  assertOk(rss, `no RSS in /usr/bin/time's report:\n${stderr}`);
  return { code: out.code, stderr, maxRssKb: Number(rss[1]) };
}

/** Every path under `dir` whose name starts with `.tmp-`, and every entry of blobs/ and layers/. */
async function leftovers(root: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(dir)) {
      const path = join(dir, e.name);
      if (e.name.startsWith(".tmp-")) found.push(path);
      else if (e.isDirectory) await walk(path);
    }
  };
  await walk(root);
  for (const sub of ["blobs/sha256", "layers", "l"]) {
    try {
      for await (const e of Deno.readDir(join(root, sub))) found.push(join(sub, e.name));
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
  }
  return found;
}

/** A tmpfs of `size` mounted on a fresh directory, unmounted and removed by `cleanup`. */
async function smallDisk(size: string): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await Deno.makeTempDir({ prefix: "tsbox-smalldisk-" });
  const mount = await new Deno.Command("mount", {
    args: ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir],
  }).output();
  assertOk(mount.success, `mount tmpfs: ${new TextDecoder().decode(mount.stderr)}`);
  return {
    dir,
    cleanup: async () => {
      await new Deno.Command("umount", { args: [dir] }).output();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("hostile registry: each pull fails clearly, memory stays bounded, no temp file stays", async (t) => {
  const layer = await smallLayer();
  const endlessConfig = imageRepo([layer], { configBlob: { endless: true } });
  const longBlob = imageRepo([layer], { layerBlob: { endless: true } });
  const longerLength = imageRepo([layer], { layerBlob: { extra: 64 * MiB } });
  const reg = startHostileRegistry({
    "evil/manifest": { manifest: "endless" },
    "evil/config": endlessConfig.repo,
    "evil/blob": longBlob.repo,
    "evil/length": longerLength.repo,
  });
  const { root, cleanup } = await tempRoot();
  try {
    const cases = [
      {
        name: "an endless manifest",
        repo: "evil/manifest",
        message: `manifest ${reg.host}/evil/manifest:latest is larger than the 4 MiB limit`,
      },
      {
        name: "an endless config",
        repo: "evil/config",
        message: `config ${endlessConfig.config.digest} of ${reg.host}/evil/config:latest: ` +
          `the registry sent more than the ${endlessConfig.config.size} bytes its descriptor ` +
          `declares`,
      },
      {
        name: "an endless layer blob",
        repo: "evil/blob",
        message: `blob ${longBlob.layers[0].digest}: the registry sent more than the ` +
          `${longBlob.layers[0].size} bytes its descriptor declares`,
      },
      {
        name: "a layer blob whose Content-Length exceeds its descriptor",
        repo: "evil/length",
        message: `blob ${longerLength.layers[0].digest}: the registry announces`,
      },
    ];
    for (const c of cases) {
      await t.step(c.name, async () => {
        const sentBefore = reg.sentBytes();
        const r = await measuredPull(root, `${reg.host}/${c.repo}:latest`);
        assertEquals(r.code, 125, r.stderr);
        assertStringIncludes(r.stderr, c.message);
        assertOk(r.maxRssKb < MAX_RSS_KB, `peak RSS ${r.maxRssKb} KiB`);
        // The client stopped reading soon after the limit, not when the registry gave up.
        const sent = reg.sentBytes() - sentBefore;
        assertOk(sent < 32 * MiB, `the registry sent ${sent} bytes`);
        assertEquals(await leftovers(root), []);
      });
    }
  } finally {
    await reg.stop();
    await cleanup();
  }
});

Deno.test("a gzip bomb larger than the disk fails before the disk is full and leaves nothing", async () => {
  // 256 MiB of zeros: a ~250 KiB blob, eight times the 32 MiB disk.
  const bomb = imageRepo([await zeroBombLayer(256 * MiB)]);
  const reg = startHostileRegistry({ "evil/bomb": bomb.repo });
  const disk = await smallDisk("32m");
  try {
    const r = await measuredPull(disk.dir, `${reg.host}/evil/bomb:latest`);
    assertEquals(r.code, 125, r.stderr);
    assertOk(r.maxRssKb < MAX_RSS_KB, `peak RSS ${r.maxRssKb} KiB`);
    const line = r.stderr.split("\n")[0];
    assertStringIncludes(
      line,
      `layer ${bomb.layers[0].digest}: unpacking into ${disk.dir}/layers/`,
    );
    assertStringIncludes(line, `the disk is full`);
    assertStringIncludes(line, `tsbox keeps free`);
    assertEquals(await leftovers(disk.dir), []);
    // It stopped at the floor: the disk still has room (the database, the next command).
    const free = await new Deno.Command("stat", { args: ["-f", "-c", "%a %S", disk.dir] }).output();
    const [blocks, size] = new TextDecoder().decode(free.stdout).trim().split(" ").map(Number);
    assertOk(blocks * size > 1 * MiB, `only ${blocks * size} bytes left`);

    // The same small disk still takes an image that fits, from the real fixture registry.
    const fx = await fixtureRegistry();
    const ok = await tsbox(["pull", "-q", fx.refs.busybox], { root: disk.dir });
    assertEquals(ok.code, 0, ok.stderr);
    const images = await tsbox(["images", "-q"], { root: disk.dir });
    assertEquals(images.stdout.trim().split("\n").length, 1, images.stdout);
  } finally {
    await reg.stop();
    await disk.cleanup();
  }
});

Deno.test("a layer declared larger than the free space is refused before it is downloaded", async () => {
  const layer = await smallLayer();
  const huge = imageRepo([layer], { declare: { layer: 2 ** 50 } });
  const reg = startHostileRegistry({ "evil/huge": huge.repo });
  const disk = await smallDisk("32m");
  try {
    const r = await tsbox(["pull", "-q", `${reg.host}/evil/huge:latest`], { root: disk.dir });
    assertEquals(r.code, 125, r.stderr);
    assertStringIncludes(
      r.stderr,
      `layer ${huge.layers[0].digest}: downloading ${2 ** 50} bytes into ${disk.dir}/blobs: ` +
        `the disk is full`,
    );
    assertEquals(reg.requests.filter((p) => p.endsWith(huge.layers[0].digest)), []);
    assertEquals(await leftovers(disk.dir), []);
  } finally {
    await reg.stop();
    await disk.cleanup();
  }
});

Deno.test("a pull that runs out of space (no floor) names the step, the path and the cause", async () => {
  const bomb = imageRepo([await zeroBombLayer(64 * MiB)]);
  const reg = startHostileRegistry({ "evil/bomb": bomb.repo });
  const disk = await smallDisk("16m");
  const store = await Store.open(disk.dir);
  try {
    // minFreeBytes 0: nothing stops the unpack but the kernel's ENOSPC, which meets either the
    // unpacker or the blob's own write, whichever writes next.
    const err = await assertRejects(
      () => pullImage(store, `${reg.host}/evil/bomb:latest`, { minFreeBytes: 0 }),
      DiskFullError,
    );
    const layer = `layer ${bomb.layers[0].digest}`;
    if (err.path.startsWith(`${disk.dir}/layers/.tmp-`)) {
      assertStringIncludes(err.message, `${layer}: unpacking into ${err.path}: `);
      assertStringIncludes(err.message, `layer entry "zero"`);
    } else {
      assertEquals(err.path, `${disk.dir}/blobs`);
      assertStringIncludes(err.message, `${layer}: writing its blob into ${err.path}: `);
    }
    assertStringIncludes(err.message, "no space left on device (");
    assertStringIncludes(err.message, "No space left on device");
    assertEquals(await leftovers(disk.dir), []);
  } finally {
    store.close();
    await reg.stop();
    await disk.cleanup();
  }
});
