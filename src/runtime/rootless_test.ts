import { join } from "node:path";
import { assertEquals, assertOk, assertRejects, assertThrows } from "../../tests/assert.ts";
import { SYS } from "../../ffi/syscall_numbers.ts";
import { UsageError } from "../errors.ts";
import type { Spec } from "../oci/spec.ts";
import { planMounts } from "./oci_mounts.ts";
import { buildOciProgram, type OciChildPlan } from "./oci_program.ts";
import { CgroupError } from "./cgroups.ts";
import {
  defaultRoot,
  isRootless,
  limitFlags,
  newIdMapArgs,
  NoCgroup,
  rootlessCgroup,
  rootlessMapping,
  rootlessSpec,
  runtimeDir,
  userNamespacesAllowed,
} from "./rootless.ts";

Deno.test("defaultRoot: root keeps /var/lib/tsbox, users get XDG_DATA_HOME or ~/.local/share", () => {
  assertEquals(defaultRoot(0, { HOME: "/root" }), "/var/lib/tsbox");
  assertEquals(defaultRoot(1000, { HOME: "/home/u" }), "/home/u/.local/share/tsbox");
  assertEquals(
    defaultRoot(1000, { HOME: "/home/u", XDG_DATA_HOME: "/data/u" }),
    "/data/u/tsbox",
  );
  // A relative XDG_DATA_HOME is invalid by the spec and ignored.
  assertEquals(
    defaultRoot(1000, { HOME: "/home/u", XDG_DATA_HOME: "rel" }),
    "/home/u/.local/share/tsbox",
  );
  assertOk(isRootless(1000) && !isRootless(0));
});

Deno.test("runtimeDir: XDG_RUNTIME_DIR/tsbox, else a private dir in /tmp that must be ours", async () => {
  const xdg = await Deno.makeTempDir();
  try {
    const uid = Deno.uid()!;
    const fake = uid === 0 ? 4242 : uid;
    const dir = runtimeDir(fake, { XDG_RUNTIME_DIR: xdg });
    assertEquals(dir, join(xdg, "tsbox"));
    assertOk(Deno.statSync(dir).isDirectory);
    if (uid === 0) {
      // /tmp/tsbox-<uid> exists but belongs to root, not to uid 4242: refused.
      const planted = `/tmp/tsbox-${fake}`;
      Deno.mkdirSync(planted, { recursive: true, mode: 0o700 });
      try {
        assertThrows(() => runtimeDir(fake, {}), Error, "not a private directory");
        Deno.chownSync(planted, fake, fake);
        assertEquals(runtimeDir(fake, {}), planted);
        Deno.chmodSync(planted, 0o755);
        assertThrows(() => runtimeDir(fake, {}), Error, "not a private directory");
      } finally {
        Deno.removeSync(planted, { recursive: true });
      }
    }
  } finally {
    await Deno.remove(xdg, { recursive: true });
  }
});

