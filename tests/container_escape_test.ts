/**
 * Host-side file operations on a container's filesystem attacked by the container (issue 20,
 * escapes 2-4), as root with real busybox containers:
 *
 * - `cp HOSTDIR CTR:/dir` where the container has symlinks to host paths below the
 *   destination, on a running and on a created (never started) container;
 * - `cp CTR:PATH HOST` and `export` while the container swaps a file and a directory for
 *   symlinks to a host secret as fast as it can, for a bounded number of tries;
 * - `diff` while the container swaps a directory for a link to a host directory, and of an
 *   image whose absolute symlink points at a host file;
 * - `run -h` with a newline (it would inject lines into the container's /etc/hosts).
 */
import { join } from "node:path";
import { Store } from "../src/store/mod.ts";
import { requireContainer } from "../src/container/state.ts";
import { containerDir } from "../src/container/paths.ts";
import { copyFromContainer } from "../src/container/copy.ts";
import { exportContainer } from "../src/container/export.ts";
import { containerChanges } from "../src/container/diff.ts";
import { seedStore, sharedBusyboxRoot } from "./busybox_store.ts";
import { takeDownStoreNetworks } from "./cleanup.ts";
import { tsbox } from "./cli.ts";
import { assertEquals, assertOk, assertStringIncludes } from "./assert.ts";

const isRoot = Deno.uid() === 0;

function rootTest(name: string, fn: () => Promise<void>) {
  Deno.test({ name, ignore: !isRoot, sanitizeResources: false, sanitizeOps: false, fn });
}

async function t(args: string[]) {
  return await tsbox(args, { root: await sharedBusyboxRoot() });
}

