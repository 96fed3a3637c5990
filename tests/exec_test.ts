/**
 * `exec` against real containers (root): a busybox container started with Container.start, and
 * processes entered into it with execInContainer, checked against what the kernel shows.
 */
import { join } from "node:path";
import { Store } from "../src/store/mod.ts";
import { sharedBusyboxRoot } from "./busybox_store.ts";
import { Container, newContainerId } from "../src/runtime/mod.ts";
import {
  boundingSet,
  buildExecProgram,
  ContainerNotRunningError,
  execInContainer,
  type ExecSpec,
  joinContainerCgroups,
  openContainer,
} from "../src/runtime/exec.ts";
import {
  bytes,
  cloneProgram,
  CompiledProgram,
  decodeStatus,
  FAIL_ON_ZERO,
  SharedWord,
} from "../ffi/clone.ts";
import { closeFd, killPid, pipe, readFd, waitPid, writeFd } from "../ffi/process.ts";
import { SYS } from "../ffi/syscall_numbers.ts";
import { ExecError } from "../src/errors.ts";
import { assertEquals, assertMatch, assertNotEquals, assertOk, assertRejects } from "./assert.ts";
import { tsbox } from "./cli.ts";
import { startSpec } from "./start_spec.ts";
import { dockerCapabilitySets } from "../src/runtime/program.ts";

const isRoot = Deno.uid() === 0;

function rootTest(name: string, fn: () => Promise<void>) {
  Deno.test({ name, ignore: !isRoot, sanitizeResources: false, sanitizeOps: false, fn });
}

const sharedRoot = sharedBusyboxRoot;

/** A running busybox container (`sleep 1000` as PID 1 unless told), removed by `done`. */
async function withContainer(
  fn: (c: Container) => Promise<void>,
  options: { argv?: string[]; capabilities?: number[]; network?: "none" | "host" } = {},
) {
  const root = await sharedRoot();
  const store = await Store.open(root);
  const image = store.findImage("busybox")!;
  store.close();
  const id = newContainerId();
  const started = startSpec(root, id, image.layers.map((l) => l.shortId), {
    argv: options.argv ?? ["sleep", "1000"],
    env: ["PATH=/bin", "FROM_RUN=1"],
    network: options.network ?? "none",
    resources: { pidsLimit: 50 },
    capabilities: options.capabilities,
  });
  const c = await Container.start(started.spec, started.options);
  try {
    await fn(c);
  } finally {
    c.kill(9);
    await c.remove();
  }
}

/** Runs `argv` in the container with stdout/stderr captured through pipes. */
async function execCapture(initPid: number, argv: string[], extra: Partial<ExecSpec> = {}) {
  const [outR, outW] = pipe();
  const [errR, errW] = pipe();
  let proc;
  try {
    proc = await execInContainer(initPid, {
      argv,
      env: ["PATH=/bin"],
      cwd: "/",
      user: "",
      stdio: ["null", outW, errW],
      ...extra,
    });
  } finally {
    closeFd(outW);
    closeFd(errW);
  }
  const dec = new TextDecoder();
  const [out, err] = await Promise.all([readFd(outR, 1 << 20), readFd(errR, 1 << 20)]);
  closeFd(outR);
  closeFd(errR);
  return { code: await proc.wait(), stdout: dec.decode(out), stderr: dec.decode(err) };
}

rootTest("exec joins every namespace of the container and sees its PID 1", async () => {
  await withContainer(async (c) => {
    const r = await execCapture(c.pid, [
      "sh",
      "-c",
      "cat /proc/1/cmdline | tr '\\0' ' '; echo; hostname; echo $$; " +
      "for n in ipc mnt net pid uts cgroup; do readlink /proc/self/ns/$n; done",
    ]);
    assertEquals(r.code, 0, r.stderr);
    const [cmdline, hostname, pid, ...ns] = r.stdout.trim().split("\n");
    assertEquals(cmdline.trim(), "sleep 1000");
    assertEquals(hostname, c.spec.hostname);
    assertNotEquals(Number(pid), 1);
    assertOk(Number(pid) < 100, `pid ${pid} is numbered in the container's namespace`);
    const kinds = ["ipc", "mnt", "net", "pid", "uts", "cgroup"];
    const expected = kinds.map((k) => Deno.readLinkSync(`/proc/${c.pid}/ns/${k}`));
    assertEquals(ns, expected);
  });
});

