/**
 * exec's host side (exec.ts through launch.ts) on the recording host (host_fake.ts), without
 * root: which namespaces are opened, the handshake around the clone, the fork into the PID
 * namespace, and that a failing step leaves no process and no open fd.
 */
import { assertEquals, assertOk as assert, assertRejects } from "../../tests/assert.ts";
import type { Op } from "../../ffi/clone.ts";
import { SyscallError } from "../../ffi/errors.ts";
import { SYS } from "../../ffi/syscall_numbers.ts";
import { ExecError } from "../errors.ts";
import { ContainerNotRunningError, execInContainer, type ExecSpec } from "./exec.ts";
import { RecordingHost } from "./host_fake.ts";
import { ContainerStartError } from "./start_error.ts";

const INIT = 77;
const EPERM = 1;
const ENOENT = 2;
const ENOMEM = 12;

const SPEC: ExecSpec = {
  argv: ["sh", "-c", "id"],
  env: ["PATH=/bin"],
  cwd: "/",
  user: "app",
  stdio: ["null", "inherit", "inherit"],
};

const ROOT_FILES = {
  "/etc/passwd": "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
  "/etc/group": "root:x:0:\napp:x:1000:\nwheel:x:10:app\n",
};

/** The calls without the fd bookkeeping (pipe, close, read/write of fds). */
function steps(host: RecordingHost): string[] {
  return host.calls.filter((c) => !/^(pipe|close|read fd|write fd) /.test(c));
}

function failAt(match: (op: Op) => boolean, errno: number) {
  return (ops: readonly Op[]) => ({ opIndex: ops.findIndex(match), errno }) as const;
}

Deno.test("exec opens PID 1's namespaces, clones, joins its cgroups, releases, takes the fork", async () => {
  const host = new RecordingHost({ rootFiles: ROOT_FILES, exit: { exitCode: 3 } });
  const proc = await execInContainer(INIT, SPEC, host);
  assertEquals(proc.pid, 4243);
  assertEquals(proc.terminal, undefined);
  assertEquals(steps(host), [
    // User first: it owns the others.
    ...["user", "ipc", "uts", "net", "cgroup", "mnt", "time", "pid"].map((k) =>
      `open /proc/77/ns/${k}`
    ),
    "open /proc/77/root",
    "shared word",
    "status 77",
    // No CLONE_* flags: the child enters the container's namespaces with setns.
    "clone ",
    "cgroup join 4242 as 77",
    // The cloned process forked the command into the PID namespace and exited.
    "wait 4242",
    "read shared word 4243",
    "free shared word",
  ]);
  // Released only once in the container's cgroups.
  const join = host.calls.indexOf("cgroup join 4242 as 77");
  assert(/^write fd \d+ 1 bytes$/.test(host.calls[join + 1]), host.calls[join + 1]);
  const ops = host.programs[0];
  const whats = ops.map((o) => o.what);
  // Non-dumpable before anything else; namespaces joined, the fork, the root, the command.
  assertEquals(whats[0], "make the process non-dumpable");
  assertEquals(
    whats.filter((w) => w.startsWith("join the")),
    ["user", "ipc", "uts", "net", "cgroup", "mnt", "time", "pid"].map((k) =>
      `join the ${k} namespace`
    ),
  );
  const fork = ops.findIndex((o) => o.nr === SYS.clone);
  assert(fork > whats.indexOf("join the mnt namespace"), whats.join("\n"));
  assert(fork < whats.indexOf("chroot to the container's root"), whats.join("\n"));
  assert(whats.indexOf("set uid 1000") > fork, whats.join("\n"));
  assertEquals(ops.at(-1)?.nr, SYS.execve);
  // The image's user (its passwd in the container's root), and PID 1's bounding set (docker's
  // 14 in its /proc status: CAP_SYS_ADMIN, 21, is dropped).
  assert(whats.includes("set gid 1000"), whats.join("\n"));
  assert(whats.includes("drop capability 21 from the bounding set"), whats.join("\n"));
  assert(!whats.includes("drop capability 0 from the bounding set"), whats.join("\n"));
  assertEquals(host.openFds(), []);
  // The process is waited for through the host.
  assertEquals(await proc.wait(), 3);
  assertEquals(host.calls.at(-1), "wait 4243");
});

Deno.test("exec without root: a refused setns is the step's error, the child reaped, fds closed", async () => {
  const host = new RecordingHost({
    rootFiles: ROOT_FILES,
    programFailure: failAt((o) => o.what === "join the user namespace", EPERM),
  });
  const err = await assertRejects(() => execInContainer(INIT, SPEC, host), ContainerStartError);
  assertEquals(err.step, "join the user namespace");
  assertEquals((err.cause as SyscallError).code, "EPERM");
  // The cloned process ended before its fork: nothing else to reap, nothing to kill.
  assertEquals(steps(host).slice(-4), [
    "cgroup join 4242 as 77",
    "wait 4242",
    "read shared word 0",
    "free shared word",
  ]);
  assert(!host.calls.some((c) => c.startsWith("kill")), host.calls.join("\n"));
  assertEquals(host.openFds(), []);
});