async function ok(args: string[]): Promise<string> {
  const r = await t(args);
  assertEquals(r.code, 0, `tsbox ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

function uniqueName(prefix: string): string {
  return `${prefix}-${crypto.randomUUID().slice(0, 8)}`;
}

/** The container's PID 1 as inspect reports it. */
async function pidOf(name: string): Promise<number> {
  const [c] = JSON.parse(await ok(["inspect", name]));
  return c.State.Pid;
}

/** Waits until the running container `name` has made `/ready` (its setup is done). */
async function waitReady(name: string): Promise<void> {
  const pid = await pidOf(name);
  for (let i = 0; i < 200; i++) {
    try {
      // The test reads its own marker (no symlink on the way); tsbox itself never does this.
      Deno.lstatSync(`/proc/${pid}/root/ready`);
      return;
    } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`container ${name} never became ready`);
}

interface Canary {
  dir: string;
  file: string;
  sub: string;
}

/** Host files a container's symlinks point at: a 0644 file and a 0755 directory. */
async function makeCanary(): Promise<Canary> {
  const dir = await Deno.makeTempDir({ prefix: "tsbox-canary-" });
  const file = join(dir, "victim.conf");
  const sub = join(dir, "dir");
  await Deno.writeTextFile(file, "host original\n");
  Deno.chmodSync(file, 0o644);
  await Deno.mkdir(sub);
  Deno.chmodSync(sub, 0o755);
  return { dir, file, sub };
}

function assertCanaryUnchanged(c: Canary): void {
  assertEquals(Deno.readTextFileSync(c.file), "host original\n", "host file content");
  assertEquals(Deno.statSync(c.file).mode! & 0o7777, 0o644, "host file mode");
  assertEquals(Deno.statSync(c.sub).mode! & 0o7777, 0o755, "host directory mode");
  assertEquals([...Deno.readDirSync(c.sub)], [], "nothing written into the host directory");
  assertEquals([...Deno.readDirSync(c.dir)].map((e) => e.name).sort(), ["dir", "victim.conf"]);
}

/** The host tree `pl/` that `cp` copies: a 0777 file and a 0777 directory with a file. */
async function makeSource(): Promise<string> {
  const src = await Deno.makeTempDir({ prefix: "tsbox-cpsrc-" });
  await Deno.mkdir(join(src, "pl/vd"), { recursive: true });
  await Deno.writeTextFile(join(src, "pl/victim.conf"), "pwned\n");
  await Deno.writeTextFile(join(src, "pl/vd/x"), "pwned\n");
  for (const p of ["pl/victim.conf", "pl/vd", "pl/vd/x"]) Deno.chmodSync(join(src, p), 0o777);
  return src;
}

/**
 * `cp ./pl ctr:/o2` and the narrower copies an attacker would try next; `inside` reads a file
 * of the container. Each copy lands inside the container or is refused; the host is untouched.
 */
async function cpInAttack(
  name: string,
  canary: Canary,
  inside: (path: string) => Promise<string>,
): Promise<void> {
  const src = await makeSource();
  try {
    const whole = await t(["cp", join(src, "pl"), `${name}:/o2`]);
    assertOk(whole.code === 0 || whole.code === 125, `cp: ${whole.code} ${whole.stderr}`);
    // docker refuses to replace a non-directory (the symlink vd) with a directory.
    if (whole.code === 125) assertStringIncludes(whole.stderr, "cannot overwrite non-directory");
    assertCanaryUnchanged(canary);

    const dirOnly = await t(["cp", join(src, "pl/vd"), `${name}:/o2/pl/vd`]);
    assertOk(dirOnly.code === 0 || dirOnly.code === 125, `cp vd: ${dirOnly.stderr}`);
    assertCanaryUnchanged(canary);

    // The file replaces the container's symlink: it lands in the container, not on the host.
    await ok(["cp", join(src, "pl/victim.conf"), `${name}:/o2/pl/`]);
    assertCanaryUnchanged(canary);
    assertEquals(await inside("/o2/pl/victim.conf"), "pwned\n");
    await ok(["cp", join(src, "pl/victim.conf"), `${name}:/o2/pl/victim.conf`]);
    assertCanaryUnchanged(canary);
  } finally {
    await Deno.remove(src, { recursive: true });
  }
}

rootTest("cp into a running container never follows its symlinks onto the host", async () => {
  const canary = await makeCanary();
  const name = uniqueName("esc-cp-run");
  try {
    await ok([
      "run",
      "-d",
      "--name",
      name,
      "busybox",
      "sh",
      "-c",
      `mkdir -p /o2/pl && ln -s ${canary.file} /o2/pl/victim.conf && ` +
      `ln -s ${canary.sub} /o2/pl/vd && touch /ready && exec sleep 1000`,
    ]);
    await waitReady(name);
    await cpInAttack(name, canary, (p) => ok(["exec", name, "cat", p]));
    // The container's symlink to the host directory is still a symlink (refused, not replaced).
    assertEquals((await ok(["exec", name, "readlink", "/o2/pl/vd"])).trim(), canary.sub);
  } finally {
    await t(["rm", "-f", name]);
    await Deno.remove(canary.dir, { recursive: true });
  }
});

rootTest("cp into a created, never started container never follows its symlinks", async () => {
  const canary = await makeCanary();
  const name = uniqueName("esc-cp-created");
  try {
    await ok(["create", "--name", name, "busybox", "sleep", "1000"]);
    const [c] = JSON.parse(await ok(["inspect", name]));
    assertEquals(c.State.Status, "created");
    // The container's own files, as its image or an earlier run would have left them.
    const upper = join(containerDir(await sharedBusyboxRoot(), c.Id), "upper");
    await Deno.mkdir(join(upper, "o2/pl"), { recursive: true });
    Deno.symlinkSync(canary.file, join(upper, "o2/pl/victim.conf"));
    Deno.symlinkSync(canary.sub, join(upper, "o2/pl/vd"));
    await cpInAttack(name, canary, async (p) => {
      const out = await Deno.makeTempDir();
      try {
        await ok(["cp", `${name}:${p}`, join(out, "f")]);
        return Deno.readTextFileSync(join(out, "f"));
      } finally {
        await Deno.remove(out, { recursive: true });
      }
    });
    const landed = Deno.lstatSync(join(upper, "o2/pl/victim.conf"));
    assertOk(landed.isFile, "the copy replaced the container's symlink in its own upper dir");
  } finally {
    await t(["rm", "-f", name]);
    await Deno.remove(canary.dir, { recursive: true });
  }
});

/** The name of a file only in the host's secret directory. */
const HOST_ONLY = "host-only-f1e2";

/**
 * A container that swaps `/race/f` between a file and a symlink to the host secret, and
 * `/race/d` between a directory and a symlink to the secret's directory, as fast as it can.
 */
async function withRacer(
  fn: (name: string, secret: string, store: Store) => Promise<void>,
): Promise<void> {
  const secretDir = await Deno.makeTempDir({ prefix: "tsbox-secret-" });
  // Short: an old bug read a swapped-in file only up to the size lstat gave for the symlink.
  const secret = `HS-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.writeTextFile(join(secretDir, "secret.txt"), secret);
  // A name only the host has: a listing of the host directory would show it.
  await Deno.writeTextFile(join(secretDir, HOST_ONLY), "");
  const name = uniqueName("esc-race");
  const script = [
    "mkdir -p /race/real",
    "echo inside > /race/real/secret.txt",
    "echo decoy > /race/decoy",
    `ln -s ${secretDir} /race/d`,
    "touch /ready",
    "while :; do",
    "  cp /race/decoy /race/t; mv -f /race/t /race/f",
    `  ln -s ${secretDir}/secret.txt /race/l; mv -f /race/l /race/f`,
    "  rm -f /race/d; mv /race/real /race/d",
    `  mv /race/d /race/real; ln -s ${secretDir} /race/d`,
    "done",
  ].join("\n");
  const store = await Store.open(await sharedBusyboxRoot());
  try {
    await ok(["run", "-d", "--name", name, "busybox", "sh", "-c", script]);
    await waitReady(name);
    await fn(name, secret, store);
  } finally {
    store.close();
    await t(["rm", "-f", name]);
    await Deno.remove(secretDir, { recursive: true });
  }
}

/** Every path under `dir` (symlinks are not followed). */
function names(dir: string): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(dir)) {
    out.push(join(dir, e.name));
    if (e.isDirectory) out.push(...names(join(dir, e.name)));
  }
  return out;
}

