/**
 * tsbox's OCI runtime under containerd (root; Debian's containerd 1.6 started by the test on its
 * own socket, root and state dirs, tests/containerd.ts). containerd's runc shim
 * (io.containerd.runc.v2) calls the runtime that `ctr run --runc-binary` names, with
 * `--runc-root` under the test's dir: busybox pulled from the test registry runs with its exit
 * code; a detached task is exec'd into (foreground and detached execs), listed (`ctr task ls`,
 * `ctr task ps`), paused and resumed, killed and deleted; afterwards no mount, process, cgroup,
 * shim socket or runtime state is left. A create that fails (a command the image lacks) brings
 * the runtime's error message to ctr and leaves nothing either. (`ctr run -t`:
 * oci_containerd_tty_test.ts.)
 *
 * The runtime is tsbox's (`tests/runc_bin.ts`); `TSBOX_TEST_RUNC=/usr/sbin/runc` runs the same
 * test against runc, to check the test itself.
 */
import { assertEquals, assertOk, assertStringIncludes } from "./assert.ts";
import {
  argvOnceExeced,
  type Containerd,
  nothingLeft,
  settledLeftovers,
  startContainerd,
} from "./containerd.ts";
import { fixtureRegistry } from "./fixtures/images.ts";
import { runcBinary } from "./runc_bin.ts";

const isRoot = Deno.uid() === 0;

/** `ctr task ls` as rows of TASK, PID, STATUS. */
async function tasks(h: Containerd): Promise<{ id: string; pid: number; status: string }[]> {
  const r = await h.ctr(["task", "ls"]);
  assertEquals(r.code, 0, r.stderr);
  return r.stdout.trim().split("\n").slice(1).filter(Boolean).map((l) => {
    const [id, pid, status] = l.trim().split(/\s+/);
    return { id, pid: Number(pid), status };
  });
}

async function waitForStatus(h: Containerd, id: string, status: string): Promise<void> {
  let seen = "";
  for (let i = 0; i < 200; i++) {
    seen = (await tasks(h)).find((t) => t.id === id)?.status ?? "(no task)";
    if (seen === status) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`task ${id} is ${seen}, never ${status}`);
}

/** Whether the cgroup of `pid` is frozen: v1's freezer.state, or v2's cgroup.events. */
function frozen(pid: number): boolean {
  const lines = Deno.readTextFileSync(`/proc/${pid}/cgroup`).trim().split("\n");
  const v1 = lines.map((l) => l.split(":")).find(([, c]) => c.split(",").includes("freezer"));
  if (v1) {
    const state = Deno.readTextFileSync(`/sys/fs/cgroup/freezer${v1[2]}/freezer.state`);
    return state.trim() === "FROZEN";
  }
  const v2 = lines.find((l) => l.startsWith("0::"))!.slice(3);
  return /^frozen 1$/m.test(Deno.readTextFileSync(`/sys/fs/cgroup/unified${v2}/cgroup.events`));
}

function ok(r: { code: number; stderr: string; stdout: string }, what: string): void {
  assertEquals(r.code, 0, `${what}: exit ${r.code}\n${r.stdout}${r.stderr}`);
}

