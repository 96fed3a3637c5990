/**
 * tsbox's OCI runtime driven directly with runc's command line (root): the lifecycle
 * create → state → start → pause/resume → ps → exec → kill → delete as containerd's shim runs
 * it, hooks with the state on stdin, errors as JSON lines in `--log`, a namespace joined by
 * path, and "one runtime" checks: tsbox's own config.json (what `tsbox create` writes) run by
 * `tsbox runc` shows the process exactly what Debian's crun shows it on the same bundle.
 *
 * The bundles' root filesystem is busybox exported from a tsbox store (busybox_store.ts).
 */
import { join } from "node:path";
import { acceptFd, listenUnix } from "../ffi/fd_passing.ts";
import { closeFd } from "../ffi/process.ts";
import { assertEquals, assertMatch, assertOk, assertStringIncludes } from "./assert.ts";
import { seedStore } from "./busybox_store.ts";
import { tempRoot, tsbox } from "./cli.ts";
import { runcBinary } from "./runc_bin.ts";
import { Tmux } from "./tmux.ts";
import type { Spec } from "../src/oci/spec.ts";

const isRoot = Deno.uid() === 0;
const dec = new TextDecoder();

function rootTest(name: string, fn: () => Promise<void>) {
  Deno.test({ name, ignore: !isRoot, sanitizeResources: false, sanitizeOps: false, fn });
}

interface Fixture {
  /** Scratch dir of the module. */
  work: string;
  /** A busybox root filesystem (exported by tsbox). */
  rootfs: string;
  /** tsbox's config.json for a container created with several flags. */
  tsboxSpec: Spec;
  /** What that container's process saw when `tsbox start` ran it. */
  tsboxSeen: string;
  runtime: string;
}

let fixture: Promise<Fixture> | undefined;

/** Prints what the process sees, tells the host it is ready, and waits for its go-ahead. */
const SCRIPT = [
  "id",
  "pwd",
  "hostname",
  "env | sort",
  "grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status",
  "grep -E '^Max (open files|processes)' /proc/self/limits",
  "touch /probe 2>/dev/null && echo root=rw || echo root=ro",
  "(echo 1 > /proc/sys/kernel/ns_last_pid) 2>/dev/null && echo procsys=rw || echo procsys=ro",
  'for f in /proc/kcore /proc/keys /proc/timer_list /proc/sched_debug; do [ -e $f ] && echo "$f $(cat $f 2>/dev/null | wc -c)"; done',
  "echo firmware=$(ls -A /sys/firmware | wc -l)",
  "ls -lA /dev | awk '{print $1, $5, $6, $NF}' | sort",
  "awk '{print $5}' /proc/self/mountinfo | sort",
  "umask",
  "echo ready > /x/ready",
  "cat /x/go > /dev/null",
].join("; ");

function setup(): Promise<Fixture> {
  fixture ??= (async () => {
    const work = await Deno.makeTempDir({ prefix: "tsbox-ocirunc-" });
    // The store stays until the module ends: tsbox's config.json names files in it.
    const { root } = await tempRoot();
    globalThis.addEventListener("unload", () => {
      try {
        Deno.removeSync(work, { recursive: true });
      } catch { /* gone */ }
    });
    {
      const xdir = join(work, "x");
      await Deno.mkdir(xdir);
      await Deno.chmod(xdir, 0o777);
      await sh("mkfifo", ["-m", "0666", join(xdir, "go")]);
      await seedStore(root);
      const flags = [
        "-u",
        "app",
        "-w",
        "/home/app",
        "-e",
        "FOO=bar",
        "-h",
        "oci-host",
        "--cap-add",
        "SYS_ADMIN",
        "--cap-drop",
        "NET_RAW",
        "--memory",
        "64m",
        "--pids-limit",
        "50",
        "--read-only",
        "--tmpfs",
        "/scratch",
        "--ulimit",
        "nproc=100:200",
        "--security-opt",
        "no-new-privileges",
        // A network namespace of its own with only lo: no host bridge (nor the host-wide
        // network lock other tests' bridges take) is needed to compare the runtimes.
        "--network",
        "none",
      ];
      const created = await tsbox(
        [
          "create",
          "--name",
          "t-ocirunc",
          ...flags,
          "-v",
          `${work}/x:/x`,
          "busybox",
          "sh",
          "-c",
          SCRIPT,
        ],
        { root },
      );
      assertEquals(created.code, 0, created.stderr);
      const inspect = JSON.parse((await tsbox(["inspect", "t-ocirunc"], { root })).stdout)[0];
      const tsboxSpec = JSON.parse(await Deno.readTextFile(inspect.OCIConfigPath)) as Spec;
      // tsbox's own start (it also writes the /etc files the config binds).
      const main = new URL("../main.ts", import.meta.url).pathname;
      const started = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "--quiet", main, "--root", root, "start", "-a", "t-ocirunc"],
        env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      await waitFor(
        "tsbox's container ready",
        () => Deno.stat(join(xdir, "ready")).then(() => true, () => false),
      );
      await Deno.writeTextFile(join(xdir, "go"), "go\n");
      const seen = await started.output();
      assertEquals(seen.code, 0, dec.decode(seen.stderr));
      const tsboxSeen = dec.decode(seen.stdout);
      const tar = join(work, "fs.tar");
      const exported = await tsbox(["export", "-o", tar, "t-ocirunc"], { root });
      assertEquals(exported.code, 0, exported.stderr);
      const rootfs = join(work, "rootfs");
      await Deno.mkdir(rootfs);
      await sh("tar", ["-xpf", tar, "--numeric-owner", "-C", rootfs]);
      await Deno.remove(tar);
      return { work, rootfs, tsboxSpec, tsboxSeen, runtime: await runcBinary(work) };
    }
  })();
  return fixture;
}

