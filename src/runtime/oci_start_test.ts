/**
 * The host side of `tsbox runc create` (oci_start.ts) on the recording host (host_fake.ts),
 * without root: the order of the host calls around the one handshake of launch.ts (cgroup,
 * clone, id maps, cgroup join, release, the hook pause, the ready record), the command looked
 * up in the container, the console socket, and that a failing step (a mount of the process,
 * a cgroup write, a hook) undoes everything done before it.
 */
import { assertEquals, assertOk as assert, assertRejects } from "../../tests/assert.ts";
import { SyscallError } from "../../ffi/errors.ts";
import { ExecError } from "../errors.ts";
import type { Spec } from "../oci/spec.ts";
import { RecordingHost } from "./host_fake.ts";
import { createOciContainer, type OciCreateOptions } from "./oci_start.ts";
import type { OciRootless } from "./oci_rootless.ts";
import { ContainerStartError } from "./start_error.ts";

const ID = "t-oci";
const EPERM = 1;
const ROOT_FILES = { "/bin/sh": "" };

/** A bundle's config.json as podman writes one (proc, dev, limits, a cgroupsPath). */
function specIn(dir: string): Spec {
  return {
    ociVersion: "1.2.0",
    process: {
      user: { uid: 0, gid: 0 },
      args: ["sh", "-c", "true"],
      env: ["PATH=/usr/bin:/bin"],
      cwd: "/",
      oomScoreAdj: 100,
    },
    root: { path: `${dir}/bundle/rootfs`, readonly: false },
    hostname: "box",
    mounts: [
      { destination: "/proc", type: "proc", source: "proc", options: ["nosuid", "noexec"] },
      {
        destination: "/dev",
        type: "tmpfs",
        source: "tmpfs",
        options: ["nosuid", "strictatime", "mode=755", "size=65536k"],
      },
    ],
    linux: {
      namespaces: [
        { type: "pid" },
        { type: "ipc" },
        { type: "uts" },
        { type: "mount" },
        { type: "network" },
      ],
      cgroupsPath: "/libpod_parent/t-oci",
      resources: { memory: { limit: 64 << 20 }, pids: { limit: 20 } },
    },
  };
}

interface Fixture {
  dir: string;
  options: OciCreateOptions;
}

async function fixture(edit: (spec: Spec) => Spec = (s) => s): Promise<Fixture> {
  const dir = await Deno.makeTempDir({ prefix: "tsbox-oci-host-" });
  await Deno.mkdir(`${dir}/bundle/rootfs/bin`, { recursive: true });
  await Deno.mkdir(`${dir}/state`);
  const options: OciCreateOptions = {
    id: ID,
    bundle: `${dir}/bundle`,
    spec: edit(specIn(dir)),
    stateDir: `${dir}/state`,
    warn: () => {},
  };
  return { dir, options };
}

/** The calls without the fd bookkeeping (pipe, close). */
function steps(host: RecordingHost, dir: string): string[] {
  return host.calls
    .filter((c) => !/^(pipe|close) /.test(c))
    .map((c) => c.replaceAll(dir, "D").replace(/fd \d+/g, "fd N"));
}

function failWith(call: string, errno: number) {
  return () => new SyscallError(call.split(" ")[0], [], errno);
}

