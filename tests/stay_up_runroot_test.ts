/**
 * The runroot (issue 24, root): by default `/run/tsbox/<hash of the root>`, one per store;
 * `--runroot DIR` is used by the command and by the supervisors it starts (and by the one a
 * watcher starts after a kill); a marker that names another boot (a runroot that survived a
 * reboot, as it does where /run is not a tmpfs, this machine included) resets the store once,
 * and a pid + start time pair the last boot recorded is not believed even when a process of
 * this boot matches both.
 */
import { DatabaseSync } from "node:sqlite";
import { seedStore } from "./busybox_store.ts";
import { assertEquals, assertMatch, assertOk } from "./assert.ts";
import { purgeRoot } from "./cleanup.ts";
import { defaultRunroot } from "../src/container/boot.ts";
import { alive, cgroupProcs, cli, comm, rootTest, stat, until } from "./stay_up.ts";

const BOOT_ID = "/proc/sys/kernel/random/boot_id";

function read(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path).trim();
  } catch {
    return undefined;
  }
}

function resets(root: string): number {
  return (read(`${root}/boot-resets.log`) ?? "").split("\n").filter((l) => l.includes(" reset "))
    .length;
}

/** A seeded store in a new temporary root, and a new runroot directory (not yet made). */
async function store(): Promise<{ root: string; runroot: string; done: () => Promise<void> }> {
  const root = await Deno.makeTempDir({ prefix: "tsbox-test-" });
  const parent = await Deno.makeTempDir({ prefix: "tsbox-run-" });
  await seedStore(root);
  return {
    root,
    runroot: `${parent}/rr`,
    done: async () => {
      await purgeRoot(root);
      await Deno.remove(parent, { recursive: true }).catch(() => {});
    },
  };
}

rootTest(
  "the runroot: /run/tsbox/<hash> by default, --runroot for a command and its supervisors",
  async () => {
    const { root, runroot, done } = await store();
    try {
      // By default: under /run/tsbox, named after the store, the current boot's id in it.
      const { t, ok } = cli(root);
      await ok(["ps", "-a"]);
      const byDefault = defaultRunroot(root);
      assertMatch(byDefault, /^\/run\/tsbox\/[0-9a-f]{16}$/);
      assertEquals(read(`${byDefault}/boot_id`), read(BOOT_ID));
      assertEquals(Deno.statSync(byDefault).mode! & 0o777, 0o700);
      const other = await Deno.makeTempDir({ prefix: "tsbox-test-" });
      assertOk(defaultRunroot(other) !== byDefault, "one runroot per store");
      await Deno.remove(other);

      // --runroot DIR: the command, its supervisor, and the supervisor a watcher starts.
      const rr = (args: string[]) => ok(["--runroot", runroot, ...args]);
      const id = (await rr([
        "run",
        "-d",
        "--name",
        "t-rr",
        "--restart",
        "always",
        "busybox",
        "sleep",
        "1000",
      ])).trim();
      assertEquals(read(`${runroot}/boot_id`), read(BOOT_ID));
      const inspect = async () => JSON.parse(await rr(["inspect", "t-rr"]))[0];
      const pid = (await inspect()).State.Pid as number;
      const supervisor = Number(stat(pid)![1]);
      const pidFile = `${runroot}/supervisors/t-rr.pid`;
      assertEquals(Number(read(pidFile)), supervisor);
      assertEquals(read(`${byDefault}/supervisors/t-rr.pid`), undefined);
      Deno.kill(supervisor, "SIGKILL");
      await until(
        "t-rr to run again",
        () => cgroupProcs(id).some((p) => p !== pid && comm(p) === "sleep"),
        10_000,
      );
      const now = (await inspect()).State.Pid as number;
      await until(
        "the new supervisor's pid file",
        () => Number(read(pidFile)) === Number(stat(now)![1]),
      );
      assertEquals(read(`${byDefault}/supervisors/t-rr.pid`), undefined);
      await t(["--runroot", runroot, "rm", "-f", "t-rr"]);
    } finally {
      await done();
    }
  },
);

rootTest(
  "a runroot from another boot: reset once; the last boot's pids are not believed",
  async () => {
    const { root, runroot, done } = await store();
    const { t, ok } = cli(root, { TSBOX_RUNROOT: runroot });
    const id = (await ok(["create", "--name", "t-rr-old", "busybox", "sleep", "1000"])).trim();
    // A process of this boot with the very pid and start time the row will hold: only the boot
    // marker tells that the row describes another boot's process.
    const unrelated = new Deno.Command("sleep", { args: ["300"] }).spawn();
    try {
      const start = Number(stat(unrelated.pid)![19]);
      const db = new DatabaseSync(`${root}/tsbox.db`);
      db.prepare(
        `UPDATE containers SET state = 'running', pid = ?, pid_start = ?, supervisor_pid = ?,
         supervisor_start = ?, started_at = ? WHERE id = ?`,
      ).run(unrelated.pid, start, unrelated.pid, start, Date.now(), id);
      db.close();
      const before = resets(root);
      Deno.writeTextFileSync(`${runroot}/boot_id`, "00000000-0000-0000-0000-000000000000\n");

      const results = await Promise.all([
        t(["stop", "-t", "1", "t-rr-old"]),
        t(["kill", "t-rr-old"]),
        t(["ps", "-a", "--format", "{{.Names}} {{.Status}}"]),
      ]);
      await new Promise((r) => setTimeout(r, 200));
      assertOk(alive(unrelated.pid), "a pid of the last boot was signalled");
      assertEquals(resets(root), before + 1, "one reset");
      assertEquals(read(`${runroot}/boot_id`), read(BOOT_ID));
      const ps = await ok(["ps", "-a", "--format", "{{.Names}} {{.Status}}"]);
      assertMatch(ps, /^t-rr-old Exited \(255\) /m);
      assertEquals(results[2].code, 0, results[2].stderr);
      await ok(["rm", "-f", "t-rr-old"]);
      assertOk(alive(unrelated.pid), "rm -f signalled it");
    } finally {
      unrelated.kill("SIGKILL");
      await unrelated.status;
      await done();
    }
  },
);
