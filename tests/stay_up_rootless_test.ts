/**
 * Services that stay up, rootless (issue 24): as a throwaway user with a subordinate id range,
 * the runroot is `$XDG_RUNTIME_DIR/tsbox/<hash>`; a killed supervisor of an `always` container
 * brings it back with no command typed; a simulated reboot of that user (every process of the
 * user and its id range killed, the runroot removed) is reset by the first commands, once, and
 * the shipped boot unit's `system boot`, run as the user, starts what the policy table says (the
 * unit passes `systemd-analyze --user verify`); `generate systemd` gives a unit
 * for `systemctl --user` that `systemd-analyze --user verify` accepts and whose commands, run by
 * hand as the user, do what it promises.
 */
import { dirname } from "node:path";
import { assertEquals, assertMatch, assertOk } from "./assert.ts";
import { fixtureRegistry } from "./fixtures/images.ts";
import { mountsUnder } from "./cleanup.ts";
import { userNamespacesAllowed } from "../src/runtime/rootless.ts";
import { addRange, asUser, ok, type TestUser, withUser } from "./rootless_user.ts";
import {
  alive,
  comm,
  hasSystemdAnalyze,
  isRoot,
  type RunAs,
  runUnitLine,
  stat,
  until,
  verifyUnit,
} from "./stay_up.ts";

const userns = userNamespacesAllowed();
const MAIN = new URL("../main.ts", import.meta.url).pathname;
const BOOT_UNIT = new URL("../contrib/systemd/tsbox-boot.service", import.meta.url).pathname;