/** Every regular file's content under `dir` (symlinks are not followed). */
function contents(dir: string): string[] {
  const out: string[] = [];
  const info = Deno.lstatSync(dir);
  if (info.isFile) return [Deno.readTextFileSync(dir)];
  if (!info.isDirectory) return out;
  for (const e of Deno.readDirSync(dir)) out.push(...contents(join(dir, e.name)));
  return out;
}

rootTest("cp out of a container racing symlink swaps never reads the host secret", async () => {
  await withRacer(async (name, secret) => {
    const out = await Deno.makeTempDir({ prefix: "tsbox-cpout-" });
    const store = await Store.open(await sharedBusyboxRoot());
    const sources = ["/race/f", "/race/d/secret.txt", "/race/d", "/race"];
    let copied = 0;
    try {
      const c = requireContainer(store, name);
      for (let i = 0; i < 200; i++) {
        const dest = join(out, String(i));
        try {
          await copyFromContainer(store, c, sources[i % sources.length], dest);
          copied++;
        } catch { /* the path was missing at that instant (inside the container) */ }
        for (const text of contents(out)) assertOk(!text.includes(secret), `try ${i}: ${text}`);
        for (const p of names(out)) assertOk(!p.includes(HOST_ONLY), `try ${i}: ${p}`);
      }
      assertOk(copied > 0, "some copies succeeded");
      // And the CLI a user runs, a few times.
      for (let i = 0; i < 4; i++) {
        await t(["cp", `${name}:/race`, join(out, `cli${i}`)]);
        for (const text of contents(out)) assertOk(!text.includes(secret), `cli try ${i}`);
      }
    } finally {
      store.close();
      await Deno.remove(out, { recursive: true });
    }
  });
});

