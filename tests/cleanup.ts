/**
 * Leaves nothing behind a test's store root, whether the test passed or failed: its containers
 * (running ones included, with their supervisors), any process still working on the root, the
 * mounts under it, and then the root itself. Unmounting comes before the recursive remove, which
 * would otherwise descend into a container's overlay or a bind-mounted host directory.
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import { takeNetworkDown } from "../src/network/setup.ts";
import type { NetworkRecord } from "../src/network/records.ts";
import { defaultRunroot } from "../src/container/boot.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

/**
 * Takes down the host side of every network the store recorded, the default `bridge` included
 * (which no command removes, as docker keeps docker0): its bridge and firewall elements. Runs
 * after the containers are gone, so no address is leased any more.
 */
export function takeDownStoreNetworks(root: string): void {
  let rows: { bridge: string; subnet: string; internal: number; subnet6?: string | null }[];
  try {
    const db = new DatabaseSync(`${root}/tsbox.db`);
    try {
      rows = db.prepare("SELECT * FROM networks").all() as typeof rows;
    } finally {
      db.close();
    }
  } catch {
    return; // no database, or one from before networks
  }
  for (const r of rows) {
    try {
      // Only this store's bridge: another store's of the same name is left alone.
      takeNetworkDown(
        {
          bridge: r.bridge,
          subnet: r.subnet,
          internal: r.internal !== 0,
          ...(r.subnet6 ? { subnet6: r.subnet6 } : {}),
        } as NetworkRecord,
        root,
      );
    } catch (err) {
      console.error(`cleanup: network ${r.bridge}: ${err}`);
    }
  }
}

function tsboxArgs(root: string, args: string[]): string[] {
  return ["run", "-A", "--quiet", MAIN, "--root", root, ...args];
}

/** Whether the store at `root` has any container directory (saves two tsbox starts if not). */
function hasContainers(root: string): boolean {
  try {
    for (const _ of Deno.readDirSync(`${root}/containers`)) return true;
  } catch { /* no containers directory */ }
  return false;
}

function idsOf(stdout: Uint8Array): string[] {
  return new TextDecoder().decode(stdout).split("\n").map((l) => l.trim()).filter(Boolean);
}

function under(root: string, path: string): boolean {
  return path === root || path.startsWith(`${root}/`);
}

/** PIDs (not this process) whose command line names `root` or a path below it. */
export function processesUsing(root: string): number[] {
  const pids: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    const pid = Number(e.name);
    if (!Number.isInteger(pid) || pid === Deno.pid) continue;
    try {
      const argv = Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0");
      if (argv.some((a) => under(root, a))) pids.push(pid);
    } catch { /* gone meanwhile */ }
  }
  return pids;
}

/** Mount points under `root`, deepest first (mountinfo escapes blanks as octal). */
export function mountsUnder(root: string): string[] {
  const points = Deno.readTextFileSync("/proc/self/mountinfo").split("\n")
    .map((line) => line.split(" ")[4])
    .filter((p): p is string => p !== undefined)
    .map((p) => p.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8))))
    .filter((p) => under(root, p));
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

function killAll(pids: number[]): void {
  for (const pid of pids) {
    try {
      Deno.kill(pid, "SIGKILL");
    } catch { /* already gone */ }
  }
}

/**
 * What {@link purgeRoot} and {@link purgeRootSync} do after tsbox's own `rm -f`: kill what still
 * runs on the root, wait (bounded) for it to die, unmount, remove.
 */
function finish(root: string): void {
  // Only the default one, named after this root: a TSBOX_RUNROOT may be anyone's directory.
  const runroot = defaultRunroot(root);
  const pids = processesUsing(root);
  killAll(pids);
  const end = Date.now() + 10_000;
  while (pids.some(alive) && Date.now() < end) {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
  }
  if (Deno.uid() === 0) takeDownStoreNetworks(root);
  for (const point of mountsUnder(root)) {
    new Deno.Command("umount", { args: ["-l", point], stdout: "null", stderr: "null" })
      .outputSync();
  }
  try {
    Deno.removeSync(root, { recursive: true });
  } catch { /* already gone */ }
  // The store's runtime directory on tmpfs (its boot marker and lock).
  try {
    Deno.removeSync(runroot, { recursive: true });
  } catch { /* none, or not the default one */ }
}

/** Force-removes every container of the store at `root`, then the rest (see the module). */
export async function purgeRoot(root: string): Promise<void> {
  if (hasContainers(root)) {
    const run = (args: string[]) =>
      new Deno.Command(Deno.execPath(), {
        args: tsboxArgs(root, args),
        stdin: "null",
        stdout: "piped",
        stderr: "null",
      }).output();
    const ids = idsOf((await run(["ps", "-aq", "--no-trunc"])).stdout);
    if (ids.length > 0) await run(["rm", "-f", ...ids]);
  }
  finish(root);
}

/** {@link purgeRoot} for `unload` handlers, where async work does not run. */
export function purgeRootSync(root: string): void {
  if (hasContainers(root)) {
    const run = (args: string[]) =>
      new Deno.Command(Deno.execPath(), {
        args: tsboxArgs(root, args),
        stdin: "null",
        stdout: "piped",
        stderr: "null",
      }).outputSync();
    const ids = idsOf(run(["ps", "-aq", "--no-trunc"]).stdout);
    if (ids.length > 0) run(["rm", "-f", ...ids]);
  }
  finish(root);
}