async function sh(cmd: string, args: string[], stdin?: string): Promise<string> {
  const child = new Deno.Command(cmd, {
    args,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const out = await child.output();
  if (!out.success) throw new Error(`${cmd} ${args.join(" ")}: ${dec.decode(out.stderr)}`);
  return dec.decode(out.stdout);
}

/**
 * A runtime call: its code and output. The output goes through files, not pipes: a created
 * container keeps the runtime's stdio (as conmon and the shim expect), so a pipe would stay
 * open as long as the container runs.
 */
async function rt(f: Fixture, stateRoot: string, args: string[], log?: string) {
  const out = join(f.work, `out-${crypto.randomUUID()}`);
  const status = await new Deno.Command("/bin/sh", {
    args: [
      "-c",
      'o="$1"; shift; exec "$@" >"$o.out" 2>"$o.err"',
      "sh",
      out,
      f.runtime,
      "--root",
      stateRoot,
      ...(log ? ["--log", log, "--log-format", "json"] : []),
      ...args,
    ],
    stdin: "null",
  }).output();
  const read = async (ext: string) => {
    const text = await Deno.readTextFile(`${out}.${ext}`).catch(() => "");
    await Deno.remove(`${out}.${ext}`).catch(() => {});
    return text;
  };
  return { code: status.code, stdout: await read("out"), stderr: await read("err") };
}

/** A bundle dir with `config.json` = `spec` whose root is the fixture's rootfs. */
async function bundle(f: Fixture, name: string, spec: Spec): Promise<string> {
  const dir = join(f.work, name);
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(
    join(dir, "config.json"),
    JSON.stringify({ ...spec, root: { ...spec.root, path: f.rootfs } }),
  );
  return dir;
}

/** A plain config (runc's `spec`, no terminal) running `args`, in cgroup /tsbox-ocirunc/NAME. */
async function plainSpec(f: Fixture, name: string, args: string[]): Promise<Spec> {
  const dir = join(f.work, `spec-${name}`);
  await Deno.mkdir(dir, { recursive: true });
  const r = await rt(f, join(f.work, "unused"), ["spec", "--bundle", dir]);
  assertEquals(r.code, 0, r.stderr);
  const spec = JSON.parse(await Deno.readTextFile(join(dir, "config.json"))) as Spec;
  return {
    ...spec,
    process: { ...spec.process, terminal: false, args },
    root: { path: f.rootfs, readonly: false },
    linux: { ...spec.linux, cgroupsPath: `/tsbox-ocirunc/${name}` },
  };
}

async function waitFor(what: string, check: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`${what} never happened`);
}

function removeTestCgroups(): void {
  for (const e of Deno.readDirSync("/sys/fs/cgroup")) {
    try {
      for (const c of Deno.readDirSync(`/sys/fs/cgroup/${e.name}/tsbox-ocirunc`)) {
        if (c.isDirectory) Deno.removeSync(`/sys/fs/cgroup/${e.name}/tsbox-ocirunc/${c.name}`);
      }
      Deno.removeSync(`/sys/fs/cgroup/${e.name}/tsbox-ocirunc`);
    } catch { /* none */ }
  }
}

rootTest("tsbox runc: create, state, start, pause, resume, ps, exec, kill, delete", async () => {
  const f = await setup();
  const state = join(f.work, "state-lifecycle");
  const log = join(f.work, "lifecycle.log");
  const marks = join(f.work, "marks");
  await Deno.mkdir(marks, { recursive: true });
  const spec = await plainSpec(f, "life", [
    "sh",
    "-c",
    "echo started > /m/started; exec sleep 1000",
  ]);
  const b = await bundle(f, "b-life", {
    ...spec,
    mounts: [...spec.mounts ?? [], {
      destination: "/m",
      type: "bind",
      source: marks,
      options: ["rbind", "rw"],
    }],
  });
  const id = "t-life";
  try {
    const pidFile = join(f.work, "life.pid");
    const created = await rt(f, state, ["create", "--bundle", b, "--pid-file", pidFile, id], log);
    assertEquals(created.code, 0, created.stderr);
    const pid = Number(await Deno.readTextFile(pidFile));
    let st = JSON.parse((await rt(f, state, ["state", id])).stdout);
    assertEquals([st.status, st.pid, st.id, st.bundle, st.ociVersion], [
      "created",
      pid,
      id,
      b,
      "1.0.2",
    ]);
    // Created: PID 1 sits in its namespaces, its command not started.
    assertOk(Deno.readLinkSync(`/proc/${pid}/ns/mnt`) !== Deno.readLinkSync("/proc/self/ns/mnt"));
    await new Promise((r) => setTimeout(r, 200));
    assertEquals(await Deno.stat(join(marks, "started")).then(() => true, () => false), false);
    assertEquals((await rt(f, state, ["start", id], log)).code, 0);
    await waitFor(
      "the command's start",
      () => Deno.stat(join(marks, "started")).then(() => true, () => false),
    );
    st = JSON.parse((await rt(f, state, ["state", id])).stdout);
    assertEquals(st.status, "running");
    assertEquals((await rt(f, state, ["pause", id])).code, 0);
    assertEquals(JSON.parse((await rt(f, state, ["state", id])).stdout).status, "paused");
    assertMatch(await Deno.readTextFile(`/proc/${pid}/status`), /^State:\s+[DST]/m);
    assertEquals((await rt(f, state, ["resume", id])).code, 0);
    assertEquals(JSON.parse((await rt(f, state, ["state", id])).stdout).status, "running");
    // update: new limits into the running container's cgroup.
    const resources = join(f.work, "resources.json");
    await Deno.writeTextFile(
      resources,
      JSON.stringify({ memory: { limit: 32 << 20 }, pids: { limit: 30 } }),
    );
    assertEquals((await rt(f, state, ["update", "--resources", resources, id])).code, 0);
    const cgroupFile = (c: string, file: string) =>
      Deno.readTextFileSync(`/sys/fs/cgroup/${c}/tsbox-ocirunc/life/${file}`).trim();
    assertEquals(cgroupFile("memory", "memory.limit_in_bytes"), String(32 << 20));
    assertEquals(cgroupFile("pids", "pids.max"), "30");
    assertEquals((await rt(f, state, ["update", "--pids-limit", "40", id])).code, 0);
    assertEquals(cgroupFile("pids", "pids.max"), "40");
    const list = JSON.parse((await rt(f, state, ["list", "--format", "json"])).stdout);
    assertEquals(list.map((c: { id: string; status: string }) => [c.id, c.status]), [[
      id,
      "running",
    ]]);
    // exec --process as the shim writes it, then by arguments.
    const proc = join(f.work, "process.json");
    await Deno.writeTextFile(
      proc,
      JSON.stringify({
        ...spec.process,
        args: ["sh", "-c", "echo exec:$FOO:$(hostname):$$; exit 6"],
        env: ["FOO=bar"],
      }),
    );
    const exec = await rt(f, state, ["exec", "--process", proc, id]);
    assertEquals(exec.code, 6, exec.stderr);
    assertMatch(exec.stdout, /^exec:bar:runc:[0-9]+\n$/);
    // The process's capability sets apply one by one: as uid 1000, execve keeps only the
    // ambient set (KILL, bit 5) in permitted and effective; the bounding set is its own.
    await Deno.writeTextFile(
      proc,
      JSON.stringify({
        ...spec.process,
        user: { uid: 1000, gid: 1000 },
        args: ["grep", "^Cap", "/proc/self/status"],
        capabilities: {
          bounding: ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"],
          effective: ["CAP_CHOWN", "CAP_KILL"],
          permitted: ["CAP_CHOWN", "CAP_KILL"],
          inheritable: ["CAP_KILL"],
          ambient: ["CAP_KILL"],
        },
      }),
    );
    const capExec = await rt(f, state, ["exec", "--process", proc, id]);
    assertEquals(capExec.code, 0, capExec.stderr);
    const caps = Object.fromEntries(
      capExec.stdout.trim().split("\n").map((l) => l.split(/:\s+/)),
    );
    assertEquals(
      [caps.CapInh, caps.CapPrm, caps.CapEff, caps.CapBnd, caps.CapAmb],
      [
        "0000000000000020",
        "0000000000000020",
        "0000000000000020",
        "0000000000002021",
        "0000000000000020",
      ],
    );
    const byArgs = await rt(f, state, [
      "exec",
      "--env",
      "A=1",
      "--cwd",
      "/tmp",
      id,
      "sh",
      "-c",
      "echo $A $(pwd)",
    ]);
    assertEquals(byArgs.stdout, "1 /tmp\n");
    // A detached exec shows in ps next to PID 1.
    const execPid = join(f.work, "exec.pid");
    const detached = await rt(f, state, [
      "exec",
      "--detach",
      "--pid-file",
      execPid,
      id,
      "sleep",
      "1000",
    ]);
    assertEquals(detached.code, 0, detached.stderr);
    const pids = JSON.parse(
      (await rt(f, state, ["ps", "--format", "json", id])).stdout,
    ) as number[];
    assertEquals(pids.sort(), [pid, Number(await Deno.readTextFile(execPid))].sort());
    // kill --all signals everyone; numeric signals as the shim sends them.
    assertEquals((await rt(f, state, ["kill", "--all", id, "9"])).code, 0);
    await waitFor(
      "the container's stop",
      async () => JSON.parse((await rt(f, state, ["state", id])).stdout).status === "stopped",
    );
    assertEquals((await rt(f, state, ["delete", id], log)).code, 0);
    assertEquals(await Deno.stat(join(state, id)).then(() => true, () => false), false);
    assertEquals(
      await Deno.stat("/sys/fs/cgroup/memory/tsbox-ocirunc/life").then(() => true, () => false),
      false,
    );
    // Gone: delete --force is fine, delete alone is an error, logged as JSON for the shim.
    assertEquals((await rt(f, state, ["delete", "--force", id], log)).code, 0);
    const again = await rt(f, state, ["delete", id], log);
    assertEquals(again.code, 1);
    const last = JSON.parse((await Deno.readTextFile(log)).trim().split("\n").at(-1)!);
    assertEquals([last.level, last.msg], ["error", "container does not exist"]);
    assertOk(!Number.isNaN(Date.parse(last.time)));
  } finally {
    await rt(f, state, ["delete", "--force", id]);
    removeTestCgroups();
  }
});

rootTest(
  "tsbox runc: hooks, --preserve-fds, --no-pivot, delete of a created container, a missing command",
  async () => {
    const f = await setup();
    const state = join(f.work, "state-hooks");
    const out = join(f.work, "hooks");
    await Deno.mkdir(out, { recursive: true });
    const hook = (name: string) => ({
      path: "/bin/sh",
      args: ["sh", "-c", `cat > ${out}/${name}`],
    });
    // At createRuntime the process has its mounts (its /proc is mounted in the rootfs) and has
    // not pivoted yet (its root is still /).
    const probe = {
      path: "/bin/sh",
      args: [
        "sh",
        "-c",
        `pid=$(sed -n 's/.*"pid":\\([0-9]*\\).*/\\1/p'); readlink /proc/$pid/root > ${out}/root; ` +
        `grep -c ' ${f.rootfs}/proc ' /proc/$pid/mountinfo > ${out}/procmounts`,
      ],
    };
    const spec = await plainSpec(f, "hooks", ["true"]);
    const b = await bundle(f, "b-hooks", {
      ...spec,
      annotations: { "org.example.note": "hi" },
      hooks: {
        createRuntime: [hook("createRuntime"), probe],
        poststart: [hook("poststart")],
        poststop: [hook("poststop")],
      },
    });
    try {
      const r = await rt(f, state, ["run", "--bundle", b, "t-hooks"]);
      assertEquals(r.code, 0, r.stderr);
      const seen = (name: string) => JSON.parse(Deno.readTextFileSync(join(out, name)));
      assertEquals(seen("createRuntime").status, "creating");
      assertEquals(Deno.readTextFileSync(join(out, "root")), "/\n");
      assertEquals(Deno.readTextFileSync(join(out, "procmounts")), "1\n");
      assertEquals(seen("createRuntime").annotations, { "org.example.note": "hi" });
      assertOk(seen("createRuntime").pid > 0);
      assertEquals(seen("poststart").id, "t-hooks");
      assertEquals(seen("poststop").status, "stopped");
      const missing = await bundle(
        f,
        "b-missing",
        await plainSpec(f, "missing", ["no-such-command"]),
      );
      const failed = await rt(f, state, ["create", "--bundle", missing, "t-missing"]);
      assertEquals(failed.code, 1);
      assertStringIncludes(
        failed.stderr,
        'exec: "no-such-command": executable file not found in $PATH',
      );
      assertEquals(await Deno.stat(join(state, "t-missing")).then(() => true, () => false), false);
    } finally {
      await rt(f, state, ["delete", "--force", "t-hooks"]);
      removeTestCgroups();
    }
  },
);

rootTest(
  "tsbox runc: net, pid and ipc namespaces joined by path (a pod), and the config's process settings",
  async () => {
    const f = await setup();
    const state = join(f.work, "state-join");
    const first = await plainSpec(f, "first", ["sleep", "1000"]);
    try {
      assertEquals(
        (await rt(f, state, [
          "run",
          "-d",
          "--bundle",
          await bundle(f, "b-first", first),
          "t-first",
        ]))
          .code,
        0,
      );
      const pid = JSON.parse((await rt(f, state, ["state", "t-first"])).stdout).pid as number;
      const base = await plainSpec(f, "second", [
        "sh",
        "-c",
        [
          "for n in net pid ipc; do readlink /proc/self/ns/$n; done",
          "pidof sleep",
          "id",
          "umask",
          "hostname",
          "grep -E '^(CapEff|CapAmb|NoNewPrivs):' /proc/self/status",
          "grep '^Max open files' /proc/self/limits",
          "cat /proc/self/oom_score_adj",
          "cat /proc/sys/net/ipv4/ip_unprivileged_port_start",
          "ls -l /dev/fuse | awk '{print $1, $5, $6}'",
          "touch /ro/x 2>/dev/null && echo ro=rw || echo ro=ro",
          "stat -c %a /t",
          'awk \'$5 == "/" { print ($7 ~ /^shared:/) ? "root=shared" : "root=" $7 }\' /proc/self/mountinfo',
        ].join("; "),
      ]);
      const second: Spec = {
        ...base,
        hostname: "second-host",
        process: {
          ...base.process,
          user: { uid: 1000, gid: 1000, additionalGids: [2000, 3000], umask: 0o027 },
          capabilities: {
            bounding: ["CAP_NET_BIND_SERVICE", "CAP_KILL"],
            effective: ["CAP_NET_BIND_SERVICE"],
            permitted: ["CAP_NET_BIND_SERVICE", "CAP_KILL"],
            inheritable: ["CAP_NET_BIND_SERVICE"],
            ambient: ["CAP_NET_BIND_SERVICE"],
          },
          rlimits: [{ type: "RLIMIT_NOFILE", soft: 500, hard: 600 }],
          noNewPrivileges: true,
          oomScoreAdj: 123,
        },
        mounts: [
          ...base.mounts ?? [],
          { destination: "/ro", type: "bind", source: f.work, options: ["rbind", "ro"] },
          { destination: "/t", type: "tmpfs", source: "tmpfs", options: ["mode=1770"] },
        ],
        linux: {
          ...base.linux,
          // A pod's way: net, pid and ipc of the first container, joined by path.
          namespaces: base.linux.namespaces!.filter((n) =>
            !["network", "pid", "ipc"].includes(n.type)
          )
            .concat([
              { type: "network", path: `/proc/${pid}/ns/net` },
              { type: "pid", path: `/proc/${pid}/ns/pid` },
              { type: "ipc", path: `/proc/${pid}/ns/ipc` },
            ]),
          sysctl: { "net.ipv4.ip_unprivileged_port_start": "80" },
          rootfsPropagation: "shared",
          devices: [{
            path: "/dev/fuse",
            type: "c",
            major: 10,
            minor: 229,
            fileMode: 0o660,
            uid: 0,
            gid: 0,
          }],
        },
      };
      const r = await rt(f, state, [
        "run",
        "--bundle",
        await bundle(f, "b-second", second),
        "t-second",
      ]);
      assertEquals(r.code, 0, r.stderr);
      const lines = r.stdout.trim().split("\n");
      assertEquals(
        lines.slice(0, 3),
        ["net", "pid", "ipc"].map((ns) => Deno.readLinkSync(`/proc/${pid}/ns/${ns}`)),
      );
      // The first container's PID 1 (sleep) is PID 1 here too.
      assertEquals(lines[3], "1");
      assertEquals(
        lines.slice(4).join("\n"),
        [
          "uid=1000(app) gid=1000(app) groups=2000(extra),3000",
          "0027",
          "second-host",
          "CapEff:\t0000000000000400",
          "CapAmb:\t0000000000000400",
          "NoNewPrivs:\t1",
          "Max open files            500                  600                  files     ",
          "123",
          "80",
          "crw-rw---- 10, 229",
          "ro=ro",
          "1770",
          "root=shared",
        ].join("\n"),
      );
    } finally {
      await rt(f, state, ["delete", "--force", "t-first"]);
      await rt(f, state, ["delete", "--force", "t-second"]);
      removeTestCgroups();
    }
  },
);

/**
 * The one way `tsbox start` differs: it binds the host's default device nodes (which also works
 * in a user namespace) where runc, crun and `tsbox runc` mknod them, so those show as mount
 * points (and with the host's modes) only there.
 */
function withoutDeviceMounts(output: string): string {
  const nodes = ["null", "zero", "full", "random", "urandom", "tty"];
  return output.split("\n").filter((line) =>
    !nodes.some((n) => line === `/dev/${n}` || line.endsWith(` ${n}`))
  ).join("\n");
}

/** Runs `spec` under `cmd` (a runc-like runtime) until the script says ready; what it saw. */
async function observe(f: Fixture, cmd: string, stateRoot: string, id: string, b: string) {
  const xdir = join(f.work, "x");
  await Deno.remove(join(xdir, "ready")).catch(() => {});
  const child = new Deno.Command(cmd, {
    args: ["--root", stateRoot, "run", "--bundle", b, id],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let ended = false;
  child.status.then(() => ended = true);
  try {
    await waitFor(`${cmd}'s container ready`, () => {
      if (ended) throw new Error(`${cmd}: the container ended before it was ready`);
      return Deno.stat(join(xdir, "ready")).then(() => true, () => false);
    });
  } catch (err) {
    const out = await child.output();
    throw new Error(`${err}: ${dec.decode(out.stdout)}${dec.decode(out.stderr)}`);
  }
  const pid = JSON.parse(await sh(cmd, ["--root", stateRoot, "state", id])).pid as number;
  const cg = Deno.readTextFileSync(`/proc/${pid}/cgroup`).split("\n").find((l) =>
    /:memory:/.test(l)
  )!;
  const memory = Deno.readTextFileSync(
    `/sys/fs/cgroup/memory${cg.split(":")[2]}/memory.limit_in_bytes`,
  ).trim();
  await Deno.writeTextFile(join(xdir, "go"), "go\n");
  const out = await child.output();
  assertEquals(out.code, 0, dec.decode(out.stderr));
  return { output: dec.decode(out.stdout), memory };
}

rootTest("tsbox runc runs tsbox's own config.json as crun runs it", async () => {
  const f = await setup();
  // crun 1.8 refuses this host's hybrid cgroup layout without the v1 hugetlb hierarchy.
  const hugetlb = Deno.readTextFileSync("/proc/self/mountinfo").includes(
    " /sys/fs/cgroup/hugetlb ",
  );
  if (!hugetlb) {
    Deno.mkdirSync("/sys/fs/cgroup/hugetlb", { recursive: true });
    await sh("mount", ["-t", "cgroup", "-o", "hugetlb", "cgroup", "/sys/fs/cgroup/hugetlb"]);
  }
  const spec = {
    ...f.tsboxSpec,
    linux: { ...f.tsboxSpec.linux, cgroupsPath: "/tsbox-ocirunc/own" },
  };
  const b = await bundle(f, "b-own", spec);
  try {
    const ours = await observe(f, f.runtime, join(f.work, "state-own"), "t-own", b);
    const crun = await observe(f, "crun", join(f.work, "state-crun"), "t-own-crun", b);
    // crun links /dev/core to /proc/kcore even where the kernel has none (runc and tsbox only
    // where it exists): the one line left out.
    assertEquals(
      ours.output,
      crun.output.split("\n").filter((l) => !l.endsWith(" /proc/kcore")).join("\n"),
    );
    assertEquals(withoutDeviceMounts(ours.output), withoutDeviceMounts(f.tsboxSeen));
    assertEquals([ours.memory, crun.memory], [String(64 << 20), String(64 << 20)]);
    for (
      const line of [
        "uid=1000(app) gid=1000(app)",
        "/home/app",
        "oci-host",
        "FOO=bar",
        "NoNewPrivs:\t1",
        "root=ro",
      ]
    ) {
      assertStringIncludes(ours.output, line);
    }
  } finally {
    await rt(f, join(f.work, "state-own"), ["delete", "--force", "t-own"]);
    await sh("crun", ["--root", join(f.work, "state-crun"), "delete", "-f", "t-own-crun"]).catch(
      () => "",
    );
    removeTestCgroups();
    if (!hugetlb) await sh("umount", ["/sys/fs/cgroup/hugetlb"]).catch(() => "");
  }
});

rootTest("tsbox runc: a hostile rootfs cannot point a mount outside it", async () => {
  const f = await setup();
  const state = join(f.work, "state-hostile");
  // Outside the rootfs: a directory the mounts must never touch.
  const outside = await Deno.makeTempDir({ prefix: "tsbox-ocirunc-outside-" });
  const link = join(f.rootfs, "escape");
  try {
    // The image's own symlinks to host paths, absolute and relative.
    await Deno.symlink(outside, link);
    await Deno.symlink(`../../../../../../../..${outside}`, join(f.rootfs, "escape2"));
    const base = await plainSpec(f, "hostile", ["sh", "-c", "ls -d /escape/* /escape2/*"]);
    const r = await rt(f, state, [
      "run",
      "--bundle",
      await bundle(f, "b-hostile", {
        ...base,
        mounts: [
          ...base.mounts ?? [],
          { destination: "/escape/tmp", type: "tmpfs", source: "tmpfs" },
          { destination: "/escape2/bound", type: "bind", source: f.work, options: ["rbind", "ro"] },
        ],
      }),
      "t-hostile",
    ]);
    assertEquals(r.code, 0, r.stderr);
    // Inside, both links lead to the same directory of the image's own root, where both
    // mounts are...
    assertEquals(r.stdout, "/escape/bound\n/escape/tmp\n/escape2/bound\n/escape2/tmp\n");
    // ...and on the host nothing appeared outside the rootfs.
    assertEquals([...Deno.readDirSync(outside)].map((e) => e.name), []);
    assertEquals(Deno.statSync(join(f.rootfs, outside, "tmp")).isDirectory, true);
  } finally {
    await rt(f, state, ["delete", "--force", "t-hostile"]);
    await Deno.remove(link).catch(() => {});
    await Deno.remove(join(f.rootfs, "escape2")).catch(() => {});
    await Deno.remove(join(f.rootfs, outside), { recursive: true }).catch(() => {});
    await Deno.remove(outside, { recursive: true });
    removeTestCgroups();
  }
});

rootTest(
  "tsbox runc: a foreground run of runc's default spec (terminal) uses the caller's terminal",
  async () => {
    const f = await setup();
    const dir = join(f.work, "b-default");
    await Deno.mkdir(dir, { recursive: true });
    assertEquals((await rt(f, join(f.work, "unused"), ["spec", "--bundle", dir])).code, 0);
    const spec = JSON.parse(await Deno.readTextFile(join(dir, "config.json"))) as Spec;
    assertEquals(spec.process.terminal, true);
    await Deno.writeTextFile(
      join(dir, "config.json"),
      JSON.stringify({
        ...spec,
        root: { ...spec.root, path: f.rootfs },
        linux: { ...spec.linux, cgroupsPath: "/tsbox-ocirunc/default" },
      }),
    );
    const state = join(f.work, "state-default");
    const script = join(f.work, "default.sh");
    await Deno.writeTextFile(
      script,
      `#!/bin/sh\ncd '${dir}' && '${f.runtime}' --root '${state}' run t-default\necho "EXITED $?"\nsleep 60\n`,
      { mode: 0o755 },
    );
    const tmux = await Tmux.start(script);
    try {
      await tmux.waitFor(/^\/ #/m);
      await tmux.send("tty; stty size; hostname; echo $((6*7))", "Enter");
      const text = await tmux.waitFor(/^42$/m);
      assertMatch(text, /^\/dev\/pts\/0$/m);
      assertMatch(text, /^40 120$/m);
      assertMatch(text, /^runc$/m);
      await tmux.send("exit 7", "Enter");
      await tmux.waitFor(/EXITED 7/);
    } finally {
      await tmux.kill();
      await rt(f, state, ["delete", "--force", "t-default"]);
      removeTestCgroups();
    }
    // Detached without a console socket, nobody could take the terminal: refused as runc does.
    const detached = await rt(f, state, ["run", "-d", "--bundle", dir, "t-default2"]);
    assertEquals(detached.code, 1);
    assertStringIncludes(detached.stderr, "cannot allocate tty");
  },
);

/** The targets of `/proc/PID/fd/*`, by fd number. */
function fdTargets(pid: number): Map<number, string> {
  const out = new Map<number, string>();
  for (const e of Deno.readDirSync(`/proc/${pid}/fd`)) {
    try {
      out.set(Number(e.name), Deno.readLinkSync(`/proc/${pid}/fd/${e.name}`));
    } catch { /* closed meanwhile */ }
  }
  return new Map([...out].sort(([a], [b]) => a - b));
}

/**
 * Runs the runtime with `args`, stdout and stderr piped to this test and `preserved` as its
 * fd 3, and reads both pipes to their end, as containerd's shim (go-runc) and Python's
 * subprocess.run(capture_output=True) do. Whatever the runtime left behind must not hold them;
 * the generous deadline only turns a hang into a failure with a message.
 */
async function runPiped(f: Fixture, stateRoot: string, args: string[], preserved: string) {
  const child = new Deno.Command("/bin/sh", {
    args: [
      "-c",
      'f="$1"; shift; exec "$@" 3<"$f"',
      "sh",
      preserved,
      f.runtime,
      "--root",
      stateRoot,
      ...args,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const status = await child.status;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${args[0]} exited (${status.code}), its output never ended`)),
      60_000,
    );
  });
  try {
    const [out, err] = await Promise.race([
      Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text()]),
      deadline,
    ]);
    return { code: status.code, stdout: out, stderr: err };
  } finally {
    clearTimeout(timer);
  }
}

rootTest(
  "tsbox runc: create and exec --detach leave no runtime fd in the container (its output ends)",
  async () => {
    const f = await setup();
    const state = join(f.work, "state-fds");
    const marks = join(f.work, "marks-fds");
    await Deno.mkdir(marks, { recursive: true });
    const preserved = join(f.work, "preserved.txt");
    await Deno.writeTextFile(preserved, "kept\n");
    const socketPath = join(f.work, "console-fds.sock");
    const base = await plainSpec(f, "fds", [
      "sh",
      "-c",
      "tty > /m/tty; cat <&3 > /m/preserved; exec sleep 1000",
    ]);
    const b = await bundle(f, "b-fds", {
      ...base,
      process: { ...base.process, terminal: true },
      mounts: [...base.mounts ?? [], {
        destination: "/m",
        type: "bind",
        source: marks,
        options: ["rbind", "rw"],
      }],
    });
    const id = "t-fds";
    const listener = listenUnix(socketPath);
    const masters: number[] = [];
    try {
      const pidFile = join(f.work, "fds.pid");
      const master = acceptFd(listener);
      const created = await runPiped(f, state, [
        "create",
        "--bundle",
        b,
        "--pid-file",
        pidFile,
        "--console-socket",
        socketPath,
        "--preserve-fds",
        "1",
        id,
      ], preserved);
      assertEquals(created.code, 0, created.stderr);
      masters.push(await master);
      const pid = Number(await Deno.readTextFile(pidFile));
      assertEquals(JSON.parse((await rt(f, state, ["state", id])).stdout).status, "created");
      // The waiting process holds its pty as 0-2, the preserved fd 3, and what it needs until
      // execve (the status pipe, the state dir for exec.fifo): nothing else of the runtime's.
      const fds = fdTargets(pid);
      const stateDir = join(state, id);
      assertEquals([...fds.keys()].slice(0, 4), [0, 1, 2, 3]);
      const pty = fds.get(0)!;
      assertMatch(pty, /^\/dev\/pts\/[0-9]+$/);
      assertEquals([fds.get(1), fds.get(2), fds.get(3)], [pty, pty, preserved]);
      const rest = [...fds.entries()].filter(([fd]) => fd > 3).map(([, t]) =>
        t.startsWith("pipe:") ? "pipe" : t
      ).sort();
      assertEquals(rest, [stateDir, "pipe"].sort(), JSON.stringify([...fds]));
      assertEquals((await rt(f, state, ["start", id])).code, 0);
      await waitFor(
        "the command's start",
        () => Deno.stat(join(marks, "preserved")).then((s) => s.size > 0, () => false),
      );
      assertEquals(await Deno.readTextFile(join(marks, "preserved")), "kept\n");
      assertMatch(await Deno.readTextFile(join(marks, "tty")), /^\/dev\/pts\/[0-9]+\n$/);
      // exec --detach with a terminal: the shim reads its output to the end as well.
      const execPidFile = join(f.work, "fds-exec.pid");
      const execMaster = acceptFd(listener);
      const detached = await runPiped(f, state, [
        "exec",
        "--detach",
        "--tty",
        "--console-socket",
        socketPath,
        "--pid-file",
        execPidFile,
        id,
        "sleep",
        "1000",
      ], preserved);
      assertEquals(detached.code, 0, detached.stderr);
      masters.push(await execMaster);
      const execFds = fdTargets(Number(await Deno.readTextFile(execPidFile)));
      assertEquals([...execFds.keys()], [0, 1, 2], JSON.stringify([...execFds]));
      assertMatch(execFds.get(0)!, /^\/dev\/pts\/[0-9]+$/);
    } finally {
      for (const m of masters) closeFd(m);
      closeFd(listener);
      await rt(f, state, ["delete", "--force", id]);
      removeTestCgroups();
    }
  },
);
