/**
 * Services that stay up (issue 24, root): a container with a restart policy comes back when its
 * supervisor is killed, with no tsbox command typed; a reboot (simulated for real: every
 * process of the store killed, every mount under it unmounted, the runroot removed) is
 * recognised by the first command, which resets the store once; `system boot` starts what
 * docker's daemon would; a recorded pid now held by an unrelated process is never signalled.
 */
import { sharedBusyboxRoot } from "./busybox_store.ts";
import { assertEquals, assertMatch, assertOk } from "./assert.ts";
import { type CliResult, tsbox } from "./cli.ts";

const isRoot = Deno.uid() === 0;

function rootTest(name: string, fn: () => Promise<void>) {
  Deno.test({ name, ignore: !isRoot, sanitizeResources: false, sanitizeOps: false, fn });
}

/** The fields of /proc/PID/stat after the command name (0: state, 1: ppid, 19: start time). */
function stat(pid: number): string[] | undefined {
  try {
    const text = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return text.slice(text.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined;
  }
}

/** Alive and not a zombie (a killed process may wait a while for this machine's init). */
function alive(pid: number): boolean {
  const s = stat(pid);
  return s !== undefined && !/^[ZX]/.test(s[0]);
}

function comm(pid: number): string {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/comm`).trim();
  } catch {
    return "";
  }
}

async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 20_000) {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Live processes in container `id`'s cgroup (any v1 controller or a v2 tsbox/ID dir). */
function cgroupProcs(id: string): number[] {
  const found = new Set<number>();
  const dirs = ["/sys/fs/cgroup/tsbox"];
  for (const e of Deno.readDirSync("/sys/fs/cgroup")) dirs.push(`/sys/fs/cgroup/${e.name}/tsbox`);
  for (const d of dirs) {
    try {
      for (const line of Deno.readTextFileSync(`${d}/${id}/cgroup.procs`).split("\n")) {
        if (line && alive(Number(line))) found.add(Number(line));
      }
    } catch { /* no such cgroup */ }
  }
  return [...found];
}

/** Live processes whose command line names container `id` (its supervisor, its watcher). */
function namingId(id: string): number[] {
  const pids: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    const pid = Number(e.name);
    if (!Number.isInteger(pid)) continue;
    try {
      if (Deno.readTextFileSync(`/proc/${pid}/cmdline`).includes(id) && alive(pid)) pids.push(pid);
    } catch { /* gone meanwhile */ }
  }
  return pids;
}

function cli(root: string, env: Record<string, string> = {}) {
  const t = (args: string[]) => tsbox(args, { root, env });
  const ok = async (args: string[]): Promise<string> => {
    const r: CliResult = await t(args);
    assertEquals(r.code, 0, `${args.join(" ")}: ${r.stdout}${r.stderr}`);
    return r.stdout;
  };
  const inspect = async (name: string) => JSON.parse(await ok(["inspect", name]))[0];
  return { t, ok, inspect };
}

rootTest(
  "kill -9 of the supervisor: restart-policy containers come back by themselves",
  async () => {
    const root = await sharedBusyboxRoot();
    const { t, ok, inspect } = cli(root);
    const names = ["t-up-always", "t-up-unless", "t-up-fail5", "t-up-no"];
    const policies = ["always", "unless-stopped", "on-failure:5", "no"];
    try {
      const ids: string[] = [];
      for (let i = 0; i < names.length; i++) {
        ids.push(
          (await ok([
            "run",
            "-d",
            "--name",
            names[i],
            "--restart",
            policies[i],
            "busybox",
            "sh",
            "-c",
            "echo up; exec sleep 1000",
          ])).trim(),
        );
      }
      const before: { pid: number; supervisor: number }[] = [];
      for (const name of names) {
        await until(`${name} to log`, async () => (await ok(["logs", name])).includes("up"));
        const pid = (await inspect(name)).State.Pid as number;
        const supervisor = Number(stat(pid)![1]);
        assertOk(alive(supervisor) && supervisor > 1, `${name}: supervisor of ${pid}`);
        before.push({ pid, supervisor });
      }
      for (const b of before) Deno.kill(b.supervisor, "SIGKILL");
      // No tsbox command from here until each one runs again: only the kernel is asked.
      const back = (i: number) =>
        cgroupProcs(ids[i]).some((p) => p !== before[i].pid && comm(p) === "sleep");
      await until(
        "the three restart-policy containers to run again",
        () => [0, 1, 2].every(back),
        10_000,
      );
      // The --restart no container died with its supervisor (parent-death signal) and stays down.
      await until("t-up-no's process to die", () => !alive(before[3].pid));
      assertEquals(back(3), false);

      const ps = await ok(["ps", "-a", "--format", "{{.Names}} {{.Status}}"]);
      for (const name of names.slice(0, 3)) {
        assertMatch(ps, new RegExp(`^${name} Up `, "m"));
      }
      assertMatch(ps, /^t-up-no Exited \(137\) /m);
      for (let i = 0; i < 3; i++) {
        const c = await inspect(names[i]);
        assertEquals(c.State.Running, true, names[i]);
        assertOk(c.RestartCount >= 1, `${names[i]}: RestartCount ${c.RestartCount}`);
        assertOk(cgroupProcs(ids[i]).includes(c.State.Pid), `${names[i]}: inspect's pid runs`);
        const logs = (await ok(["logs", names[i]])).split("\n").filter((l) => l === "up");
        assertOk(logs.length >= 2, `${names[i]}: a line from before and one from after: ${logs}`);
      }
      assertEquals((await inspect("t-up-no")).RestartCount, 0);

      // The new supervisors are watched as the first ones were: a second kill, a second return.
      const again = (await inspect(names[0])).State.Pid as number;
      Deno.kill(Number(stat(again)![1]), "SIGKILL");
      await until(
        "t-up-always to run again after a second kill",
        () => cgroupProcs(ids[0]).some((p) => p !== again && comm(p) === "sleep"),
        10_000,
      );
      await until("RestartCount 2", async () => (await inspect(names[0])).RestartCount >= 2);

      // A user's stop is final: the supervisor ends normally and its watcher goes with it.
      await ok(["stop", "-t", "1", names[1]]);
      await until("no supervisor or watcher of t-up-unless", () => namingId(ids[1]).length === 0);
      await new Promise((r) => setTimeout(r, 1_000));
      assertEquals((await inspect(names[1])).State.Running, false);
      assertEquals(cgroupProcs(ids[1]), []);
    } finally {
      await t(["rm", "-f", ...names]);
    }
  },
);