rootTest("export of a container racing symlink swaps never contains the host secret", async () => {
  await withRacer(async (name, secret, store) => {
    const c = requireContainer(store, name);
    const needle = new TextEncoder().encode(secret);
    let exported = 0;
    for (let i = 0; i < 80; i++) {
      const chunks: Uint8Array[] = [];
      let finished = false;
      try {
        await exportContainer(
          store,
          c,
          new WritableStream({ write: (chunk) => void chunks.push(chunk.slice()) }),
        );
        finished = true;
        exported++;
      } catch {
        // A failed export leaks nothing by itself; what it wrote so far is still checked.
      }
      const tar = new Uint8Array(chunks.reduce((n, x) => n + x.length, 0));
      let off = 0;
      for (const x of chunks) {
        tar.set(x, off);
        off += x.length;
      }
      assertEquals(indexOf(tar, needle), -1, `try ${i}: the host secret is in the export`);
      if (finished) assertOk(tar.length > 1024 * 1024, "the export holds the files");
    }
    assertOk(exported > 40, `${exported} of 80 exports finished`);
  });
});

rootTest(
  "diff of a container racing symlink swaps finishes and never lists a host directory",
  async () => {
    await withRacer(async (name, _secret, store) => {
      const c = requireContainer(store, name);
      for (let i = 0; i < 100; i++) {
        // Every listing finishes: an entry that vanishes while it is read is not an error.
        const changes = await containerChanges(store, c);
        assertOk(changes.some((ch) => ch.path.startsWith("/race")), "the race dir is listed");
        for (const ch of changes) assertOk(!ch.path.includes(HOST_ONLY), `try ${i}: ${ch.path}`);
      }
    });
  },
);

rootTest("diff does not follow an image's absolute symlink onto the host", async () => {
  const root = await Deno.makeTempDir({ prefix: "tsbox-test-" });
  try {
    const { layerDir } = await seedStore(root);
    // The image has /etc2 -> /etc; host has /etc/os-release, the image has no such file.
    assertOk(Deno.lstatSync("/etc/os-release"), "the host has the file the check needs");
    Deno.symlinkSync("/etc", join(layerDir, "etc2"));
    const r = await tsbox([
      "run",
      "--name",
      "t-d",
      "busybox",
      "sh",
      "-c",
      "rm /etc2 && mkdir /etc2 && touch /etc2/os-release",
    ], { root });
    assertEquals(r.code, 0, r.stderr);
    const diff = await tsbox(["diff", "t-d"], { root });
    assertEquals(diff.code, 0, diff.stderr);
    const lines = diff.stdout.trim().split("\n");
    assertOk(lines.includes("A /etc2/os-release"), `added, not changed: ${lines}`);
    await tsbox(["rm", "-f", "t-d"], { root });
  } finally {
    // The store's default bridge is the host's: it goes before the store does.
    takeDownStoreNetworks(root);
    await Deno.remove(root, { recursive: true });
  }
});

function indexOf(hay: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = hay.indexOf(needle[0]); i >= 0; i = hay.indexOf(needle[0], i + 1)) {
    for (let j = 1; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

rootTest("run -h with a newline is refused with exit 125 and creates nothing", async () => {
  const before = (await ok(["ps", "-aq", "--no-trunc"])).trim();
  for (const flag of ["-h", "--hostname"]) {
    for (const bad of ["a\nb", "web\n127.0.0.1 evil.example", "a b", "a-"]) {
      const name = uniqueName("esc-host");
      const r = await t(["run", "--rm", "--name", name, flag, bad, "busybox", "true"]);
      assertEquals(r.code, 125, `${flag} ${JSON.stringify(bad)}: ${r.stderr}`);
      assertStringIncludes(r.stderr, "invalid hostname format");
      assertOk((await t(["inspect", name])).code !== 0, "no container was created");
    }
  }
  assertEquals((await ok(["ps", "-aq", "--no-trunc"])).trim(), before, "nothing was created");
  // Valid RFC 1123 names are accepted and become the container's host name.
  for (const good of ["web-1", "db01.example.org"]) {
    const r = await ok(["run", "--rm", "--hostname", good, "busybox", "cat", "/etc/hostname"]);
    assertEquals(r.trim(), good);
  }
});
