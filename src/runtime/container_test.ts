/**
 * The host side of a start (container.ts) on the recording host (host_fake.ts), without root:
 * the order of the host calls, what PID 1's program is given (built from the container's
 * config.json as `tsbox runc` builds it), and that a failing step undoes everything done
 * before it.
 */
import { assertEquals, assertOk as assert, assertRejects } from "../../tests/assert.ts";
import { SyscallError } from "../../ffi/errors.ts";
import { ExecError, UsageError } from "../errors.ts";
import { GROUP_ADD_ANNOTATION, USER_ERROR_ANNOTATION } from "./annotations.ts";
import { UserError } from "./user.ts";
import type { Spec } from "../oci/spec.ts";
import { Container, type StartOptions } from "./container.ts";
import { RecordingHost } from "./host_fake.ts";

const ID = "c".repeat(64);
const EPERM = 1;
const ENOENT = 2;

interface Fixture {
  dir: string;
  spec: Spec;
  options: StartOptions;
}

/** A container's config.json as the engine writes it (proc, sys, dev, etc files; limits). */
function specIn(dir: string): Spec {
  const nosuid = ["nosuid", "noexec", "nodev"];
  return {
    ociVersion: "1.2.0",
    process: {
      user: { uid: 0, gid: 0, additionalGids: [0] },
      args: ["/bin/sh", "-c", "true"],
      env: ["PATH=/bin"],
      cwd: "/",
    },
    root: { path: `${dir}/c/rootfs`, readonly: false },
    hostname: "box",
    mounts: [
      { destination: "/proc", type: "proc", source: "proc", options: nosuid },
      { destination: "/sys", type: "sysfs", source: "sysfs", options: [...nosuid, "ro"] },
      {
        destination: "/dev",
        type: "tmpfs",
        source: "tmpfs",
        options: ["nosuid", "strictatime", "mode=755", "size=65536k"],
      },
      ...["hostname", "hosts", "resolv.conf"].map((name) => ({
        destination: `/etc/${name}`,
        type: "bind",
        source: `${dir}/c/${name}`,
        options: ["bind"],
      })),
    ],
    linux: {
      namespaces: [
        { type: "pid" },
        { type: "ipc" },
        { type: "uts" },
        { type: "mount" },
        { type: "network" },
        { type: "cgroup" },
      ],
      resources: { memory: { limit: 64 << 20 }, pids: { limit: 20 } },
      rootfsPropagation: "private",
    },
  };
}

async function fixture(): Promise<Fixture> {
  const dir = await Deno.makeTempDir({ prefix: "tsbox-host-" });
  await Deno.mkdir(`${dir}/l/L1`, { recursive: true, mode: 0o755 });
  await Deno.mkdir(`${dir}/l/L2`, { recursive: true, mode: 0o750 });
  const options: StartOptions = {
    id: ID,
    stateDir: `${dir}/c`,
    lowerBase: `${dir}/l`,
    layers: ["L1", "L2"],
    stdio: ["null", "inherit", "inherit"],
  };
  return { dir, spec: specIn(dir), options };
}

/** `spec` with `linux` fields replaced. */
function withLinux(spec: Spec, linux: Partial<Spec["linux"]>): Spec {
  return { ...spec, linux: { ...spec.linux, ...linux } };
}

/** The calls without the fd bookkeeping (pipe, close, read/write of fds). */
function steps(host: RecordingHost, dir: string): string[] {
  return host.calls
    .filter((c) => !/^(pipe|close|read fd|write fd|stat) /.test(c))
    .map((c) => c.replaceAll(dir, "D"));
}

function failWith(call: string, errno: number) {
  return () => new SyscallError(call.split(" ")[0], [], errno);
}

