/**
 * `run` and `rm` when things fail (root): on a store root with no room left, `run -d` fails
 * with the cause and the path and leaves no container, mount or cgroup; `rm -f A B C` removes
 * what it can, reports each failure as docker does, and exits 1.
 */
import { seedStore } from "./busybox_store.ts";
import { takeDownStoreNetworks } from "./cleanup.ts";
import { assertEquals, assertMatch, assertStringIncludes } from "./assert.ts";
import { tempRoot, tsbox } from "./cli.ts";
import { DatabaseSync } from "node:sqlite";

const isRoot = Deno.uid() === 0;

function rootTest(name: string, fn: () => Promise<void>) {
  Deno.test({ name, ignore: !isRoot, sanitizeResources: false, sanitizeOps: false, fn });
}

async function sh(cmd: string, ...args: string[]) {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return text;
}

function mountsUnder(dir: string): string[] {
  return Deno.readTextFileSync("/proc/self/mountinfo").split("\n")
    .map((l) => l.split(" ")[4])
    .filter((m) => m?.startsWith(`${dir}/`));
}

function cgroupsOf(ids: string[]): string[] {
  const found: string[] = [];
  for (const e of Deno.readDirSync("/sys/fs/cgroup")) {
    for (const id of ids) {
      try {
        Deno.statSync(`/sys/fs/cgroup/${e.name}/tsbox/${id}`);
        found.push(`${e.name}/${id}`);
      } catch { /* absent */ }
    }
  }
  return found;
}

function containerDirs(root: string): string[] {
  try {
    return [...Deno.readDirSync(`${root}/containers`)].map((e) => e.name);
  } catch {
    return [];
  }
}

rootTest("run -d on a full disk: the cause with its path, nothing left behind", async () => {
  const disk = await Deno.makeTempDir({ prefix: "tsbox-full-" });
  await sh("mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", disk);
  const root = `${disk}/root`;
  try {
    await seedStore(root); // the image is in the store before the disk fills
    const t = (args: string[]) => tsbox(args, { root });
    const free = Number((await sh("df", "-k", "--output=avail", disk)).trim().split("\n")[1]);
    // Room for the database's own writes, not for a container's files.
    await sh("dd", "if=/dev/zero", `of=${disk}/fill`, "bs=1k", `count=${free - 60}`);
    const ids: string[] = [];
    const runs: [string[], string][] = [
      [["-d"], "t-full-a"],
      [["-d"], "t-full-b"],
      [["-d"], "t-full-c"],
      [["--rm"], "t-full-d"],
      [[], "t-full-e"],
    ];
    for (const [flags, name] of runs) {
      // -d: a supervisor process starts it; without, this tsbox supervises it.
      // No network: a bridge lease is one more database write, which would fail first.
      const r = await t([
        "run",
        ...flags,
        "--network",
        "none",
        "--name",
        name,
        "busybox",
        "sleep",
        "100",
      ]);
      assertEquals(r.code, 125, r.stdout + r.stderr);
      // Before: "the supervisor of ... exited before starting it", "cannot rollback - ...".
      assertStringIncludes(r.stderr, "No space left on device");
      assertStringIncludes(r.stderr, `${root}/containers/`);
      ids.push(/containers\/([0-9a-f]{64})/.exec(r.stderr)![1]);
      const ps = await t(["ps", "-a", "-q"]);
      assertEquals(ps.code, 0, ps.stderr);
      assertEquals(ps.stdout, "", `${name} left a container`);
    }
    assertEquals(mountsUnder(root), []);
    assertEquals(cgroupsOf(ids), []);
    assertEquals(containerDirs(root), []);
    await Deno.remove(`${disk}/fill`);
    const again = await t(["run", "--rm", "busybox", "echo", "room again"]);
    assertEquals(again.stdout, "room again\n", again.stderr);
  } finally {
    // The last run made the store's default bridge on the host: it goes with the store.
    takeDownStoreNetworks(root);
    await sh("umount", "-l", disk).catch(() => {});
    await Deno.remove(disk, { recursive: true }).catch(() => {});
  }
});

rootTest("rm -f A B C goes on after B fails, reports it as docker does, exits 1", async () => {
  const { root, cleanup } = await tempRoot();
  const ids: Record<string, string> = {};
  try {
    await seedStore(root);
    const t = (args: string[]) => tsbox(args, { root });
    for (const name of ["t-rmf-a", "t-rmf-b", "t-rmf-c"]) {
      const r = await t(["run", "-d", "--name", name, "busybox", "sleep", "100"]);
      assertEquals(r.code, 0, r.stderr);
      ids[name] = r.stdout.trim();
    }
    // The database refuses to forget B, as a full disk or a damaged file would.
    const db = new DatabaseSync(`${root}/tsbox.db`);
    db.exec(`CREATE TRIGGER keep_b BEFORE DELETE ON containers WHEN old.name = 't-rmf-b'
             BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`);
    db.close();
    const rm = await t(["rm", "-f", "t-rmf-a", "t-rmf-b", "t-rmf-c"]);
    assertEquals(rm.code, 1, rm.stdout + rm.stderr);
    assertEquals(rm.stdout.trim().split("\n"), ["t-rmf-a", "t-rmf-c"]);
    assertMatch(rm.stderr, /^Error response from daemon: .*refused by the test/);
    assertStringIncludes(rm.stderr, ids["t-rmf-b"].slice(0, 12));
    const ps = await t(["ps", "-a", "-q", "--no-trunc"]);
    assertEquals(ps.stdout.trim(), ids["t-rmf-b"], ps.stderr);
    assertEquals(cgroupsOf([ids["t-rmf-a"], ids["t-rmf-c"]]), []);
    const fix = new DatabaseSync(`${root}/tsbox.db`);
    fix.exec("DROP TRIGGER keep_b");
    fix.close();
    const again = await t(["rm", "-f", "t-rmf-b"]);
    assertEquals(again.code, 0, again.stderr);
    assertEquals(mountsUnder(root), []);
    assertEquals(cgroupsOf(Object.values(ids)), []);
  } finally {
    try {
      const db = new DatabaseSync(`${root}/tsbox.db`);
      db.exec("DROP TRIGGER IF EXISTS keep_b");
      db.close();
    } catch { /* no database */ }
    await tsbox(["rm", "-f", ...Object.values(ids)], { root });
    for (const m of mountsUnder(root)) await sh("umount", "-l", m).catch(() => {});
    await cleanup();
  }
});
