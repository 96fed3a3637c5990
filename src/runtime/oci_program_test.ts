import { assertEquals, assertOk } from "../../tests/assert.ts";
import { IGNORE_ERROR } from "../../ffi/clone.ts";
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
  syncFd: 3,
  closeFds: [4, 5],
  statusFd: 6,
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
  // Fds from 3 + preserveFds on are marked close-on-exec; the final umask is the spec's.
  const closeRange = ops.find((o) => o.nr === SYS.close_range)!;
  assertEquals(closeRange.args[0], 5);
  assertEquals(ops.filter((o) => o.nr === SYS.umask).map((o) => o.args[0]), [0, 0o027]);
  // Read-only root: a remount of the rootfs before pivot_root.
  assertOk(at("bind /b/rootfs on /b/rootfs") < at("pivot_root"));
});

Deno.test("the ready record is what the parent decodes as op index -2", () => {
  const rec = readyRecord();
  assertEquals(rec.length, 16);
  assertEquals(Number(new DataView(rec.buffer).getBigInt64(0, true)), READY_OP_INDEX);
});
