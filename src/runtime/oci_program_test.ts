import { assertEquals, assertOk } from "../../tests/assert.ts";
import { IGNORE_ERROR, type Op } from "../../ffi/clone.ts";
import { SYS } from "../../ffi/syscall_numbers.ts";
import { buildOciProgram, type OciChildPlan, READY_OP_INDEX, readyRecord } from "./oci_program.ts";

const plan: OciChildPlan = {
  rootfs: "/b/rootfs",
  readonlyRoot: true,
  noPivot: false,
  mounts: {
    mounts: [{
      destination: "/proc",
      target: "/b/rootfs/proc",
      source: "proc",
      fstype: "proc",
      options: {
        flags: 14,
        bind: false,
        recursive: false,
        propagation: [],
        data: "",
        remountFlags: 0,
        ignored: [],
      },
      create: [],
      createFile: false,
    }],
    devpts: false,
    devices: [],
  },
  joins: [{ fd: 9, type: 0x40000000, what: "net" }],
  newUser: false,
  newCgroup: false,
  newNetwork: false,
  newUts: true,
  hostname: "h",
  sysctls: [],
  masked: [],
  readonlyPaths: [],
  cwd: "/w",
  rlimits: [],
  seccompLate: false,
  noNewPrivileges: true,
  uid: 1000,
  gid: 1000,
  groups: [1000],
  umask: 0o027,
  caps: { bounding: [10], effective: [10], permitted: [10], inheritable: [], ambient: [10] },
  lastCap: 40,
  syncFd: 10,
  closeFds: [11, 12],
  statusFd: 13,
  fifoDirFd: 7,
  preserveFds: 2,
  argv: ["app", "-x"],
  env: ["PATH=/bin"],
  candidates: ["/usr/bin/app", "/bin/app"],
};

Deno.test("the OCI program: join, mount, pivot, identity, then ready, fifo, execve", () => {
  const ops = buildOciProgram(plan);
  const what = ops.map((o) => o.what);
  const at = (w: string) => {
    const i = what.indexOf(w);
    assertOk(i >= 0, `${w} missing in:\n${what.join("\n")}`);
    return i;
  };
  assertEquals(what[0], "make the process non-dumpable");
  // The go-ahead comes before anything else happens in the namespaces.
  assertOk(at("wait for the parent") < at("join the net namespace"));
  assertOk(at("join the net namespace") < at("mount proc on /b/rootfs/proc"));
  assertOk(at("mount proc on /b/rootfs/proc") < at("pivot_root"));
  assertOk(at("pivot_root") < at("set the hostname"));
  assertOk(at("set uid 1000") < at("set capabilities"));
  assertOk(at("set capabilities") < at("raise ambient capability 10"));
  assertOk(at("set no_new_privs") < at("report the container created"));
  // The last ops: ready record, the blocking fifo open, its byte, the PATH candidates.
  assertEquals(what.slice(-5), [
    "report the container created",
    "wait for start (open exec.fifo)",
    "tell start the process runs",
    "execve /usr/bin/app",
    "execve /bin/app",
  ]);
  const fifo = ops[what.indexOf("wait for start (open exec.fifo)")];
  assertEquals([fifo.nr, fifo.args[0]], [SYS.openat, 7]);
  assertEquals(ops.at(-1)!.flags, IGNORE_ERROR);
  // The final umask is the spec's.
  assertEquals(ops.filter((o) => o.nr === SYS.umask).map((o) => o.args[0]), [0, 0o027]);
  // Read-only root: a remount of the rootfs before pivot_root.
  assertOk(at("bind /b/rootfs on /b/rootfs") < at("pivot_root"));
});

/** The fds still open before op `until`, of 0..63 open at the start (close, close_range). */
function openFdsBefore(ops: readonly Op[], until: number): number[] {
  const open = new Set(Array.from({ length: 64 }, (_, i) => i));
  for (const o of ops.slice(0, until)) {
    if (o.nr === SYS.close) open.delete(o.args[0] as number);
    if (o.nr === SYS.close_range) {
      assertEquals(o.args[2], 0, `${o.what}: closes, not only marks close-on-exec`);
      const [lo, hi] = [o.args[0] as number, o.args[1] as number];
      for (const fd of [...open]) if (fd >= lo && fd <= hi) open.delete(fd);
    }
  }
  return [...open].sort((a, b) => a - b);
}

Deno.test("the OCI child closes every runtime fd: setup keeps what it uses, the wait less", () => {
  const ops = buildOciProgram(plan);
  const what = ops.map((o) => o.what);
  // While it sets up: stdio, preserved 3 and 4, the fifo dir 7, the join's 9, status 13.
  assertEquals(openFdsBefore(ops, what.indexOf("join the net namespace")), [
    0,
    1,
    2,
    3,
    4,
    7,
    9,
    13,
  ]);
  // Waiting for start: stdio, preserved, the fifo dir and the status pipe only.
  assertEquals(openFdsBefore(ops, what.indexOf("wait for start (open exec.fifo)")), [
    0,
    1,
    2,
    3,
    4,
    7,
    13,
  ]);
  // With a terminal and a hook pause, their fds stay for the setup too.
  const tty = buildOciProgram({ ...plan, terminal: { socketFd: 20, uid: 0 }, hookSyncFd: 21 });
  const ttyWhat = tty.map((o) => o.what);
  assertEquals(openFdsBefore(tty, ttyWhat.indexOf("free fd 0 for the pty master")), [
    0,
    1,
    2,
    3,
    4,
    7,
    13,
    20,
  ]);
  assertEquals(openFdsBefore(tty, ttyWhat.indexOf("wait for the hooks")), [
    0,
    1,
    2,
    3,
    4,
    7,
    13,
    20,
    21,
  ]);
});

Deno.test("the ready record is what the parent decodes as op index -2", () => {
  const rec = readyRecord();
  assertEquals(rec.length, 16);
  assertEquals(Number(new DataView(rec.buffer).getBigInt64(0, true)), READY_OP_INDEX);
});

Deno.test("tsbox's own start: stdio installed, parent-death signal, no fifo, execve at once", () => {
  const { fifoDirFd: _, ...own } = plan;
  const ops = buildOciProgram({
    ...own,
    preserveFds: 0,
    stdio: ["null", 21, 22],
    parentDeathSignal: 9,
  });
  const what = ops.map((o) => o.what);
  const at = (w: string) => {
    const i = what.indexOf(w);
    assertOk(i >= 0, `${w} missing in:\n${what.join("\n")}`);
    return i;
  };
  // The stdio fds survive the first close of inherited fds: kept until installed.
  const ranges = ops.filter((o) => o.nr === SYS.close_range)
    .map((o) => [o.args[0] as number, o.args[1] as number]);
  const lastClose = ranges.length - ranges.slice().reverse().findIndex(([f]) => f === 3) - 1;
  assertOk(!ranges.slice(0, lastClose).some(([from, to]) => from <= 21 && 22 <= to));
  // After the uid change (which clears the death signal), before the last close and execve.
  assertOk(at(`set uid 1000`) < at("set the parent-death signal"));
  assertOk(at("set the parent-death signal") < at("install /dev/null as fd 0"));
  assertOk(at("install fd 21 as fd 1") < at("install fd 22 as fd 2"));
  assertOk(at("install fd 22 as fd 2") < what.lastIndexOf("close fds from 14"));
  assertEquals(what.filter((w) => /fifo|report the container created/.test(w)), []);
  assertEquals(ops.at(-1)!.nr, SYS.execve);
});