Deno.test("exec: a failing cgroup join kills and reaps the held child", async () => {
  const host = new RecordingHost({
    rootFiles: ROOT_FILES,
    failOn: /^cgroup join/,
    error: () => new SyscallError("write", [], EPERM),
  });
  await assertRejects(() => execInContainer(INIT, SPEC, host), SyscallError);
  assertEquals(steps(host).slice(-4), [
    "cgroup join 4242 as 77",
    "kill 4242 9",
    "wait 4242",
    "free shared word",
  ]);
  // Never released.
  assert(!host.calls.some((c) => c.startsWith("write fd")), host.calls.join("\n"));
  assertEquals(host.openFds(), []);
});

Deno.test("exec: a missing command is 127 once the forked process is reaped", async () => {
  const host = new RecordingHost({
    rootFiles: ROOT_FILES,
    programFailure: () => ({ opIndex: -1, errno: ENOENT }),
  });
  const err = await assertRejects(() => execInContainer(INIT, SPEC, host), ExecError);
  assertEquals(err.exitCode, 127);
  assertEquals(steps(host).slice(-4), [
    "wait 4242",
    "read shared word 4243",
    "wait 4243",
    "free shared word",
  ]);
  assertEquals(host.openFds(), []);
});

Deno.test("exec: a PID namespace whose init is gone (ENOMEM on the fork) is not running", async () => {
  const host = new RecordingHost({
    rootFiles: ROOT_FILES,
    programFailure: failAt((o) => o.nr === SYS.clone, ENOMEM),
  });
  await assertRejects(() => execInContainer(INIT, SPEC, host), ContainerNotRunningError);
  assertEquals(host.openFds(), []);
});

Deno.test("exec: PID 1 gone before its namespaces are opened is not running", async () => {
  const host = new RecordingHost({ rootFiles: ROOT_FILES, failOn: /^ns id 77 ipc$/ });
  await assertRejects(() => execInContainer(INIT, SPEC, host), ContainerNotRunningError);
  // The user namespace opened before the check failed is closed again.
  assertEquals(steps(host), ["open /proc/77/ns/user"]);
  assertEquals(host.programs, []);
  assertEquals(host.openFds(), []);
});

Deno.test("exec -t in shared namespaces: only the others joined, no fork, the pty master", async () => {
  const host = new RecordingHost({
    rootFiles: ROOT_FILES,
    sharedNamespaces: ["pid", "net", "cgroup"],
  });
  const proc = await execInContainer(
    INIT,
    { ...SPEC, tty: { size: { rows: 24, cols: 80 } } },
    host,
  );
  assertEquals(proc.pid, 4242);
  assertEquals(steps(host).filter((c) => /^(open|shared|clone|receive|socketpair)/.test(c)), [
    ...["user", "ipc", "uts", "mnt", "time"].map((k) => `open /proc/77/ns/${k}`),
    "open /proc/77/root",
    host.calls.find((c) => c.startsWith("socketpair"))!,
    "clone ",
    host.calls.find((c) => c.startsWith("receive terminal"))!,
  ]);
  assert(!host.programs[0].some((o) => o.nr === SYS.clone), "no fork without a PID namespace");
  assert(proc.terminal !== undefined);
  // The master is the caller's to close; every other fd is closed.
  assertEquals(host.openFds(), [proc.terminal]);
});

/** The gids of the program's setgroups op. */
function groupsOf(ops: readonly Op[]): number[] {
  const set = ops.find((o) => o.what === "set supplementary groups")!;
  const data = (set.args[1] as { bytes: Uint8Array }).bytes;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  return Array.from({ length: Number(set.args[0]) }, (_, i) => view.getUint32(i * 4, true));
}

Deno.test("an OCI process's user and rlimits are taken as given (runc exec), HOME from passwd", async () => {
  const host = new RecordingHost({ rootFiles: ROOT_FILES });
  await execInContainer(INIT, {
    ...SPEC,
    user: { uid: 1000, gid: 1000, additionalGids: [5, 6] },
    rlimits: [{ name: "nofile", resource: 7, limit: { soft: 100n, hard: 200n } }],
  }, host);
  const ops = host.programs[0];
  const whats = ops.map((o) => o.what);
  // Exactly the process's groups, not /etc/group's (wheel), as create sets them for PID 1.
  assertEquals(groupsOf(ops), [5, 6]);
  assert(whats.includes("set uid 1000") && whats.includes("set gid 1000"), whats.join("\n"));
  // Only the process's rlimits: docker's default nofile is not added.
  assertEquals(whats.filter((w) => w.startsWith("set rlimit")), ["set rlimit nofile 100:200"]);
  const env = (ops.at(-1)!.args[2] as { items: readonly string[] }).items;
  assert(env.includes("HOME=/home/app"), env.join(" "));

  // The same ids as a `-u` string: groups from /etc/group, docker's nofile.
  const byName = new RecordingHost({ rootFiles: ROOT_FILES });
  await execInContainer(INIT, { ...SPEC, user: "1000:1000" }, byName);
  const named = byName.programs[0];
  assertEquals(groupsOf(named), [1000, 10]);
  assert(
    named.some((o) => /^set rlimit nofile \d+:\d+$/.test(o.what) && !/100:200/.test(o.what)),
    named.map((o) => o.what).join("\n"),
  );
});