rootTest("exec runs under the container's root, not the host's", async () => {
  await withContainer(async (c) => {
    const marker = `tsbox-exec-${crypto.randomUUID()}`;
    await Deno.writeTextFile(join(c.rootfs, "marker"), marker);
    const r = await execCapture(c.pid, [
      "sh",
      "-c",
      "cat /marker; ls /; cat /etc/passwd | head -1",
    ]);
    assertEquals(r.code, 0, r.stderr);
    assertMatch(r.stdout, new RegExp(`^${marker}`));
    assertOk(!r.stdout.includes("usr\n"), "host's /usr is not visible");
    assertMatch(r.stdout, /root:x:0:0:root:\/root:\/bin\/sh/);
  });
});

rootTest("exec joins the container's cgroups", async () => {
  await withContainer(async (c) => {
    const r = await execCapture(c.pid, ["sh", "-c", "cat /proc/self/cgroup"]);
    assertEquals(r.code, 0, r.stderr);
    // Seen from the host: the same cgroup paths as PID 1 (run a second exec and stop it there).
    const [stopR, stopW] = pipe();
    const proc = await execInContainer(c.pid, {
      argv: ["sh", "-c", "read x"],
      env: ["PATH=/bin"],
      cwd: "/",
      user: "",
      stdio: [stopR, "null", "null"],
    });
    closeFd(stopR);
    try {
      const init = await Deno.readTextFile(`/proc/${c.pid}/cgroup`);
      const ours = await Deno.readTextFile(`/proc/${proc.pid}/cgroup`);
      assertEquals(ours, init);
      assertMatch(init, /pids:\/.+/);
    } finally {
      writeFd(stopW, new TextEncoder().encode("go\n"));
      closeFd(stopW);
      assertEquals(await proc.wait(), 0);
    }
  });
});

rootTest("exec: environment, working directory and user as given", async () => {
  await withContainer(async (c) => {
    const r = await execCapture(c.pid, ["sh", "-c", 'echo "$FOO|$HOME|$(pwd)|$(id -u):$(id -g)"'], {
      env: ["PATH=/bin", "FOO=bar"],
      cwd: "/tmp",
      user: "app",
    });
    assertEquals(r.code, 0, r.stderr);
    assertEquals(r.stdout.trim(), "bar|/home/app|/tmp|1000:1000");
    const groups = await execCapture(c.pid, ["id", "-G"], { user: "app" });
    assertEquals(groups.stdout.trim().split(" ").sort(), ["1000", "2000"]);
  });
});

rootTest("exec keeps the container's capabilities", async () => {
  await withContainer(async (c) => {
    const r = await execCapture(c.pid, ["sh", "-c", "grep -E '^Cap(Eff|Bnd)' /proc/self/status"]);
    assertEquals(r.code, 0, r.stderr);
    const init = await Deno.readTextFile(`/proc/${c.pid}/status`);
    const bnd = /^CapBnd:\s*(\S+)/m.exec(init)![1];
    assertEquals(
      r.stdout.trim(),
      `CapBnd:\t${bnd}\nCapEff:\t${bnd}`.split("\n").reverse().join("\n"),
    );
    // docker's default set is 00000000a80425fb.
    assertEquals(bnd, "00000000a80425fb");
  });
  await withContainer(async (c) => {
    assertEquals(await boundingSet(c.pid), [0, 5]);
    const r = await execCapture(c.pid, ["sh", "-c", "grep CapEff /proc/self/status"]);
    assertEquals(r.stdout.trim(), "CapEff:\t0000000000000021");
  }, { capabilities: [0, 5] });
});

rootTest("exec: exit code, 126 and 127 like docker", async () => {
  await withContainer(async (c) => {
    assertEquals((await execCapture(c.pid, ["sh", "-c", "exit 42"])).code, 42);
    const missing = await assertRejects(
      () => execCapture(c.pid, ["no-such-command"]),
      ExecError,
      "executable file not found",
    );
    assertEquals(missing.exitCode, 127);
    const notExec = await assertRejects(() => execCapture(c.pid, ["/etc/passwd"]), ExecError);
    assertEquals(notExec.exitCode, 126);
    const killed = await execCapture(c.pid, ["sh", "-c", "kill -9 $$"]);
    assertEquals(killed.code, 137);
  });
});

rootTest("exec into a container that has ended fails clearly", async () => {
  let pid = 0;
  await withContainer(async (c) => {
    pid = c.pid;
    c.kill(9);
    await c.wait();
    await assertRejects(() => execCapture(pid, ["true"]), ContainerNotRunningError);
  });
});