Deno.test("a start mounts, creates the cgroup, clones, joins, releases; wait tears down", async () => {
  const { dir, spec, options } = await fixture();
  const host = new RecordingHost();
  const released: string[] = [];
  const c = await Container.start(spec, {
    ...options,
    beforeRelease: (pid) => {
      released.push(`beforeRelease ${pid}`, ...host.calls.slice(-1));
      return Promise.resolve();
    },
  }, host);
  assertEquals(c.pid, 4242);
  assertEquals(c.rootfs, `${dir}/c/rootfs`);
  assertEquals(steps(host, dir), [
    "mkdir D/c/upper 700",
    "mkdir D/c/work 700",
    "mkdir D/c/rootfs 700",
    // The overlay's root gets the top layer's mode and owner.
    "chmod D/c/upper 750",
    `chown D/c/upper ${Deno.uid()}:${Deno.gid()}`,
    // Top layer first.
    "mount overlay on D/c/rootfs lower=L2:L1",
    "write D/c/hostname 644",
    "write D/c/hosts 644",
    "write D/c/resolv.conf 644",
    `cgroup create ${ID} memory=67108864,pidsLimit=20`,
    "clone NEWNS|NEWUTS|NEWIPC|NEWPID|NEWNET",
    "cgroup join 4242",
  ]);
  // The hook runs once PID 1 is in its cgroup, before the sync byte releases it.
  assertEquals(released, ["beforeRelease 4242", "cgroup join 4242"]);
  const sync = host.calls.indexOf("cgroup join 4242");
  assert(/^write fd \d+ 1 bytes$/.test(host.calls[sync + 1]), host.calls[sync + 1]);
  // The etc files were written in the state dir and their targets made in the rootfs.
  assertEquals(await Deno.readTextFile(`${dir}/c/hostname`), "box\n");
  assert((await Deno.stat(`${dir}/c/rootfs/etc/hosts`)).isFile);
  // PID 1's program sets the hostname, pivots into the rootfs and ends in execve.
  const whats = host.programs[0].map((o) => o.what);
  assert(whats.some((w) => /hostname/.test(w)), whats.join("\n"));
  assert(whats.some((w) => /pivot_root/.test(w)), whats.join("\n"));
  // Every fd of the handshake is closed once the start returns.
  assertEquals(host.openFds(), []);

  const before = host.calls.length;
  const exit = await c.wait();
  assertEquals(exit, { exitCode: 0, signal: undefined, oomKilled: false });
  assertEquals(host.calls.slice(before).map((x) => x.replaceAll(dir, "D")), [
    "wait 4242",
    `cgroup oom ${ID}`,
    `cgroup remove ${ID}`,
    "unmount D/c/rootfs",
  ]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a failing overlay mount leaves no cgroup and no process", async () => {
  const { dir, spec, options } = await fixture();
  const host = new RecordingHost({ failOn: /^mount overlay/, error: failWith("mount", EPERM) });
  await assertRejects(() => Container.start(spec, options, host), SyscallError);
  const after = steps(host, dir).slice(steps(host, dir).findIndex((c) => c.startsWith("mount")));
  assertEquals(after, ["mount overlay on D/c/rootfs lower=L2:L1"]);
  assertEquals(host.programs, []);
  assertEquals(host.openFds(), []);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a failing cgroup write unmounts the rootfs before anything is cloned", async () => {
  const { dir, spec, options } = await fixture();
  const host = new RecordingHost({ failOn: /^cgroup create/, error: failWith("write", EPERM) });
  await assertRejects(() => Container.start(spec, options, host), SyscallError);
  const tail = steps(host, dir).slice(-2);
  assertEquals(tail, [`cgroup create ${ID} memory=67108864,pidsLimit=20`, "unmount D/c/rootfs"]);
  assertEquals(host.programs, []);
  assertEquals(host.openFds(), []);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a failing cgroup join kills and reaps PID 1, removes the cgroup, unmounts", async () => {
  const { dir, spec, options } = await fixture();
  const host = new RecordingHost({ failOn: /^cgroup join/, error: failWith("write", EPERM) });
  let hooks = 0;
  await assertRejects(
    () =>
      Container.start(spec, {
        ...options,
        beforeRelease: () => Promise.resolve(void hooks++),
        afterExit: () => Promise.resolve(void hooks++),
      }, host),
    SyscallError,
  );
  assertEquals(steps(host, dir).slice(-5), [
    "cgroup join 4242",
    "kill 4242 9",
    "wait 4242",
    `cgroup remove ${ID}`,
    "unmount D/c/rootfs",
  ]);
  // Neither hook ran: the failure came before the release.
  assertEquals(hooks, 0);
  // The sync byte was never written: PID 1 never ran its program.
  assert(!host.calls.some((c) => /^write fd \d+ 1 bytes$/.test(c)));
  assertEquals(host.openFds(), []);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a rejected beforeRelease runs afterExit and undoes the start", async () => {
  const { dir, spec, options } = await fixture();
  const host = new RecordingHost();
  const seen: string[] = [];
  await assertRejects(
    () =>
      Container.start(spec, {
        ...options,
        beforeRelease: () => Promise.reject(new Error("port 80 taken")),
        afterExit: () => Promise.resolve(void seen.push(host.calls.at(-1)!)),
      }, host),
    Error,
    "port 80 taken",
  );
  // afterExit runs after PID 1 is gone, before the cgroup and rootfs go.
  assertEquals(seen, ["wait 4242"]);
  assertEquals(steps(host, dir).slice(-4), [
    "kill 4242 9",
    "wait 4242",
    `cgroup remove ${ID}`,
    "unmount D/c/rootfs",
  ]);
  assertEquals(host.openFds(), []);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a failed execve is docker's 127, after PID 1 is reaped and the start undone", async () => {
  const { dir, spec, options } = await fixture();
  const host = new RecordingHost({ programFailure: () => ({ opIndex: -1, errno: ENOENT }) });
  const err = await assertRejects(() => Container.start(spec, options, host), ExecError);
  assertEquals((err as ExecError).exitCode, 127);
  assertEquals(steps(host, dir).slice(-3), [
    "wait 4242",
    `cgroup remove ${ID}`,
    "unmount D/c/rootfs",
  ]);
  // Reaped once by the status check: no kill of a pid that may be reused.
  assert(!host.calls.includes("kill 4242 9"));
  assertEquals(host.openFds(), []);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a failing program step names the step", async () => {
  const { dir, spec, options } = await fixture();
  const host = new RecordingHost({
    programFailure: (ops) => ({
      opIndex: ops.findIndex((o) => /pivot_root/.test(o.what)),
      errno: 1,
    }),
  });
  await assertRejects(() => Container.start(spec, options, host), Error, "pivot_root");
  assertEquals(steps(host, dir).slice(-2), [`cgroup remove ${ID}`, "unmount D/c/rootfs"]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("--userns-remap: idmapped layers, owner mapped, /dev premounted, maps before release", async () => {
  const { dir, spec, options } = await fixture();
  const host = new RecordingHost();
  const userns = withLinux(spec, {
    namespaces: [...spec.linux.namespaces!, { type: "user" }],
    uidMappings: [{ containerID: 0, hostID: 100000, size: 65536 }],
    gidMappings: [{ containerID: 0, hostID: 100000, size: 65536 }],
  });
  await Container.start(userns, options, host);
  const s = steps(host, dir);
  const uid = 100000 + (Deno.uid() ?? 0), gid = 100000 + (Deno.gid() ?? 0);
  assertEquals(s.slice(3, 8), [
    "chmod D/c/upper 750",
    `chown D/c/upper ${uid}:${gid}`,
    "idmap 2 layers under D/c/idmap",
    "mount overlay on D/c/rootfs lower=1:0",
    // The overlay holds its own references: the idmapped mounts go at once.
    "detach idmapped layers under D/c/idmap",
  ]);
  // /dev's tmpfs is mounted by the parent; PID 1 keeps its host ids until its identity.
  assert(s.includes("mount tmpfs on D/c/rootfs/dev mode=755,size=65536k"), s.join("\n"));
  const program = host.programs[0].map((o) => o.what);
  assertEquals(program.filter((w) => w.startsWith("mount tmpfs on") && w.endsWith("/dev")), []);
  assert(!program.includes("become uid 0 in the user namespace"), program.join("\n"));
  const clone = s.indexOf("clone NEWNS|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET");
  assert(clone > 0, s.join("\n"));
  assertEquals(s.slice(clone + 1, clone + 3), [
    "id maps 4242 uid 0:100000:65536",
    "cgroup join 4242",
  ]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a failing overlay mount with --userns-remap detaches the idmapped layers", async () => {
  const { dir, spec, options } = await fixture();
  const host = new RecordingHost({ failOn: /^mount overlay/, error: failWith("mount", EPERM) });
  const userns = withLinux(spec, {
    namespaces: [...spec.linux.namespaces!, { type: "user" }],
    uidMappings: [{ containerID: 0, hostID: 100000, size: 65536 }],
    gidMappings: [{ containerID: 0, hostID: 100000, size: 65536 }],
  });
  await assertRejects(() => Container.start(userns, options, host), SyscallError);
  assertEquals(steps(host, dir).slice(-2), [
    "mount overlay on D/c/rootfs lower=1:0",
    "detach idmapped layers under D/c/idmap",
  ]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("shared namespaces: joined ones are opened, left out of the clone, closed", async () => {
  const { dir, spec, options } = await fixture();
  const host = new RecordingHost();
  const joined = withLinux(spec, {
    namespaces: [
      { type: "pid", path: "/proc/79/ns/pid" },
      { type: "ipc", path: "/proc/78/ns/ipc" },
      { type: "mount" },
      { type: "network", path: "/proc/77/ns/net" },
    ],
  });
  await Container.start(joined, options, host);
  const s = steps(host, dir);
  assertEquals(s.filter((c) => c.startsWith("open ")), [
    "open /proc/78/ns/ipc",
    "open /proc/77/ns/net",
    "open /proc/79/ns/pid",
  ]);
  // Only a mount namespace of its own; the pid namespace is entered around the clone.
  assert(s.some((c) => /^clone NEWNS pidns=\d+$/.test(c)), s.join("\n"));
  assertEquals(host.openFds(), []);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("-t: the pty master arrives after the execve succeeded and stays open", async () => {
  const { dir, spec, options } = await fixture();
  const host = new RecordingHost();
  const c = await Container.start(spec, { ...options, tty: {} }, host);
  assert(c.terminal !== undefined);
  assertEquals(host.openFds(), [c.terminal]);
  await Deno.remove(dir, { recursive: true });
});

const ROOTLESS = {
  who: { uid: 1000, gid: 1000, name: "user" },
  maps: {
    mapping: {
      uid: [{ inside: 0, outside: 1000, count: 1 }, { inside: 1, outside: 100000, count: 65536 }],
      gid: [{ inside: 0, outside: 1000, count: 1 }, { inside: 1, outside: 100000, count: 65536 }],
    },
    subUids: true,
    subGids: true,
  },
};

Deno.test("rootless: a holder mounts the overlay for the checks, PID 1 mounts its own", async () => {
  const { dir, spec, options } = await fixture();
  const host = new RecordingHost({ rootless: ROOTLESS });
  const c = await Container.start(spec, options, host);
  const s = steps(host, dir);
  assertEquals(s.slice(0, 10), [
    "mkdir D/c/upper 700",
    "mkdir D/c/work 700",
    "mkdir D/c/rootfs 700",
    "chmod D/c/upper 750",
    // Limits that cannot be enforced fail before anything is mounted.
    `cgroup create ${ID} memory=67108864,pidsLimit=20`,
    "hold overlay on D/c/rootfs lower=L2:L1 pid 4242",
    "write D/c/hostname 644",
    "write D/c/hosts 644",
    "write D/c/resolv.conf 644",
    "release holder 4242",
  ]);
  // No host mount: the container's program mounts the overlay itself, with userxattr.
  assert(!s.some((x) => x.startsWith("mount overlay")), s.join("\n"));
  const program = host.programs[0].map((o) => o.what);
  assert(program.some((w) => /overlay/.test(w)), program.join("\n"));
  // Its network helpers run as the user: /proc/PID/ns must stay open to them.
  assert(!program.includes("make the process non-dumpable"), program.join("\n"));
  const clone = s.indexOf("clone NEWNS|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET");
  assert(clone > 0, s.join("\n"));
  assertEquals(s.slice(clone + 1, clone + 3), [
    "rootless maps 4243 newuidmap newgidmap",
    "cgroup join 4243",
  ]);
  assertEquals(c.pid, 4243);
  assertEquals(host.openFds(), []);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("rootless: no writable cgroup and no limits: a warning, and the start goes on", async () => {
  const { dir, spec, options } = await fixture();
  const host = new RecordingHost({
    rootless: ROOTLESS,
    failOn: /^cgroup create/,
    error: () => new Deno.errors.PermissionDenied("Permission denied (os error 13)"),
  });
  const warnings: string[] = [];
  await Container.start(
    withLinux(spec, { resources: undefined }),
    { ...options, warn: (m) => warnings.push(m) },
    host,
  );
  assert(warnings.some((w) => /no writable cgroup/.test(w)), warnings.join("\n"));
  assert(host.calls.some((c) => /^clone /.test(c)));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("rootless: limits without a writable cgroup are refused before anything is mounted", async () => {
  const { dir, spec, options } = await fixture();
  const host = new RecordingHost({
    rootless: ROOTLESS,
    failOn: /^cgroup create/,
    error: () => new Deno.errors.PermissionDenied("Permission denied (os error 13)"),
  });
  await assertRejects(
    () => Container.start(spec, options, host),
    Error,
    "resource limits cannot be enforced",
  );
  assert(!host.calls.some((c) => /^(hold overlay|clone)/.test(c)), host.calls.join("\n"));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("rootless: a failing holder removes the cgroup and reopens work/work", async () => {
  const { dir, spec, options } = await fixture();
  const host = new RecordingHost({
    rootless: ROOTLESS,
    failOn: /^hold overlay/,
    error: () => new Error("mounting the rootfs in a user namespace: EPERM"),
  });
  await assertRejects(() => Container.start(spec, options, host), Error, "mounting the rootfs");
  assertEquals(steps(host, dir).slice(-3), [
    "hold overlay on D/c/rootfs lower=L2:L1 pid 4242",
    `cgroup remove ${ID}`,
    "chmod D/c/work/work 700",
  ]);
  assertEquals(host.programs, []);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("rootless --group-add without subordinate gids, or an unresolvable --user: refused first", async () => {
  const { dir, spec, options } = await fixture();
  const host = new RecordingHost({
    rootless: { ...ROOTLESS, maps: { ...ROOTLESS.maps, subGids: false } },
  });
  const grouped = { ...spec, annotations: { [GROUP_ADD_ANNOTATION]: "wheel" } };
  await assertRejects(
    () => Container.start(grouped, options, host),
    UsageError,
    "--group-add needs subordinate group ids",
  );
  // Without --group-add the same user starts, its membership groups left alone (no setgroups).
  await Container.start(spec, options, host);
  const program = host.programs[0];
  assertEquals(program.filter((o) => o.what === "set supplementary groups"), []);
  const ghost = { ...spec, annotations: { [USER_ERROR_ANNOTATION]: "unable to find user ghost" } };
  const root = new RecordingHost();
  await assertRejects(() => Container.start(ghost, options, root), UserError, "ghost");
  assertEquals(root.calls, []);
  await Deno.remove(dir, { recursive: true });
});
