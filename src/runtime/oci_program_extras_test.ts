import { assertEquals, assertOk } from "../../tests/assert.ts";
import type { OciChildPlan } from "./oci_program.ts";
import { buildOciProgram } from "./oci_program.ts";
import { adjustOciProgram } from "./oci_program_extras.ts";

const plan = {
  rootfs: "/b/rootfs",
  readonlyRoot: false,
  noPivot: false,
  mounts: { mounts: [], devpts: false, devices: [] },
  joins: [{ fd: 9, type: 0x40000000, what: "net" }],
  newUser: true,
  newCgroup: true,
  newNetwork: false,
  newUts: false,
  sysctls: [],
  masked: [],
  readonlyPaths: [],
  cwd: "/",
  rlimits: [],
  seccompLate: false,
  noNewPrivileges: false,
  uid: 0,
  gid: 0,
  groups: [],
  umask: 0o022,
  caps: { bounding: [], effective: [], permitted: [], inheritable: [], ambient: [] },
  lastCap: 40,
  syncFd: 10,
  closeFds: [11],
  statusFd: 13,
  fifoDirFd: 7,
  preserveFds: 0,
  argv: ["sh"],
  env: [],
  candidates: ["/bin/sh"],
} as unknown as OciChildPlan;

Deno.test("adjustOciProgram: dumpable until release or execve; the time namespace after the others", () => {
  const built = (o: Parameters<typeof adjustOciProgram>[1], p: Partial<OciChildPlan> = {}) => {
    const ops = buildOciProgram({ ...plan, ...p });
    adjustOciProgram(ops, o);
    return ops.map((op) => op.what);
  };
  const asRoot = built({});
  assertEquals(asRoot[0], "make the process non-dumpable");
  assertEquals(asRoot.includes("unshare the time namespace"), false);
  const sync = built({ dumpableUntil: "sync", newTime: true });
  assertEquals(sync.filter((w) => w === "make the process non-dumpable").length, 1);
  assertEquals(
    sync.indexOf("make the process non-dumpable"),
    sync.indexOf("close the sync pipe") + 1,
  );
  const time = sync.indexOf("unshare the time namespace");
  assertOk(time > sync.indexOf("become uid 0 in the user namespace"));
  assertOk(time > sync.indexOf("join the net namespace"));
  assertEquals(time, sync.indexOf("unshare the cgroup namespace") + 1);
  const exec = built({ dumpableUntil: "exec" }, { setgroupsDenied: true });
  assertEquals(exec.includes("make the process non-dumpable"), false);
  assertEquals(exec.includes("set supplementary groups"), false);
});