/** Real uid of a process (the first field of `Uid:` in its status). */
function uidOf(pid: number): number | undefined {
  try {
    const m = Deno.readTextFileSync(`/proc/${pid}/status`).match(/^Uid:\s+(\d+)/m);
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** Live processes running as `uid` or as one of the `count` ids from `start` (its range). */
function processesOf(uid: number, start: number, count: number): number[] {
  const pids: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    const pid = Number(e.name);
    if (!Number.isInteger(pid) || pid === Deno.pid) continue;
    const u = uidOf(pid);
    if (u === undefined || !alive(pid)) continue;
    if (u === uid || (u >= start && u < start + count)) pids.push(pid);
  }
  return pids;
}

/** The command line of a process, NUL-separated as /proc keeps it ("" once it is gone). */
function cmdline(pid: number): string {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/cmdline`);
  } catch {
    return "";
  }
}

/**
 * A reboot as far as the user's containers can tell: every process of the user and of its id
 * range killed with SIGKILL (watchers first, so that none becomes a new supervisor) until none
 * is left, then its runtime directory's `tsbox` removed.
 */
async function simulateUserReboot(u: TestUser, start: number, xdg: string, root: string) {
  let quiet = 0;
  const end = Date.now() + 20_000;
  while (quiet < 3) {
    if (Date.now() > end) throw new Error(`processes of ${u.name} keep coming back`);
    const pids = processesOf(u.uid, start, 65536);
    pids.sort((a, b) => Number(comm(b) === "tsbox-watch") - Number(comm(a) === "tsbox-watch"));
    for (const pid of pids) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch { /* gone */ }
    }
    quiet = pids.length === 0 ? quiet + 1 : 0;
    await new Promise((r) => setTimeout(r, 100));
  }
  // A rootless container's mounts live in its own mount namespace: none is left on the host.
  assertEquals(mountsUnder(root), []);
  await Deno.remove(`${xdg}/tsbox`, { recursive: true });
}

Deno.test({
  name: "rootless: runroot in XDG_RUNTIME_DIR, a killed supervisor, a reboot, units for --user",
  ignore: !isRoot || !userns.allowed,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const { refs } = await fixtureRegistry();
    await withUser(async (u) => {
      const { start } = await addRange(u);
      // What logind makes at login: the user's own runtime directory, mode 0700.
      const xdg = await Deno.makeTempDir({ prefix: "tsbox-xdg-" });
      await Deno.chown(xdg, u.uid, u.gid);
      const env = { XDG_RUNTIME_DIR: xdg };
      const t = (args: string[]) => asUser(u, args, env);
      const okT = async (args: string[]) => ok(await t(args), args.join(" ")).stdout;
      const inspect = async (name: string) => JSON.parse(await okT(["inspect", name]))[0];
      const root = `${u.home}/.local/share/tsbox`;
      try {
        await okT(["pull", refs.busybox]);
        await okT(["tag", refs.busybox, "busybox"]);
        const up = (name: string, policy: string) =>
          okT([
            "run",
            "-d",
            "--name",
            name,
            "--restart",
            policy,
            "busybox",
            "sh",
            "-c",
            "echo up; exec sleep 1000",
          ]);
        const names = ["rl-always", "rl-unless", "rl-stopped", "rl-fail", "rl-no"];
        const policies = ["always", "unless-stopped", "unless-stopped", "on-failure:3", "no"];
        for (let i = 0; i < names.length; i++) await up(names[i], policies[i]);
        await okT(["stop", "-t", "1", "rl-stopped"]);

        // The runroot: one directory for this store under the user's runtime directory, the
        // user's own, holding this boot's id; nothing of it under /run/tsbox.
        const runroots = [...Deno.readDirSync(`${xdg}/tsbox`)].map((e) => e.name);
        assertEquals(runroots.length, 1, runroots.join(" "));
        const runroot = `${xdg}/tsbox/${runroots[0]}`;
        const info = Deno.statSync(runroot);
        assertEquals([info.uid, info.mode! & 0o777], [u.uid, 0o700]);
        assertEquals(
          Deno.readTextFileSync(`${runroot}/boot_id`).trim(),
          Deno.readTextFileSync("/proc/sys/kernel/random/boot_id").trim(),
        );
        assertEquals(
          (() => {
            try {
              Deno.statSync(`/run/tsbox/${runroots[0]}`);
              return true;
            } catch {
              return false;
            }
          })(),
          false,
        );

        // kill -9 of the supervisor of the `always` container: back with no command typed.
        await until("rl-always to log", async () => (await okT(["logs", "rl-always"])) === "up\n");
        const first = await inspect("rl-always");
        const id = first.Id as string;
        const pid = first.State.Pid as number;
        const supervisor = Number(stat(pid)![1]);
        assertEquals(uidOf(supervisor), u.uid);
        assertOk(cmdline(supervisor).includes(id), "PID 1's parent is its supervisor");
        Deno.kill(supervisor, "SIGKILL");
        // Only the kernel is asked: a new `sleep` of the user whose parent supervises this id.
        const again = () =>
          processesOf(u.uid, start, 65536).find((p) =>
            p !== pid && comm(p) === "sleep" && cmdline(Number(stat(p)![1])).includes(id)
          );
        await until("rl-always to run again", () => again() !== undefined, 10_000);
        const back = await inspect("rl-always");
        assertEquals(back.State.Running, true);
        assertOk(back.RestartCount >= 1, `RestartCount ${back.RestartCount}`);
        assertEquals(back.State.Pid, again());
        const ps = await okT(["ps", "--format", "{{.Names}} {{.Status}}"]);
        assertMatch(ps, /^rl-always Up /m);
        assertEquals(
          (await okT(["logs", "rl-always"])).split("\n").filter((l) => l === "up").length,
          2,
        );

        // The user as its systemd runs a unit's commands.
        const as: RunAs = {
          uid: u.uid,
          gid: u.gid,
          home: u.home,
          env: {
            HOME: u.home,
            USER: u.name,
            PATH: `${dirname(Deno.execPath())}:/usr/local/bin:/usr/bin:/bin`,
            DENO_DIR: u.denoDir,
            XDG_RUNTIME_DIR: xdg,
          },
        };
        // A reboot of the user's containers: the first commands reset once.
        await simulateUserReboot(u, start, xdg, root);
        const firsts = await Promise.all(
          [0, 1, 2].map(() => t(["ps", "-a", "--format", "{{.Names}} {{.Status}}"])),
        );
        for (const r of firsts) {
          assertEquals(r.code, 0, r.stderr);
          assertOk(!/ Up /.test(r.stdout), `nothing runs after a reboot:\n${r.stdout}`);
        }
        const resets = Deno.readTextFileSync(`${root}/boot-resets.log`).split("\n")
          .filter((l) => l.includes(" reset "));
        assertEquals(resets.length, 1, resets.join("\n"));
        for (const name of ["rl-always", "rl-unless", "rl-fail", "rl-no"]) {
          assertMatch(firsts[0].stdout, new RegExp(`^${name} Exited \\(255\\) `, "m"));
        }
        assertMatch(firsts[0].stdout, /^rl-stopped Exited \((137|143)\) /m);

        // `system boot` as the shipped boot unit runs it under the user's systemd (README: the
        // `systemctl --user` line), with a launcher of this checkout as the installed tsbox.
        const unit = (await Deno.readTextFile(BOOT_UNIT))
          .replaceAll("/usr/local/bin/tsbox", `${u.home}/tsbox`);
        await Deno.writeTextFile(
          `${u.home}/tsbox`,
          `#!/bin/sh\nexec ${Deno.execPath()} run -A --quiet --cached-only ${MAIN} "$@"\n`,
          { mode: 0o755 },
        );
        await Deno.writeTextFile(`${u.home}/tsbox-boot.service`, unit);
        if (hasSystemdAnalyze) {
          const v = await verifyUnit(`${u.home}/tsbox-boot.service`, true, as);
          assertEquals([v.code, v.stderr], [0, ""], `verify --user the boot unit: ${v.stderr}`);
        }
        const boot = await runUnitLine(unit, "ExecStart", as);
        assertEquals([boot.code, boot.stderr], [0, ""], "the boot unit's ExecStart");
        const started = ["rl-always", "rl-fail", "rl-unless"];
        assertEquals(boot.stdout.trim().split("\n").sort(), started);
        const after = await okT(["ps", "-a", "--format", "{{.Names}} {{.Status}}"]);
        for (const name of started) assertMatch(after, new RegExp(`^${name} Up `, "m"));
        assertMatch(after, /^rl-stopped Exited /m);
        assertMatch(after, /^rl-no Exited \(255\) /m);
        for (const name of started) {
          const c = await inspect(name);
          assertEquals(comm(c.State.Pid), "sleep", `${name} runs`);
          assertEquals(uidOf(c.State.Pid), u.uid, `${name} runs as the user`);
        }
        const twice = ok(await t(["system", "boot"]), "system boot again");
        assertEquals(twice.stdout, "");

        // generate systemd: units for the user's systemd, run by hand as the user.
        for (const fresh of [false, true]) {
          const text = await okT([
            "generate",
            "systemd",
            ...(fresh ? ["--new"] : []),
            "--name",
            "rl-always",
          ]);
          assertMatch(text, /^WantedBy=default\.target$/m);
          const pidFile = text.match(/^PIDFile=(.*)$/m)![1];
          assertEquals(pidFile, `${runroot}/supervisors/rl-always.pid`);
          if (hasSystemdAnalyze) {
            const path = `${u.home}/container-rl-always${fresh ? "-new" : ""}.service`;
            await Deno.writeTextFile(path, text);
            const v = await verifyUnit(path, true, as);
            assertEquals([v.code, v.stderr], [0, ""], `verify --user: ${v.stderr}`);
          }
          const run = async (key: string) => {
            const r = await runUnitLine(text, key, as);
            // A `-` line may fail (ExecStartPre's `rm -f` of a container already removed).
            const mayFail = new RegExp(`^${key}=-`, "m").test(text);
            if (!mayFail) assertEquals(r.code, 0, `${key}: ${r.stderr}`);
          };
          await run("ExecStop");
          assertEquals((await inspect("rl-always")).State.Running, false);
          if (fresh) {
            await run("ExecStopPost");
            assertEquals((await t(["inspect", "rl-always"])).code, 1, "ExecStopPost removed it");
            await run("ExecStartPre");
          }
          await run("ExecStart");
          const c = await inspect("rl-always");
          assertEquals(c.State.Running, true);
          assertEquals(c.Id !== id, fresh, fresh ? "a new container" : "the same container");
          // The pid file names the live supervisor: the process the user's systemd follows.
          const named = Number(Deno.readTextFileSync(pidFile).trim());
          assertEquals(named, Number(stat(c.State.Pid)![1]));
          assertEquals(uidOf(named), u.uid);
        }
      } finally {
        await t(["rm", "-f", "rl-always", "rl-unless", "rl-stopped", "rl-fail", "rl-no"]);
        await Deno.remove(xdg, { recursive: true }).catch(() => {});
      }
    });
  },
});