Deno.test({
  name: "containerd's runc shim runs busybox through tsbox's runtime: run, exec, ls, ps, kill",
  ignore: !isRoot,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const fx = await fixtureRegistry();
    const h = await startContainerd();
    try {
      const runtime = await runcBinary(h.dir);
      await h.pull(fx.refs.busybox);
      const image = fx.refs.busybox;

      // Foreground `ctr run --rm`: output and exit code come back through the shim.
      const once = await h.ctr([
        "run",
        "--rm",
        ...h.taskFlags(runtime, "t-ctr-once"),
        image,
        "t-ctr-once",
        "sh",
        "-c",
        // PID 1 of its own PID namespace, in the image's filesystem.
        "echo hello as pid $$; grep -c www-data /etc/passwd; exit 3",
      ]);
      assertEquals(once.code, 3, `ctr run: ${once.stdout}${once.stderr}`);
      assertEquals(once.stdout, "hello as pid 1\n1\n");
      const afterOnce = await settledLeftovers(h);
      assertOk(nothingLeft(afterOnce), `after ctr run --rm: ${JSON.stringify(afterOnce)}`);

      // A command the image lacks: the runtime's error (from its --log JSON) reaches ctr
      // through the shim, and the failed create leaves nothing.
      const bad = await h.ctr([
        "run",
        "--rm",
        ...h.taskFlags(runtime, "t-ctr-bad"),
        image,
        "t-ctr-bad",
        "no-such-command",
      ]);
      assertOk(bad.code !== 0, `ctr run of a missing command: exit 0\n${bad.stdout}`);
      assertStringIncludes(bad.stderr, "OCI runtime create failed");
      assertStringIncludes(bad.stderr, "no-such-command");
      const afterBad = await settledLeftovers(h);
      assertOk(nothingLeft(afterBad), `after a failed create: ${JSON.stringify(afterBad)}`);
      assertEquals((await h.ctr(["containers", "ls", "-q"])).stdout.trim(), "", "--rm removed it");

      // A detached task.
      const id = "t-ctr-task";
      ok(
        await h.ctr(["run", "-d", ...h.taskFlags(runtime, id), image, id, "sleep", "1000"]),
        "ctr run -d",
      );
      const listed = (await tasks(h)).find((t) => t.id === id);
      assertOk(listed, "ctr task ls lists the task");
      assertEquals(listed.status, "RUNNING");
      // Its PID is the host's PID of the container's `sleep`, in the test's cgroup for it.
      assertEquals(await argvOnceExeced(listed.pid, ["sleep", "1000"]), ["sleep", "1000"]);
      const cgroups = Deno.readTextFileSync(`/proc/${listed.pid}/cgroup`);
      assertStringIncludes(cgroups, `${h.cgroupParent}/${id}\n`);

      // What the end checks for is there while the task runs (so that its absence means
      // something): the rootfs mount, shim and container processes, the cgroup, the runtime's
      // state and the shim's socket (no CNI here).
      const { cniResults: _, ...during } = h.leftovers();
      for (const [what, found] of Object.entries(during)) {
        assertOk(
          found.length > 0,
          `no ${what} seen while the task runs: ${JSON.stringify(during)}`,
        );
      }
      assertOk(during.processes.includes(listed.pid), JSON.stringify(during));

      // A foreground exec joins the task's namespaces: `sleep` is PID 1 there.
      const exec = await h.ctr([
        "task",
        "exec",
        "--fifo-dir",
        h.fifoDir,
        "--exec-id",
        "e1",
        id,
        "sh",
        "-c",
        "echo in; tr '\\0' ' ' </proc/1/cmdline; echo; exit 5",
      ]);
      assertEquals(exec.code, 5, `ctr task exec: ${exec.stdout}${exec.stderr}`);
      assertEquals(exec.stdout, "in\nsleep 1000 \n");

      // A detached exec shows in `ctr task ps` (the runtime's `ps`) beside PID 1.
      ok(
        await h.ctr([
          "task",
          "exec",
          "-d",
          "--fifo-dir",
          h.fifoDir,
          "--exec-id",
          "e2",
          id,
          "sleep",
          "999",
        ]),
        "ctr task exec -d",
      );
      const ps = await h.ctr(["task", "ps", id]);
      ok(ps, "ctr task ps");
      const psRows = ps.stdout.trim().split("\n").slice(1).map((l) => l.trim().split(/\s+/));
      assertEquals(psRows.length, 2, ps.stdout);
      assertOk(psRows.some((r) => Number(r[0]) === listed.pid), ps.stdout);
      const execPid = Number(psRows.find((r) => r[1]?.includes("e2"))?.[0]);
      assertOk(execPid > 0, `exec e2 in ctr task ps: ${ps.stdout}`);
      assertEquals(
        await argvOnceExeced(execPid, ["sleep", "999"]),
        ["sleep", "999"],
      );

      // Paused and resumed (the runtime's pause/resume: the task's cgroup frozen, thawed).
      ok(await h.ctr(["task", "pause", id]), "ctr task pause");
      await waitForStatus(h, id, "PAUSED");
      assertOk(frozen(listed.pid), "the task's cgroup is frozen");
      ok(await h.ctr(["task", "resume", id]), "ctr task resume");
      await waitForStatus(h, id, "RUNNING");
      assertOk(!frozen(listed.pid), "the task's cgroup is thawed");

      // Killed, every process of it (`kill --all`; the PID 1 of a namespace ignores SIGTERM
      // without a handler), and deleted.
      ok(await h.ctr(["task", "kill", "--all", "-s", "SIGKILL", id]), "ctr task kill --all");
      await waitForStatus(h, id, "STOPPED");
      ok(await h.ctr(["task", "delete", id]), "ctr task delete");
      ok(await h.ctr(["containers", "rm", id]), "ctr containers rm");
      assertEquals(await tasks(h), []);
      const containers = await h.ctr(["containers", "ls", "-q"]);
      assertEquals(containers.stdout.trim(), "");

      const after = await settledLeftovers(h);
      assertOk(nothingLeft(after), `left behind: ${JSON.stringify(after)}`);
      assertOk(!Deno.readTextFileSync(`/proc/self/mountinfo`).includes(h.dir));
    } finally {
      await h.stop();
    }
    // stop() leaves nothing of the harness either.
    assertOk(!(await Deno.stat(h.dir).then(() => true, () => false)), `${h.dir} removed`);
    assertOk(!Deno.readTextFileSync(`/proc/self/mountinfo`).includes(h.dir));
  },
});
