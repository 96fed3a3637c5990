/**
 * Containers whose runner died (root): a supervisor or a foreground `run --rm` killed with
 * SIGKILL leaves its mount and cgroups; the next tsbox command that reads the container finishes
 * the job (unmount, cgroups, and for --rm the container itself), once, even when several run
 * at the same time.
 */
import { sharedBusyboxRoot } from "./busybox_store.ts";
import { assertEquals, assertMatch, assertOk } from "./assert.ts";
import { tsbox } from "./cli.ts";

const isRoot = Deno.uid() === 0;
const MAIN = new URL("../main.ts", import.meta.url).pathname;

function rootTest(name: string, fn: () => Promise<void>) {
  Deno.test({ name, ignore: !isRoot, sanitizeResources: false, sanitizeOps: false, fn });
}

async function t(args: string[]) {
  const r = await tsbox(args, { root: await sharedBusyboxRoot() });
  return r;
}

async function ok(args: string[]): Promise<string> {
  const r = await t(args);
  assertEquals(r.code, 0, `${args.join(" ")}: ${r.stdout}${r.stderr}`);
  return r.stdout;
}

/** Alive and not a zombie (a killed process may wait a while for this machine's init). */
function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(")") + 2));
  } catch {
    return false;
  }
}

async function until(what: string, cond: () => boolean, ms = 20_000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** What of container `id` the kernel still holds: its rootfs mount, its cgroup directories. */
function kernelLeftovers(root: string, id: string): string[] {
  const found: string[] = [];
  const rootfs = `${root}/containers/${id}/rootfs`;
  for (const line of Deno.readTextFileSync("/proc/self/mountinfo").split("\n")) {
    if (line.split(" ")[4] === rootfs) found.push(`mount ${rootfs}`);
  }
  for (const e of Deno.readDirSync("/sys/fs/cgroup")) {
    try {
      Deno.statSync(`/sys/fs/cgroup/${e.name}/tsbox/${id}`);
      found.push(`cgroup ${e.name}`);
    } catch { /* absent */ }
  }
  return found;
}

async function inspect(name: string) {
  return JSON.parse(await ok(["inspect", name]))[0];
}

function parentOf(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
}

rootTest("kill -9 of a supervisor: the next ps -a unmounts and removes the cgroups", async () => {
  const root = await sharedBusyboxRoot();
  const id =
    (await ok(["run", "-d", "--name", "t-dead-sup", "--memory", "64m", "busybox", "sleep", "300"]))
      .trim();
  try {
    const pid1 = (await inspect(id)).State.Pid as number;
    // The supervisor is PID 1's parent.
    const supervisor = parentOf(pid1);
    assertOk(supervisor > 1 && alive(supervisor));
    assertOk(kernelLeftovers(root, id).length >= 2, "mounted, with cgroups, while it runs");
    Deno.kill(supervisor, "SIGKILL");
    await until("PID 1 to die with its supervisor", () => !alive(pid1));
    // Before: Exited (137), with the overlay mounted and the cgroups there until rm or start.
    const ps = await ok(["ps", "-a", "--filter", "name=t-dead-sup"]);
    assertMatch(ps.split("\n")[1], /Exited \(137\)/);
    assertEquals(kernelLeftovers(root, id), []);
    // The container itself stays (no --rm) and starts again.
    await ok(["start", id]);
    assertEquals((await inspect(id)).State.Running, true);
  } finally {
    await t(["rm", "-f", id]);
  }
  assertEquals(kernelLeftovers(root, id), []);
});

rootTest("kill -9 of a foreground run --rm: the next tsbox command removes it", async () => {
  const root = await sharedBusyboxRoot();
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--quiet",
      MAIN,
      "--root",
      root,
      "run",
      "--rm",
      "--name",
      "t-dead-rm",
      "-v",
      "/data",
      "busybox",
      "sh",
      "-c",
      "echo ready; sleep 300",
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = child.stdout.getReader();
  const first = new TextDecoder().decode((await reader.read()).value);
  reader.releaseLock();
  assertEquals(first.trim(), "ready");
  const c = await inspect("t-dead-rm");
  const id = c.Id as string;
  const volume = (c.Mounts as { Name?: string; Destination: string }[])
    .find((m) => m.Destination === "/data")?.Name;
  try {
    // The foreground run is the supervisor.
    assertEquals(parentOf(c.State.Pid), child.pid);
    child.kill("SIGKILL");
    await child.status;
    await until("PID 1 to die with its runner", () => !alive(c.State.Pid));
    // Before: it stayed, Exited (137), mounted, until a manual rm -f.
    assertEquals(await ok(["ps", "-a", "-q", "--filter", "name=t-dead-rm"]), "");
    assertEquals(kernelLeftovers(root, id), []);
    await assertGone(`${root}/containers/${id}`);
    const inspected = await t(["inspect", id]);
    assertEquals(inspected.code, 1, inspected.stdout);
    if (volume) {
      // docker removes a --rm container's anonymous volumes with it.
      assertEquals((await ok(["volume", "ls", "-q"])).split("\n").includes(volume), false);
      await assertGone(`${root}/volumes/${volume}`);
    }
  } finally {
    await t(["rm", "-f", id]);
  }
});

rootTest("several commands noticing the same dead runner at once all succeed", async () => {
  const root = await sharedBusyboxRoot();
  const ids: string[] = [];
  for (const name of ["t-dead-c1", "t-dead-c2"]) {
    const rm = name === "t-dead-c2" ? ["--rm"] : [];
    ids.push((await ok(["run", "-d", ...rm, "--name", name, "busybox", "sleep", "300"])).trim());
  }
  try {
    const pids: number[] = [];
    for (const id of ids) {
      const pid1 = (await inspect(id)).State.Pid as number;
      pids.push(pid1);
      Deno.kill(parentOf(pid1), "SIGKILL");
    }
    await until("PID 1s to die", () => pids.every((p) => !alive(p)));
    const results = await Promise.all([
      t(["ps", "-a"]),
      t(["ps", "-a"]),
      t(["inspect", "t-dead-c1"]),
      t(["ps", "-a", "-q"]),
    ]);
    for (const r of results) assertEquals(r.code, 0, r.stderr);
    assertMatch((await inspect("t-dead-c1")).State.Status, /^exited$/);
    assertEquals(await ok(["ps", "-a", "-q", "--filter", "name=t-dead-c2"]), "");
    for (const id of ids) assertEquals(kernelLeftovers(root, id), []);
  } finally {
    for (const id of ids) await t(["rm", "-f", id]);
  }
});

async function assertGone(path: string) {
  try {
    await Deno.lstat(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return;
    throw err;
  }
  throw new Error(`${path} is still there`);
}