Deno.test("runc create: cgroup, clone, join, release, ready on the fifo; the command checked", async () => {
  const { dir, options } = await fixture();
  const host = new RecordingHost({ rootFiles: ROOT_FILES });
  const created = await createOciContainer(options, host);
  assertEquals(created.pid, 4242);
  assertEquals(created.cgroupPath, "/libpod_parent/t-oci");
  assertEquals(created.terminal, undefined);
  assertEquals(steps(host, dir), [
    "cgroup create /libpod_parent/t-oci memory=67108864,pidsLimit=20",
    "open dir D/state",
    "clone NEWNS|NEWUTS|NEWIPC|NEWPID|NEWNET",
    "cgroup join 4242",
    "oom_score_adj 4242 100",
    // The release byte, then the ready record: the process waits on exec.fifo.
    "write fd N 1 bytes",
    "read fd N",
    // The command is looked up through the waiting process's root.
    "open /proc/4242/root",
  ]);
  // The process is left waiting: not killed, not reaped.
  assert(!host.calls.some((c) => /^(kill|wait) /.test(c)), host.calls.join("\n"));
  const whats = host.programs[0].map((o) => o.what);
  const ready = whats.indexOf("report the container created");
  assert(ready > whats.indexOf("set the hostname"), whats.join("\n"));
  assertEquals(whats[ready + 1], "wait for start (open exec.fifo)");
  // No hooks: no pause in the program.
  assertEquals(whats.indexOf("wait for the hooks"), -1);
  // Every fd of the handshake and the state dir's is closed once create returns.
  assertEquals(host.openFds(), []);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("runc create: the hooks run while the process is paused, after release, before ready", async () => {
  const { dir, options } = await fixture();
  const host = new RecordingHost({ rootFiles: ROOT_FILES });
  let hookedAt = -1;
  await createOciContainer({
    ...options,
    hooks: (pid) => {
      hookedAt = host.calls.length;
      host.calls.push(`hooks ${pid}`);
      return Promise.resolve();
    },
  }, host);
  assertEquals(host.calls[hookedAt], "hooks 4242");
  const after = steps(host, dir).slice(steps(host, dir).indexOf("oom_score_adj 4242 100") + 1);
  assertEquals(after, [
    "write fd N 1 bytes", // release
    "read fd N", // the pause record: mounts made
    "hooks 4242",
    "write fd N 1 bytes", // go on
    "read fd N", // ready
    "open /proc/4242/root",
  ]);
  // The pause sits after the mounts and before pivot_root.
  const whats = host.programs[0].map((o) => o.what);
  const pause = whats.indexOf("wait for the hooks");
  assert(pause > whats.findIndex((w) => /proc/.test(w) && /mount/.test(w)), whats.join("\n"));
  assert(pause < whats.findIndex((w) => /pivot_root/.test(w)), whats.join("\n"));
  assertEquals(host.openFds(), []);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("runc create: a failing mount of the process names it; the process reaped, cgroup removed", async () => {
  const { dir, options } = await fixture();
  const host = new RecordingHost({
    rootFiles: ROOT_FILES,
    programFailure: (ops) => ({
      opIndex: ops.findIndex((o) => /mount/.test(o.what) && /\/proc/.test(o.what)),
      errno: EPERM,
    }),
  });
  let hooked = false;
  const err = await assertRejects(
    () =>
      createOciContainer({
        ...options,
        hooks: () => (hooked = true, Promise.resolve()),
      }, host),
    ContainerStartError,
  );
  assert(/proc/.test(err.message) && /EPERM/.test(err.message), err.message);
  // The mount came before the pause: the hooks never ran.
  assertEquals(hooked, false);
  assertEquals(steps(host, dir).slice(-3), [
    "read fd N",
    "wait 4242",
    "cgroup remove /libpod_parent/t-oci",
  ]);
  assertEquals(host.openFds(), []);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("runc create: a failing cgroup join kills and reaps the process, removes the cgroup", async () => {
  const { dir, options } = await fixture();
  const host = new RecordingHost({
    rootFiles: ROOT_FILES,
    failOn: /^cgroup join/,
    error: failWith("write", EPERM),
  });
  await assertRejects(() => createOciContainer(options, host), SyscallError);
  assertEquals(steps(host, dir), [
    "cgroup create /libpod_parent/t-oci memory=67108864,pidsLimit=20",
    "open dir D/state",
    "clone NEWNS|NEWUTS|NEWIPC|NEWPID|NEWNET",
    "cgroup join 4242",
    // Never released: killed where it waits on the sync pipe.
    "kill 4242 9",
    "wait 4242",
    "cgroup remove /libpod_parent/t-oci",
  ]);
  assertEquals(host.openFds(), []);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("runc create: a failing cgroup creation leaves nothing, nothing cloned", async () => {
  const { dir, options } = await fixture();
  const host = new RecordingHost({ failOn: /^cgroup create/, error: failWith("write", EPERM) });
  await assertRejects(() => createOciContainer(options, host), SyscallError);
  assertEquals(steps(host, dir), [
    "cgroup create /libpod_parent/t-oci memory=67108864,pidsLimit=20",
  ]);
  assertEquals(host.programs, []);
  assertEquals(host.openFds(), []);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("runc create: a failing hook kills the paused process and removes the cgroup", async () => {
  const { dir, options } = await fixture();
  const host = new RecordingHost({ rootFiles: ROOT_FILES });
  await assertRejects(
    () =>
      createOciContainer({
        ...options,
        hooks: () => Promise.reject(new Error("createContainer hook failed")),
      }, host),
    Error,
    "createContainer hook failed",
  );
  assertEquals(steps(host, dir).slice(-5), [
    "write fd N 1 bytes",
    "read fd N",
    "kill 4242 9",
    "wait 4242",
    "cgroup remove /libpod_parent/t-oci",
  ]);
  assertEquals(host.openFds(), []);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("runc create: a command missing in the container is 127; the waiting process undone", async () => {
  const { dir, options } = await fixture();
  const host = new RecordingHost();
  await assertRejects(
    () => createOciContainer(options, host),
    ExecError,
    'exec: "sh": executable file not found in $PATH',
  );
  assertEquals(steps(host, dir).slice(-4), [
    "open /proc/4242/root",
    "kill 4242 9",
    "wait 4242",
    "cgroup remove /libpod_parent/t-oci",
  ]);
  assertEquals(host.openFds(), []);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("runc create: a command that is not executable is 126", async () => {
  const { dir, options } = await fixture();
  const host = new RecordingHost({ rootModes: { "/bin/sh": 0o100644 } });
  const err = await assertRejects(() => createOciContainer(options, host), ExecError);
  assertEquals(err.exitCode, 126);
  assertEquals(host.openFds(), []);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("runc create: joined namespaces by path, a user namespace mapped before the release", async () => {
  const { dir, options } = await fixture((s) => ({
    ...s,
    linux: {
      ...s.linux,
      namespaces: [
        { type: "pid" },
        { type: "mount" },
        { type: "user" },
        { type: "network", path: "/proc/77/ns/net" },
        { type: "ipc", path: "/proc/77/ns/ipc" },
      ],
      uidMappings: [{ containerID: 0, hostID: 100000, size: 65536 }],
      gidMappings: [{ containerID: 0, hostID: 100000, size: 65536 }],
    },
  }));
  const host = new RecordingHost({ rootFiles: ROOT_FILES });
  await createOciContainer(options, host);
  const all = steps(host, dir);
  assertEquals(all.slice(0, 7), [
    "cgroup create /libpod_parent/t-oci memory=67108864,pidsLimit=20",
    "open dir D/state",
    // In the order the process joins them (oci_config.ts namespacePlan).
    "open /proc/77/ns/ipc",
    "open /proc/77/ns/net",
    "clone NEWNS|NEWUSER|NEWPID",
    "id maps 4242 uid 0:100000:65536",
    "cgroup join 4242",
  ]);
  const whats = host.programs[0].map((o) => o.what);
  assert(whats.includes("join the net namespace"), whats.join("\n"));
  assert(whats.includes("join the ipc namespace"), whats.join("\n"));
  // The namespace fds were closed once the process had its copies.
  assertEquals(host.openFds(), []);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("runc create: rootless without a cgroup: the runtime's own id maps, no cgroup calls", async () => {
  const { dir, options } = await fixture((s) => ({
    ...s,
    linux: {
      ...s.linux,
      namespaces: [...s.linux.namespaces!, { type: "user" }],
      uidMappings: [{ containerID: 0, hostID: 1000, size: 1 }],
      gidMappings: [{ containerID: 0, hostID: 1000, size: 1 }],
      resources: undefined,
    },
  }));
  const host = new RecordingHost({ rootFiles: ROOT_FILES });
  const rootless: OciRootless = {
    noCgroup: true,
    nsRoot: false,
    setgroupsDenied: true,
    writeIdMaps: (pid) => (host.calls.push(`rootless maps ${pid}`), Promise.resolve()),
  };
  const created = await createOciContainer({ ...options, rootless }, host);
  assertEquals(created.cgroupPath, "");
  assertEquals(created.cgroup, undefined);
  assert(!host.calls.some((c) => c.startsWith("cgroup ")), host.calls.join("\n"));
  const all = steps(host, dir);
  assertEquals(all.indexOf("rootless maps 4242"), all.findIndex((c) => c.startsWith("clone ")) + 1);
  // setgroups is denied in its user namespace: the program does not call it.
  const whats = host.programs[0].map((o) => o.what);
  assert(!whats.includes("set supplementary groups"), whats.join("\n"));
  assertEquals(host.openFds(), []);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("runc create: process.terminal sends the pty master to the console socket", async () => {
  const { dir, options } = await fixture((s) => ({
    ...s,
    process: { ...s.process, terminal: true, consoleSize: { height: 40, width: 120 } },
  }));
  const host = new RecordingHost({ rootFiles: ROOT_FILES });
  const created = await createOciContainer(
    { ...options, consoleSocket: `${dir}/console.sock` },
    host,
  );
  assertEquals(created.terminal, undefined);
  const all = steps(host, dir);
  assert(all.some((c) => /^socketpair /.test(c)), all.join("\n"));
  assert(/^receive terminal on /.test(all.at(-3)!), all.join("\n"));
  assert(/^send terminal \d+ to D\/console.sock$/.test(all.at(-1)!), all.join("\n"));
  assertEquals(host.openFds(), []);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("runc create: without a console socket a terminal needs keepTerminal, which returns it", async () => {
  const { dir, options } = await fixture((s) => ({
    ...s,
    process: { ...s.process, terminal: true },
  }));
  await assertRejects(
    () => createOciContainer(options, new RecordingHost({ rootFiles: ROOT_FILES })),
    Error,
    "--console-socket is required",
  );
  const host = new RecordingHost({ rootFiles: ROOT_FILES });
  const created = await createOciContainer({ ...options, keepTerminal: true }, host);
  assert(created.terminal !== undefined);
  assertEquals(host.openFds(), [created.terminal]);
  await Deno.remove(dir, { recursive: true });
});