Deno.test("rootlessMapping: the user as 0, then every subordinate range of the user", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const files = { subuid: join(dir, "subuid"), subgid: join(dir, "subgid") };
    Deno.writeTextFileSync(
      files.subuid,
      "other:100000:65536\nalice:200000:65536\n# comment\n1000:300000:1000\nbad:line\n",
    );
    Deno.writeTextFileSync(files.subgid, "other:100000:65536\n");
    const m = rootlessMapping({ uid: 1000, gid: 1000, name: "alice" }, files);
    assertEquals(m.mapping.uid, [
      { inside: 0, outside: 1000, count: 1 },
      { inside: 1, outside: 200000, count: 65536 },
      { inside: 65537, outside: 300000, count: 1000 },
    ]);
    assertEquals(m.mapping.gid, [{ inside: 0, outside: 1000, count: 1 }]);
    assertEquals([m.subUids, m.subGids], [true, false]);
    assertEquals(newIdMapArgs(77, m.mapping.uid), [
      "77",
      "0",
      "1000",
      "1",
      "1",
      "200000",
      "65536",
      "65537",
      "300000",
      "1000",
    ]);
    const none = rootlessMapping({ uid: 5, gid: 6 }, {
      subuid: join(dir, "missing"),
      subgid: join(dir, "missing"),
    });
    assertEquals(none.mapping, {
      uid: [{ inside: 0, outside: 5, count: 1 }],
      gid: [{ inside: 0, outside: 6, count: 1 }],
    });
    assertEquals([none.subUids, none.subGids], [false, false]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("userNamespacesAllowed reads Debian's switch and the namespace limit", () => {
  const files = (clone: string, max: string) => (p: string) =>
    p.endsWith("unprivileged_userns_clone") ? clone : p.endsWith("max_user_namespaces") ? max : "";
  assertEquals(userNamespacesAllowed(files("", "1000")).allowed, true);
  assertEquals(userNamespacesAllowed(files("1\n", "1000\n")).allowed, true);
  assertEquals(userNamespacesAllowed(files("0\n", "1000")).allowed, false);
  assertEquals(userNamespacesAllowed(files("", "0\n")).reason, "user.max_user_namespaces is 0");
});

Deno.test("rootlessCgroup: none where the user may not write one; limits then refused", async () => {
  const denied = () =>
    Promise.reject(new CgroupError("/sys/fs/cgroup/x", new Deno.errors.PermissionDenied("no")));
  const said: string[] = [];
  const cg = await rootlessCgroup({}, denied, (m) => said.push(m));
  assertOk(cg instanceof NoCgroup);
  assertEquals(await cg.pids(), []);
  const err = await assertRejects(
    () => rootlessCgroup({ memory: 1 << 25, pidsLimit: 10 }, denied, (m) => said.push(m)),
    UsageError,
  );
  assertOk(err.message.includes("--memory, --pids-limit"), err.message);
  // Warned once per process, however many containers start.
  await rootlessCgroup({}, denied, (m) => said.push(m));
  assertEquals(said.length, 1);
  // Any other failure is not hidden.
  await assertRejects(
    () => rootlessCgroup({}, () => Promise.reject(new Error("EBUSY")), () => {}),
    Error,
    "EBUSY",
  );
  const real = new NoCgroup();
  assertEquals(await rootlessCgroup({ memory: 1 }, () => Promise.resolve(real)), real);
  assertEquals(limitFlags({ cpus: 0.5, cpuShares: 2 }), ["--cpus", "--cpu-shares"]);
});

const SPEC: Spec = {
  ociVersion: "1.2.0",
  process: { user: { uid: 0, gid: 0 }, args: ["sh"], cwd: "/" },
  root: { path: "/r/rootfs" },
  mounts: [
    { destination: "/proc", type: "proc", source: "proc" },
    { destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "ro"] },
    {
      destination: "/dev/pts",
      type: "devpts",
      source: "devpts",
      options: ["newinstance", "mode=0620", "gid=5"],
    },
  ],
  linux: { namespaces: [{ type: "mount" }, { type: "pid" }] },
};

const MAPS = (subGids: boolean) => ({
  mapping: {
    uid: [{ inside: 0, outside: 1000, count: 1 }],
    gid: [{ inside: 0, outside: 1000, count: 1 }],
  },
  subUids: false,
  subGids,
});

Deno.test("a rootless spec: a user namespace, the host's /sys bound, devpts without gid 5", () => {
  const s = rootlessSpec(SPEC, MAPS(false));
  assertEquals(s.linux.namespaces?.at(-1), { type: "user" });
  assertEquals(s.linux.uidMappings, [{ containerID: 0, hostID: 1000, size: 1 }]);
  // Host network (no network namespace): sysfs may not be mounted, the host's is bound.
  assertEquals(s.mounts?.[1], {
    destination: "/sys",
    type: "bind",
    source: "/sys",
    options: ["rbind", "nosuid", "ro"],
  });
  assertEquals(s.mounts?.[2].options, ["newinstance", "mode=0620"]);
  // With subordinate gids and a network namespace of its own, both stay as written.
  const full = rootlessSpec(
    { ...SPEC, linux: { namespaces: [...SPEC.linux.namespaces!, { type: "network" }] } },
    MAPS(true),
  );
  assertEquals(full.mounts?.slice(1), SPEC.mounts?.slice(1));
});

Deno.test("a rootless child program mounts its overlay first and skips setgroups", () => {
  const plan: OciChildPlan = {
    rootfs: "/r/rootfs",
    readonlyRoot: false,
    noPivot: false,
    mounts: planMounts("/r/rootfs", [], [], "/c", { sourceIsDir: () => true }),
    joins: [],
    newUser: true,
    newCgroup: true,
    newNetwork: false,
    newUts: true,
    hostname: "abc",
    sysctls: [],
    masked: [],
    readonlyPaths: [],
    cwd: "/",
    rlimits: [],
    seccompLate: false,
    noNewPrivileges: false,
    uid: 0,
    gid: 0,
    groups: [0, 10],
    umask: 0o022,
    caps: { bounding: [], effective: [], permitted: [], inheritable: [], ambient: [] },
    lastCap: 40,
    syncFd: 10,
    closeFds: [],
    statusFd: 11,
    preserveFds: 0,
    argv: ["sh"],
    env: [],
    candidates: ["/bin/sh"],
    overlay: { lowerBase: "/r/l", options: "lowerdir=a:b,upperdir=/u,workdir=/w,userxattr" },
    setgroupsDenied: true,
  };
  const ops = buildOciProgram(plan);
  const whats = ops.map((o) => o.what);
  const at = (w: string) => whats.indexOf(w);
  assertOk(at("chdir /r/l") > 0, whats.join("\n"));
  assertOk(at("chdir /r/l") < at("mount overlay on /r/rootfs"));
  assertOk(at("mount overlay on /r/rootfs") < at("bind /r/rootfs on /r/rootfs"));
  assertEquals(ops.filter((o) => o.nr === SYS.setgroups), []);
  // No fifo: the command runs at once.
  assertEquals(whats.filter((w) => /exec\.fifo/.test(w)), []);
  const full = buildOciProgram({ ...plan, setgroupsDenied: false });
  assertEquals(full.filter((o) => o.nr === SYS.setgroups).length, 1);
});
