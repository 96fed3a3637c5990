/**
 * Services that stay up (issue 24, root): a container with a restart policy comes back when its
 * supervisor is killed, with no tsbox command typed; a reboot (simulated for real: every
 * process of the store killed, every mount under it unmounted, the runroot removed) is
 * recognised by the first command, which resets the store once; `system boot` starts what
 * docker's daemon would; a recorded pid now held by an unrelated process is never signalled.
 */
import { DatabaseSync } from "node:sqlite";
import { seedStore, sharedBusyboxRoot } from "./busybox_store.ts";
import { assertEquals, assertMatch, assertOk } from "./assert.ts";
import { mountsUnder, processesUsing, purgeRoot } from "./cleanup.ts";
import {
  alive,
  cgroupProcs,
  cli,
  comm,
  freePort,
  hasSystemdAnalyze,
  isRoot,
  namingId,
  rootTest,
  runUnitLine,
  stat,
  until,
  verifyUnit,
} from "./stay_up.ts";

rootTest(
  "kill -9 of the supervisor: restart-policy containers come back by themselves",
  async () => {
    const root = await sharedBusyboxRoot();
    const { t, ok, inspect } = cli(root);
    const names = ["t-up-always", "t-up-unless", "t-up-fail5", "t-up-no"];
    const policies = ["always", "unless-stopped", "on-failure:5", "no"];
    try {
      const ids: string[] = [];
      // The first one also serves a published port (httpd in the background, sleep as PID 1).
      const port = freePort();
      const web = ["-p", `127.0.0.1:${port}:80`];
      const script = "echo hi > /tmp/index.html; httpd -p 80 -h /tmp; echo up; exec sleep 1000";
      for (let i = 0; i < names.length; i++) {
        ids.push(
          (await ok([
            "run",
            "-d",
            "--name",
            names[i],
            "--restart",
            policies[i],
            ...(i === 0 ? web : []),
            "busybox",
            "sh",
            "-c",
            i === 0 ? script : "echo up; exec sleep 1000",
          ])).trim(),
        );
      }
      const answer = async () => {
        try {
          return (await (await fetch(`http://127.0.0.1:${port}/index.html`)).text()).trim();
        } catch (err) {
          return String(err);
        }
      };
      await until("the published port to answer", async () => (await answer()) === "hi");
      const before: { pid: number; supervisor: number; logPath: string }[] = [];
      for (const name of names) {
        await until(`${name} to log`, async () => (await ok(["logs", name])).includes("up"));
        const c = await inspect(name);
        const pid = c.State.Pid as number;
        const supervisor = Number(stat(pid)![1]);
        assertOk(alive(supervisor) && supervisor > 1, `${name}: supervisor of ${pid}`);
        before.push({ pid, supervisor, logPath: c.LogPath });
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
        assertEquals(c.LogPath, before[i].logPath, `${names[i]}: the log goes on in the same file`);
        assertOk(Deno.statSync(c.LogPath).isFile, c.LogPath);
        const logs = (await ok(["logs", names[i]])).split("\n").filter((l) => l === "up");
        assertOk(logs.length >= 2, `${names[i]}: a line from before and one from after: ${logs}`);
      }
      assertEquals((await inspect("t-up-no")).RestartCount, 0);
      // The new supervisor publishes the port again.
      await until("the published port to answer again", async () => (await answer()) === "hi");

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

/**
 * A reboot, as far as a store can tell: every process of its containers and supervisors
 * (watchers first, so that none execs a new supervisor) killed with SIGKILL until none is
 * left, every mount under the root unmounted, the runroot removed.
 */
async function simulateReboot(root: string, runroot: string): Promise<void> {
  const ids = [...Deno.readDirSync(`${root}/containers`)].map((e) => e.name);
  let quiet = 0;
  const end = Date.now() + 20_000;
  while (quiet < 3) {
    if (Date.now() > end) throw new Error("processes of the store keep coming back");
    const pids = [...new Set([...processesUsing(root), ...ids.flatMap(cgroupProcs)])]
      .filter(alive);
    pids.sort((a, b) => Number(comm(b) === "tsbox-watch") - Number(comm(a) === "tsbox-watch"));
    for (const pid of pids) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch { /* gone */ }
    }
    quiet = pids.length === 0 ? quiet + 1 : 0;
    await new Promise((r) => setTimeout(r, 100));
  }
  for (const point of mountsUnder(root)) {
    const r = await new Deno.Command("umount", { args: ["-l", point], stderr: "null" }).output();
    assertOk(r.success, `umount ${point}`);
  }
  await Deno.remove(runroot, { recursive: true });
}

rootTest(
  "a simulated reboot: reset once by the first commands, system boot starts the policy table",
  async () => {
    const root = await Deno.makeTempDir({ prefix: "tsbox-test-" });
    const runroot = await Deno.makeTempDir({ prefix: "tsbox-run-" });
    try {
      await seedStore(root);
      const { t, ok, inspect } = cli(root, { TSBOX_RUNROOT: runroot });
      const port = freePort();
      const up = (name: string, policy: string, ...rest: string[]) =>
        ok(["run", "-d", "--name", name, "--restart", policy, ...rest]);
      await up(
        "t-rb-web",
        "always",
        "-p",
        `127.0.0.1:${port}:80`,
        "busybox",
        "sh",
        "-c",
        "echo hello > /tmp/index.html; exec httpd -f -p 80 -h /tmp",
      );
      await up(
        "t-rb-unless",
        "unless-stopped",
        "-v",
        "t-rb-vol:/data",
        "busybox",
        "sh",
        "-c",
        "echo start >> /data/f; exec sleep 1000",
      );
      await up("t-rb-stopped", "unless-stopped", "busybox", "sleep", "1000");
      await up("t-rb-fail", "on-failure:3", "busybox", "sleep", "1000");
      await up("t-rb-no", "no", "busybox", "sleep", "1000");
      await up(
        "t-rb-join",
        "always",
        "--network",
        "container:t-rb-web",
        "busybox",
        "sleep",
        "1000",
      );
      await ok(["stop", "-t", "1", "t-rb-stopped"]);
      // Make the joiner the older container: listed first, so only the ordering by joined
      // network lets it start.
      const db = new DatabaseSync(`${root}/tsbox.db`);
      db.prepare("UPDATE containers SET created_at = created_at - 60000 WHERE name = ?")
        .run("t-rb-join");
      db.close();
      const ids: Record<string, string> = Object.fromEntries(
        (await ok(["ps", "-a", "--no-trunc", "--format", "{{.Names}} {{.ID}}"])).trim().split("\n")
          .map((l) => l.split(" ") as [string, string]),
      );
      const answer = async () => {
        try {
          const res = await fetch(`http://127.0.0.1:${port}/index.html`);
          return (await res.text()).trim();
        } catch (err) {
          return String(err);
        }
      };
      await until("the web container to answer", async () => (await answer()) === "hello");

      await simulateReboot(root, runroot);
      const resetsBefore = Deno.readTextFileSync(`${root}/boot-resets.log`).split("\n")
        .filter((l) => l.includes(" reset ")).length;

      // The first touch of the new boot: ten commands at once, one reset.
      const first = await Promise.all(
        Array.from({ length: 10 }, () => t(["ps", "-a", "--format", "{{.Names}} {{.Status}}"])),
      );
      for (const r of first) {
        assertEquals(r.code, 0, r.stderr);
        assertEquals(r.stdout.trim().split("\n").length, 6, r.stdout);
        assertOk(!/ Up /.test(r.stdout), `nothing runs after a reboot:\n${r.stdout}`);
      }
      const resets = Deno.readTextFileSync(`${root}/boot-resets.log`).split("\n")
        .filter((l) => l.includes(" reset "));
      assertEquals(resets.length, resetsBefore + 1, resets.join("\n"));
      const ps = first[0].stdout;
      for (const name of ["t-rb-web", "t-rb-unless", "t-rb-fail", "t-rb-no", "t-rb-join"]) {
        assertMatch(ps, new RegExp(`^${name} Exited \\(255\\) `, "m"));
      }
      assertMatch(ps, /^t-rb-stopped Exited \((137|143)\) /m);
      // The reset released the kernel's leftovers: no cgroup of any container is left.
      for (const id of Object.values(ids)) assertEquals(cgroupProcs(id), []);

      const boot = await t(["system", "boot"]);
      assertEquals(boot.code, 0, boot.stderr);
      assertEquals(boot.stderr, "");
      const started = ["t-rb-web", "t-rb-unless", "t-rb-fail", "t-rb-join"];
      assertEquals(boot.stdout.trim().split("\n").sort(), [...started].sort());
      const after = await ok(["ps", "-a", "--format", "{{.Names}} {{.Status}}"]);
      for (const name of started) assertMatch(after, new RegExp(`^${name} Up `, "m"));
      assertMatch(after, /^t-rb-stopped Exited /m);
      assertMatch(after, /^t-rb-no Exited \(255\) /m);
      for (const name of started) {
        assertOk(cgroupProcs(ids[name]).length > 0, `${name} runs in its cgroup`);
      }
      await until("the published port to answer again", async () => (await answer()) === "hello");
      assertEquals(
        Deno.readTextFileSync(`${root}/volumes/t-rb-vol/_data/f`),
        "start\nstart\n",
        "the named volume kept its data",
      );
      const netns = (name: string) =>
        inspect(name).then((c) => Deno.readLinkSync(`/proc/${c.State.Pid}/ns/net`));
      assertEquals(await netns("t-rb-join"), await netns("t-rb-web"));

      // Idempotent: a second run starts nothing and touches nothing.
      const pids = async () => {
        const out: Record<string, number> = {};
        for (const name of started) out[name] = (await inspect(name)).State.Pid;
        return out;
      };
      const before = await pids();
      const again = await t(["system", "boot"]);
      assertEquals([again.code, again.stdout, again.stderr], [0, "", ""]);
      assertEquals(await pids(), before);
      assertEquals(
        Deno.readTextFileSync(`${root}/boot-resets.log`).split("\n")
          .filter((l) => l.includes(" reset ")).length,
        resetsBefore + 1,
      );
    } finally {
      await purgeRoot(root);
      await Deno.remove(runroot, { recursive: true }).catch(() => {});
    }
  },
);

rootTest("a recorded pid now held by an unrelated process is never signalled", async () => {
  const root = await sharedBusyboxRoot();
  const { t, ok } = cli(root);
  const id = (await ok(["create", "--name", "t-pid-reuse", "busybox", "sleep", "1000"])).trim();
  // The unrelated process: its pid is written into the row, with a start time one tick off (the
  // seam for "the pid was reused": the same number, another process).
  const other = new Deno.Command("sleep", { args: ["300"] }).spawn();
  try {
    const start = Number(stat(other.pid)![19]);
    const forge = () => {
      const db = new DatabaseSync(`${root}/tsbox.db`);
      db.prepare(
        `UPDATE containers SET state = 'running', pid = ?, pid_start = ?, supervisor_pid = ?,
           supervisor_start = ? WHERE id = ?`,
      ).run(other.pid, start + 1, other.pid, start + 1, id);
      db.close();
    };
    for (const args of [["kill", id], ["kill", "-s", "TERM", id], ["stop", "-t", "1", id]]) {
      forge();
      await t(args);
      await new Promise((r) => setTimeout(r, 200));
      assertOk(alive(other.pid), `${args.join(" ")} signalled pid ${other.pid}`);
    }
    forge();
    await ok(["rm", "-f", id]);
    await new Promise((r) => setTimeout(r, 200));
    assertOk(alive(other.pid), `rm -f signalled pid ${other.pid}`);
    assertEquals((await t(["inspect", id])).code, 1);

    // With its supervisor alive the row is believed, and `kill` goes as far as the pid check.
    const live = (await ok(["run", "-d", "--name", "t-pid-live", "busybox", "sleep", "1000"]))
      .trim();
    const db = new DatabaseSync(`${root}/tsbox.db`);
    const real = db.prepare("SELECT pid, pid_start FROM containers WHERE id = ?").get(live) as {
      pid: number;
      pid_start: number;
    };
    db.prepare("UPDATE containers SET pid = ?, pid_start = ? WHERE id = ?")
      .run(other.pid, start + 1, live);
    await t(["kill", live]);
    await new Promise((r) => setTimeout(r, 200));
    assertOk(alive(other.pid), `kill of a live container signalled pid ${other.pid}`);
    assertOk(alive(real.pid), "nor its real PID 1, which the row no longer names");
    db.prepare("UPDATE containers SET pid = ?, pid_start = ? WHERE id = ?")
      .run(real.pid, real.pid_start, live);
    db.close();
  } finally {
    other.kill("SIGKILL");
    await other.status;
    await t(["rm", "-f", id, "t-pid-live"]);
  }
});

const UNIT = new URL("../contrib/systemd/tsbox-boot.service", import.meta.url).pathname;
const MAIN = new URL("../main.ts", import.meta.url).pathname;
Deno.test({
  name: "the shipped boot unit passes systemd-analyze verify; its ExecStart starts the containers",
  ignore: !isRoot || !hasSystemdAnalyze,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const root = await sharedBusyboxRoot();
    const { t, ok, inspect } = cli(root);
    const dir = await Deno.makeTempDir({ prefix: "tsbox-unit-" });
    try {
      // The unit names the installed tsbox; here that is a launcher of this checkout.
      const exe = `${dir}/tsbox`;
      await Deno.writeTextFile(
        exe,
        `#!/bin/sh\nDENO_NO_UPDATE_CHECK=1 exec ${Deno.execPath()} run -A --quiet ${MAIN} "$@"\n`,
        { mode: 0o755 },
      );
      const text = (await Deno.readTextFile(UNIT)).replaceAll("/usr/local/bin/tsbox", exe);
      const unit = `${dir}/tsbox-boot.service`;
      await Deno.writeTextFile(unit, text);
      for (const user of [false, true]) {
        const v = await verifyUnit(unit, user);
        assertEquals([v.code, v.stderr], [0, ""], `verify${user ? " --user" : ""}: ${v.stderr}`);
      }
      assertMatch(text, /^Type=oneshot$/m);
      assertMatch(text, /^RemainAfterExit=yes$/m);
      assertMatch(text, /^After=network-online\.target$/m);

      // Run by hand, ExecStart starts an `always` container (one a user stopped, as docker's
      // daemon does) and exits 0.
      await ok([
        "run",
        "-d",
        "--name",
        "t-unit-always",
        "--restart",
        "always",
        "busybox",
        "sleep",
        "1000",
      ]);
      await ok(["stop", "-t", "1", "t-unit-always"]);
      assertEquals((await inspect("t-unit-always")).State.Running, false);
      const argv = text.match(/^ExecStart=(.*)$/m)![1].split(" ");
      const out = await new Deno.Command(argv[0], {
        args: argv.slice(1),
        env: { TSBOX_ROOT: root },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stdout = new TextDecoder().decode(out.stdout);
      assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
      assertMatch(stdout, /^t-unit-always$/m);
      assertEquals((await inspect("t-unit-always")).State.Running, true);
    } finally {
      await t(["rm", "-f", "t-unit-always"]);
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "generate systemd: units pass systemd-analyze verify; their commands do what they promise",
  ignore: !isRoot || !hasSystemdAnalyze,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const root = await sharedBusyboxRoot();
    const { t, ok, inspect } = cli(root);
    const dir = await Deno.makeTempDir({ prefix: "tsbox-unit-" });
    const name = "t-gen-unit";
    try {
      const id = (await ok([
        "run",
        "-d",
        "--name",
        name,
        "-e",
        "MSG=50% of $HOME",
        "--label",
        "k=v w",
        "busybox",
        "sh",
        "-c",
        // Ends at SIGTERM (a PID 1 without a handler ignores it), so that stops are quick.
        'trap "exit 0" TERM; echo "$MSG"; sleep 1000 & wait',
      ])).trim();
      const supervisorOf = async () => {
        const c = await inspect(name);
        return { pid: c.State.Pid as number, supervisor: Number(stat(c.State.Pid)![1]), c };
      };

      const pidFileOf = (text: string) => text.match(/^PIDFile=(.*)$/m)![1];
      const pidIn = (path: string) => {
        try {
          return Number(Deno.readTextFileSync(path).trim());
        } catch {
          return undefined;
        }
      };
      const verified = async (text: string, file: string) => {
        const path = `${dir}/${file}`;
        await Deno.writeTextFile(path, text);
        const v = await verifyUnit(path, false);
        assertEquals([v.code, v.stderr], [0, ""], `verify ${file}: ${v.stderr}`);
        assertMatch(text, /^Type=forking$/m);
        assertMatch(text, /^Restart=on-failure$/m);
        return text;
      };

      // Without --new: the unit starts and stops the container that exists.
      const plain = await verified(
        await ok(["generate", "systemd", "--name", name]),
        `container-${name}.service`,
      );
      assertMatch(plain, /^TimeoutStopSec=70$/m);
      assertEquals((await runUnitLine(plain, "ExecStop")).code, 0);
      assertEquals((await inspect(name)).State.Running, false);
      assertEquals(pidIn(pidFileOf(plain)), undefined, "no pid file once the supervisor ended");
      assertEquals((await runUnitLine(plain, "ExecStart")).code, 0);
      const started = await supervisorOf();
      assertEquals(started.c.State.Running, true);
      assertEquals(started.c.Id, id);
      // The pid file names the live supervisor, the process systemd follows.
      assertEquals(pidIn(pidFileOf(plain)), started.supervisor);
      assertOk(alive(started.supervisor));
      assertEquals((await runUnitLine(plain, "ExecStop")).code, 0);
      assertEquals((await runUnitLine(plain, "ExecStopPost")).code, 0);
      assertEquals((await inspect(name)).State.Running, false);

      // --new: the unit creates the container from its recorded command line, removes it at stop.
      const fresh = await verified(
        await ok(["generate", "systemd", "--new", "--name", "-t", "3", name]),
        `container-${name}-new.service`,
      );
      assertMatch(fresh, /^TimeoutStopSec=63$/m);
      assertEquals((await runUnitLine(fresh, "ExecStartPre")).code, 0);
      assertEquals((await t(["inspect", name])).code, 1, "ExecStartPre removed the old one");
      const run = await runUnitLine(fresh, "ExecStart");
      assertEquals(run.code, 0, run.stderr);
      const made = await supervisorOf();
      assertOk(made.c.Id !== id, "a new container");
      assertEquals(made.c.State.Running, true);
      assertOk(made.c.Config.Env.includes("MSG=50% of $HOME"), made.c.Config.Env.join(" "));
      assertEquals(made.c.Config.Labels, { k: "v w" });
      await until("its first line", async () => (await ok(["logs", name])) === "50% of $HOME\n");
      assertEquals(pidIn(pidFileOf(fresh)), made.supervisor);
      assertEquals((await runUnitLine(fresh, "ExecStop")).code, 0);
      assertEquals((await inspect(name)).State.Running, false);
      assertEquals((await runUnitLine(fresh, "ExecStopPost")).code, 0);
      assertEquals((await t(["inspect", name])).code, 1, "ExecStopPost removed it");

      // Without --name the unit is named after the id; a bad policy is refused.
      await ok(["create", "--name", name, "busybox", "true"]);
      const byId = await ok(["generate", "systemd", name]);
      assertMatch(byId, /^# container-[0-9a-f]{64}\.service$/m);
      const bad = await t(["generate", "systemd", "--restart-policy", "sometimes", name]);
      assertOk(bad.code !== 0 && bad.stderr.includes("not a valid restart policy"), bad.stderr);
    } finally {
      await t(["rm", "-f", name]);
      await Deno.remove(dir, { recursive: true });
    }
  },
});