rootTest("the exec child is non-dumpable and holds only its fds before execve", async () => {
  // Stop a real exec child right before its execve (after setns, chroot, setuid and capset, the
  // moment a container process with the same uid and capabilities could reach it) and look at
  // it from inside the container.
  await withContainer(async (c) => {
    const target = openContainer(c.pid);
    const [syncR, syncW] = pipe();
    const [statusR, statusW] = pipe();
    const [holdR, holdW] = pipe();
    const childPid = new SharedWord();
    const spec = {
      syncFd: syncR,
      closeFds: [syncW, statusR, holdW],
      keepFds: [
        statusW,
        holdR,
        target.root,
        target.pidNamespace!,
        ...target.joins.map((j) => j.fd),
      ],
      joins: target.joins,
      pidFork: { fd: target.pidNamespace!, childPidAddress: childPid.address },
      root: target.root,
      cwd: "/",
      uid: 0,
      gid: 0,
      groups: [],
      caps: dockerCapabilitySets(await boundingSet(c.pid)),
      lastCap: Number(Deno.readTextFileSync("/proc/sys/kernel/cap_last_cap").trim()),
      stdio: ["inherit", "inherit", "inherit"] as "inherit"[],
      argv: ["true"],
      env: [],
      candidates: ["/bin/true"],
    };
    const ops = buildExecProgram(spec);
    const execAt = ops.findIndex((o) => o.nr === SYS.execve);
    ops.splice(execAt, 0, {
      nr: SYS.read,
      args: [holdR, bytes(new Uint8Array(1)), 1],
      flags: FAIL_ON_ZERO,
      what: "hold",
    });
    const program = CompiledProgram.compile(ops, statusW);
    const intermediate = cloneProgram(program, 0);
    program.free();
    target.close();
    closeFd(syncR);
    closeFd(statusW);
    closeFd(holdR);
    let pid = -1;
    try {
      await joinContainerCgroups(c.pid, intermediate);
      writeFd(syncW, new Uint8Array([1]));
      // The intermediate forks the held child into the PID namespace and exits.
      assertEquals(await waitPid(intermediate), { exitCode: 0 });
      pid = childPid.read();
      assertOk(pid > 0, "the forked child's pid is in the shared word");
      // Wait until it blocks on the hold pipe (its state turns to S in a read on holdR).
      for (let i = 0; i < 200; i++) {
        const stat = await Deno.readTextFile(`/proc/${pid}/status`);
        if (/^CapEff:\s*00000000a80425fb/m.test(stat) && /^State:\s*S/m.test(stat)) break;
        await new Promise((r) => setTimeout(r, 10));
      }
      const nspid = /^NSpid:\s*\d+\s+(\d+)/m.exec(await Deno.readTextFile(`/proc/${pid}/status`))!;
      const fds = [...Deno.readDirSync(`/proc/${pid}/fd`)].map((e) => Number(e.name)).sort();
      assertEquals(fds, [0, 1, 2, holdR, statusW].sort((a, b) => a - b));
      const r = await execCapture(c.pid, [
        "sh",
        "-c",
        `grep CapEff /proc/self/status; ls -l /proc/${nspid[1]}/exe; ls /proc/${nspid[1]}/fd; ` +
        `cat /proc/${nspid[1]}/exe > /dev/null && echo OPENED`,
      ]);
      assertMatch(r.stdout, /CapEff:\s*00000000a80425fb/, "same capabilities as the held child");
      assertOk(!r.stdout.includes("OPENED"), `the container opened tsbox's exe: ${r.stdout}`);
      assertMatch(r.stderr, /Permission denied/);
    } finally {
      writeFd(holdW, new Uint8Array([1]));
      closeFd(holdW);
      closeFd(syncW);
      const failure = decodeStatus(await readFd(statusR, 16));
      closeFd(statusR);
      assertEquals(failure, undefined);
      assertEquals(await waitPid(pid), { exitCode: 0 });
      childPid.free();
      killPid(c.pid, 0);
    }
  });
});

// --- exec through the CLI: confined as the container's PID 1 is, refused when not running ---

/** `tsbox run -d` a busybox `sleep 1000` with `flags`; returns its name (removed by the caller). */
async function runDetached(root: string, flags: string[]): Promise<string> {
  const name = `exec-${crypto.randomUUID().slice(0, 8)}`;
  const r = await tsbox(["run", "-d", "--name", name, ...flags, "busybox", "sleep", "1000"], {
    root,
  });
  assertEquals(r.code, 0, r.stderr);
  return name;
}

/** The fields of /proc/PID/status named, as a map. */
function statusFields(text: string, names: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const n of names) out[n] = new RegExp(`^${n}:\\s*(\\S+)$`, "m").exec(text)?.[1] ?? "";
  return out;
}

const CONFINEMENT = ["Seccomp", "NoNewPrivs", "CapEff", "CapBnd"];

/** The confinement of a fresh exec and of PID 1, as the exec sees both. */
async function confinement(root: string, name: string) {
  const r = await tsbox([
    "exec",
    name,
    "sh",
    "-c",
    "cat /proc/self/status; echo ==; cat /proc/1/status",
  ], {
    root,
  });
  assertEquals(r.code, 0, r.stderr);
  const [self, init] = r.stdout.split("==\n");
  return { exec: statusFields(self, CONFINEMENT), init: statusFields(init, CONFINEMENT) };
}

rootTest("exec applies the container's seccomp filter: Seccomp 2, unshare -U refused", async () => {
  const root = await sharedRoot();
  const confined = await runDetached(root, []);
  const unconfined = await runDetached(root, ["--security-opt", "seccomp=unconfined"]);
  try {
    const c = await confinement(root, confined);
    assertEquals(c.exec.Seccomp, "2");
    assertEquals(c.exec, c.init, "the exec is confined exactly as PID 1");
    const denied = await tsbox(["exec", confined, "unshare", "-U", "true"], { root });
    assertEquals(denied.code, 1);
    assertMatch(denied.stderr, /Operation not permitted/);
    // The same call in an unconfined container works: the refusal above is the filter's.
    const u = await confinement(root, unconfined);
    assertEquals(u.exec.Seccomp, "0");
    assertEquals(u.exec, u.init);
    const allowed = await tsbox(["exec", unconfined, "unshare", "-U", "true"], { root });
    assertEquals(allowed.code, 0, allowed.stderr);
  } finally {
    await tsbox(["rm", "-f", confined, unconfined], { root });
  }
});

rootTest("exec: no_new_privs, capabilities and rlimits as configured at run", async () => {
  const root = await sharedRoot();
  const plain = await runDetached(root, []);
  const locked = await runDetached(root, [
    "--security-opt",
    "no-new-privileges",
    "--cap-drop",
    "ALL",
    "--ulimit",
    "nofile=123:456",
  ]);
  const added = await runDetached(root, ["--cap-drop", "ALL", "--cap-add", "NET_RAW"]);
  try {
    const p = await confinement(root, plain);
    assertEquals(p.exec.NoNewPrivs, "0");
    assertEquals(p.exec.CapEff, "00000000a80425fb");
    const l = await confinement(root, locked);
    assertEquals(l.exec, l.init);
    assertEquals(l.exec.NoNewPrivs, "1");
    assertEquals(l.exec.CapEff, "0000000000000000");
    assertEquals(l.exec.CapBnd, "0000000000000000");
    const limits = await tsbox(["exec", locked, "sh", "-c", "ulimit -Sn; ulimit -Hn"], { root });
    assertEquals(limits.stdout.trim().split("\n"), ["123", "456"]);
    const a = await confinement(root, added);
    assertEquals(a.exec, a.init);
    assertEquals(a.exec.CapEff, (1n << 13n).toString(16).padStart(16, "0")); // CAP_NET_RAW
  } finally {
    await tsbox(["rm", "-f", plain, locked, added], { root });
  }
});

rootTest("exec into a stopped or paused container: docker's message, exit code 1", async () => {
  const root = await sharedRoot();
  const name = await runDetached(root, []);
  try {
    const full: string = JSON.parse((await tsbox(["inspect", name], { root })).stdout)[0].Id;
    assertMatch(full, /^[0-9a-f]{64}$/);
    assertEquals((await tsbox(["pause", name], { root })).code, 0);
    const paused = await tsbox(["exec", name, "true"], { root });
    assertEquals(paused.code, 1);
    assertEquals(
      paused.stderr.trim(),
      `Error response from daemon: container ${full} is paused, unpause the container before exec`,
    );
    assertEquals((await tsbox(["unpause", name], { root })).code, 0);
    assertEquals((await tsbox(["stop", "-t", "0", name], { root })).code, 0);
    const stopped = await tsbox(["exec", name, "true"], { root });
    assertEquals(stopped.code, 1);
    assertEquals(
      stopped.stderr.trim(),
      `Error response from daemon: container ${full} is not running`,
    );
  } finally {
    await tsbox(["rm", "-f", name], { root });
  }
});

rootTest("mod.ts exec: exit code of the command; a stopped container is refused", async () => {
  const api = await import("../mod.ts");
  const root = await sharedRoot();
  const name = `api-${crypto.randomUUID().slice(0, 8)}`;
  const store = await Store.open(root);
  try {
    await api.run(store, "busybox", { command: ["sleep", "1000"], detach: true, name });
    assertEquals(await api.exec(store, name, ["sh", "-c", "test -e /proc/1 && exit 7"]), 7);
    await api.stop(store, name, 1);
    await assertRejects(() => api.exec(store, name, ["true"]), api.NotRunningError);
  } finally {
    await api.rm(store, name, true);
    store.close();
  }
});
