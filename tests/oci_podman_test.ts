/**
 * tsbox as podman's OCI runtime (needs root, podman and the fixture registry): Debian's podman
 * runs the test registry's busybox and nginx with `--runtime` pointing at `tsbox runc`
 * (tests/runc_bin.ts), through conmon, podman's own network and its default seccomp profile.
 * Everything is observed from podman's side (exit codes, ps, logs, exec) and from inside the
 * container (/proc/self/status, the cgroup files).
 *
 * podman gets a store and runtime dirs of its own (vfs: no overlay mounts left behind), the
 * cgroupfs manager (no systemd here), containers.conf from podman_conf.ts, and a runtime
 * wrapper that adds `--root DIR`, so that the runtime's state is the test's. (podman's
 * `--runtime-flag` is not enough: the cleanup process conmon starts when a container exits,
 * `podman container cleanup`, calls the runtime's `delete --force` without those flags.)
 */
import { join } from "node:path";
import { assertEquals, assertMatch, assertOk, assertStringIncludes } from "./assert.ts";
import { fixtureRegistry, NGINX_MARKER } from "./fixtures/images.ts";
import { podmanConfText } from "./podman_conf.ts";
import { runcBinary } from "./runc_bin.ts";
import { hasTmux, Tmux } from "./tmux.ts";

const isRoot = Deno.uid() === 0;
const dec = new TextDecoder();

function rootTest(name: string, fn: () => Promise<void>, needsTmux = false) {
  Deno.test({
    name,
    ignore: !isRoot || (needsTmux && !hasTmux),
    sanitizeResources: false,
    sanitizeOps: false,
    fn,
  });
}

interface Podman {
  dir: string;
  /** The runtime's state root (what `--root` the runtime got). */
  runtimeRoot: string;
  runtime: string;
  busybox: string;
  nginx: string;
  /** podman's argv prefix (store, runroot, runtime) for a shell command line. */
  command: string[];
  env: Record<string, string>;
}

let setup: Promise<Podman> | undefined;

/** One podman for the module: its store, with both images pulled; removed at unload. */
function podman(): Promise<Podman> {
  setup ??= (async () => {
    const fx = await fixtureRegistry();
    // podman refuses a --runroot longer than 50 characters: keep the dir short.
    const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "t-ocipm-" });
    const conf = join(dir, "containers.conf");
    await Deno.writeTextFile(conf, `${podmanConfText(dir)}cgroup_manager = "cgroupfs"\n`);
    const runtimeRoot = join(dir, "rt");
    const runtime = join(dir, "rt-wrapper");
    await Deno.writeTextFile(
      runtime,
      `#!/bin/sh\nexec '${await runcBinary(dir)}' --root '${runtimeRoot}' "$@"\n`,
      { mode: 0o755 },
    );
    const command = [
      "podman",
      "--root",
      join(dir, "root"),
      "--runroot",
      join(dir, "run"),
      "--storage-driver",
      "vfs",
      "--runtime",
      runtime,
    ];
    const env = { ...Deno.env.toObject(), CONTAINERS_CONF: conf };
    const p: Podman = {
      dir,
      runtimeRoot,
      runtime,
      busybox: fx.refs.busybox,
      nginx: fx.refs.nginx,
      command,
      env,
    };
    globalThis.addEventListener("unload", () => {
      new Deno.Command(command[0], { args: [...command.slice(1), "rm", "-af", "-t", "0"], env })
        .outputSync();
      new Deno.Command(command[0], { args: [...command.slice(1), "system", "reset", "-f"], env })
        .outputSync();
      try {
        Deno.removeSync(dir, { recursive: true });
      } catch { /* gone */ }
    });
    for (const ref of [p.busybox, p.nginx]) {
      const r = await pm(p, ["pull", "-q", "--tls-verify=false", ref]);
      assertEquals(r.code, 0, r.stderr);
    }
    return p;
  })();
  return setup;
}

async function pm(p: Podman, args: string[]) {
  const out = await new Deno.Command(p.command[0], {
    args: [...p.command.slice(1), ...args],
    env: p.env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

async function ok(p: Podman, args: string[]): Promise<string> {
  const r = await pm(p, args);
  assertEquals(r.code, 0, `podman ${args.join(" ")}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

function statusField(status: string, name: string): string {
  return new RegExp(`^${name}:\\s*(\\S+)`, "m").exec(status)?.[1] ?? "";
}

rootTest(
  "podman with tsbox runc: run --rm gives the command's exit codes 0, 3, 127 and 126",
  async () => {
    const p = await podman();
    const hello = await pm(p, ["run", "--rm", "--name", "t-oci-rm0", p.busybox, "echo", "hello"]);
    assertEquals(hello.code, 0, hello.stderr);
    assertEquals(hello.stdout, "hello\n");
    const three = await pm(p, ["run", "--rm", p.busybox, "sh", "-c", "exit 3"]);
    assertEquals(three.code, 3, three.stderr);
    const missing = await pm(p, ["run", "--rm", p.busybox, "no-such-command"]);
    assertEquals(missing.code, 127, missing.stderr);
    assertStringIncludes(missing.stderr, "executable file not found");
    const notExec = await pm(p, ["run", "--rm", p.busybox, "/etc/passwd"]);
    assertEquals(notExec.code, 126, notExec.stderr);
    // Every container was deleted through the runtime: its state root holds none of them.
    const left = [...Deno.readDirSync(p.runtimeRoot)].map((e) => e.name);
    assertEquals(left, []);
  },
);

rootTest("podman with tsbox runc: run -d, ps, logs, exec, stop, rm", async () => {
  const p = await podman();
  const name = "t-oci-detached";
  const id = (await ok(p, [
    "run",
    "-d",
    "--name",
    name,
    p.busybox,
    "sh",
    "-c",
    "echo started; exec sleep 1000",
  ])).trim();
  try {
    assertMatch(id, /^[0-9a-f]{64}$/);
    const ps = await ok(p, ["ps", "--format", "{{.Names}} {{.Status}}"]);
    assertMatch(ps, new RegExp(`^${name} Up`, "m"));
    // The runtime's own view: state JSON says running, with PID 1's host pid.
    const state = JSON.parse(
      dec.decode(
        (await new Deno.Command(p.runtime, { args: ["state", id] })
          .output()).stdout,
      ),
    );
    assertEquals(state.status, "running");
    assertEquals(state.id, id);
    assertOk(state.pid > 0);
    let logs = "";
    for (let i = 0; i < 100 && !logs.includes("started"); i++) {
      logs = await ok(p, ["logs", name]);
      if (!logs.includes("started")) await new Promise((r) => setTimeout(r, 50));
    }
    assertEquals(logs, "started\n");
    const exec = await pm(p, [
      "exec",
      name,
      "sh",
      "-c",
      "echo from exec; cat /proc/1/cmdline; exit 4",
    ]);
    assertEquals(exec.code, 4, exec.stderr);
    assertEquals(exec.stdout, "from exec\nsleep\u00001000\u0000");
    // The exec'd process is in the container's PID namespace and cgroup.
    const cgroup = await ok(p, ["exec", name, "cat", "/proc/self/cgroup"]);
    assertStringIncludes(cgroup, id);
    // exec -t: the exec'd process's pty master goes to conmon through --console-socket too.
    assertMatch(await ok(p, ["exec", "-t", name, "tty"]), /^\/dev\/pts\/[0-9]+\r?\n$/);
    await ok(p, ["stop", "-t", "1", name]);
    const stopped = await ok(p, ["ps", "-a", "--format", "{{.Names}} {{.Status}}"]);
    assertMatch(stopped, new RegExp(`^${name} Exited \\(137\\)`, "m"));
  } finally {
    await ok(p, ["rm", "-f", name]);
  }
  assertEquals([...Deno.readDirSync(p.runtimeRoot)].map((e) => e.name), []);
  // The container's cgroup went with it.
  const gone = await Deno.stat(`/sys/fs/cgroup/memory/libpod_parent/libpod-${id}`).then(
    () => false,
    () => true,
  );
  assertOk(gone, "the container's memory cgroup is left behind");
});

rootTest("podman with tsbox runc: run -it gets a terminal through the console socket", async () => {
  const p = await podman();
  const script = join(p.dir, "tty.sh");
  const quoted = p.command.map((a) => `'${a}'`).join(" ");
  await Deno.writeTextFile(
    script,
    `#!/bin/sh\nexport CONTAINERS_CONF='${p.env.CONTAINERS_CONF}'\n${quoted} run -it --rm --name t-oci-tty ${p.busybox} sh\necho "EXITED $?"\nsleep 60\n`,
    { mode: 0o755 },
  );
  const tmux = await Tmux.start(script);
  try {
    await tmux.waitFor(/^\/ #/m);
    await tmux.send("tty; stty size; ls -l /dev/console; echo $((6*7))", "Enter");
    const text = await tmux.waitFor(/^42$/m);
    // /dev/console is the same pty (major 136, devpts), as runc binds it.
    assertMatch(text, /^c.* 136, +0 .* \/dev\/console$/m);
    assertMatch(text, /^\/dev\/pts\/0$/m);
    assertMatch(text, /^40 120$/m);
    await tmux.send("exit 5", "Enter");
    await tmux.waitFor(/EXITED 5/);
  } finally {
    await tmux.kill();
  }
}, true);

rootTest("podman with tsbox runc: --memory is enforced (OOM kill, exit 137)", async () => {
  const p = await podman();
  const r = await pm(p, [
    "run",
    "--rm",
    "--memory",
    "16m",
    "--memory-swap",
    "16m",
    p.busybox,
    "sh",
    "-c",
    "cat /sys/fs/cgroup/memory/memory.limit_in_bytes; x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo survived",
  ]);
  assertEquals(r.stdout, `${16 * 1024 * 1024}\n`);
  assertEquals(r.code, 137, r.stderr);
});

rootTest(
  "podman with tsbox runc: --cap-drop ALL and podman's default seccomp profile",
  async () => {
    const p = await podman();
    const dropped = await ok(p, [
      "run",
      "--rm",
      "--cap-drop",
      "ALL",
      p.busybox,
      "cat",
      "/proc/self/status",
    ]);
    for (const set of ["CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb"]) {
      assertEquals(statusField(dropped, set), "0000000000000000", set);
    }
    const plain = await ok(p, ["run", "--rm", p.busybox, "cat", "/proc/self/status"]);
    // podman's 14 default capabilities, and its seccomp filter installed (mode 2).
    assertEquals(statusField(plain, "CapEff"), "00000000a80425fb");
    assertEquals(statusField(plain, "Seccomp"), "2");
    // The filter is the profile's: a call it refuses fails with EPERM inside, not outside.
    const refused = await pm(p, [
      "run",
      "--rm",
      p.busybox,
      "sh",
      "-c",
      "mount -t tmpfs none /mnt 2>&1; echo rc=$?",
    ]);
    assertMatch(refused.stdout, /rc=[1-9]/);
    const unconfined = await ok(p, [
      "run",
      "--rm",
      "--security-opt",
      "seccomp=unconfined",
      p.busybox,
      "cat",
      "/proc/self/status",
    ]);
    assertEquals(statusField(unconfined, "Seccomp"), "0");
  },
);

rootTest(
  "podman with tsbox runc: -p publishes nginx through podman's network on 127.0.0.1",
  async () => {
    const p = await podman();
    const name = "t-oci-nginx";
    await ok(p, ["run", "-d", "--name", name, "-p", "127.0.0.1::80", p.nginx]);
    try {
      const port = (await ok(p, ["port", name, "80"])).trim().split(":").at(-1);
      assertMatch(port ?? "", /^[0-9]+$/);
      let body = "";
      for (let i = 0; i < 100 && !body.includes(NGINX_MARKER); i++) {
        body = await fetch(`http://127.0.0.1:${port}/`).then((r) => r.text()).catch(() => "");
        if (!body.includes(NGINX_MARKER)) await new Promise((r) => setTimeout(r, 100));
      }
      assertStringIncludes(body, NGINX_MARKER);
    } finally {
      await ok(p, ["rm", "-f", "-t", "0", name]);
    }
  },
);

rootTest("podman with tsbox runc: --uidmap runs the container in a user namespace", async () => {
  const p = await podman();
  const out = await ok(p, [
    "run",
    "--rm",
    "--uidmap",
    "0:200000:65536",
    "--gidmap",
    "0:200000:65536",
    p.busybox,
    "sh",
    "-c",
    "id; cat /proc/self/uid_map /proc/self/gid_map; touch /written && echo written",
  ]);
  assertEquals(
    out.replace(/[ \t]+/g, " "),
    "uid=0(root) gid=0(root)\n 0 200000 65536\n 0 200000 65536\nwritten\n",
  );
});

rootTest(
  "podman with tsbox runc: OCI hooks from --hooks-dir run where the spec puts them",
  async () => {
    const p = await podman();
    const hooksDir = join(p.dir, "hooks.d");
    const out = join(p.dir, "hooks-out");
    await Deno.mkdir(hooksDir, { recursive: true });
    await Deno.mkdir(out, { recursive: true });
    await Deno.chmod(out, 0o777);
    // podman's hook files (schema 1.0.0): one per stage, each noting its state and namespace.
    const stages: [string, string][] = [
      ["createRuntime", out],
      ["createContainer", out],
      ["startContainer", "/hooks-out"],
      ["poststart", out],
    ];
    for (const [stage, dir] of stages) {
      await Deno.writeTextFile(
        join(hooksDir, `${stage}.json`),
        JSON.stringify({
          version: "1.0.0",
          hook: {
            path: "/bin/sh",
            args: [
              "sh",
              "-c",
              `cat > ${dir}/${stage}.json; readlink /proc/self/ns/mnt > ${dir}/${stage}.mnt`,
            ],
          },
          when: { annotations: { "^org\\.tsbox\\.test\\.hooks$": "^yes$" } },
          stages: [stage],
        }),
      );
    }
    const name = "t-oci-hooks";
    try {
      const id = (await ok(p, [
        "--hooks-dir",
        hooksDir,
        "run",
        "-d",
        "--name",
        name,
        "--annotation",
        "org.tsbox.test.hooks=yes",
        "-v",
        `${out}:/hooks-out`,
        p.busybox,
        "sleep",
        "1000",
      ])).trim();
      const pid = Number((await ok(p, ["inspect", "-f", "{{.State.Pid}}", name])).trim());
      const ctrMnt = Deno.readLinkSync(`/proc/${pid}/ns/mnt`);
      const hostMnt = Deno.readLinkSync("/proc/self/ns/mnt");
      const seen = (stage: string, ext: string) =>
        Deno.readTextFileSync(join(out, `${stage}.${ext}`)).trim();
      const expected: Record<string, [string, string]> = {
        createRuntime: ["creating", hostMnt],
        createContainer: ["creating", ctrMnt],
        startContainer: ["created", ctrMnt],
        poststart: ["running", hostMnt],
      };
      for (const [stage, [status, mnt]] of Object.entries(expected)) {
        const state = JSON.parse(seen(stage, "json"));
        assertEquals([state.id, state.status, state.pid, seen(stage, "mnt")], [
          id,
          status,
          pid,
          mnt,
        ], stage);
      }
    } finally {
      await pm(p, ["rm", "-f", "-t", "0", name]);
    }
  },
);
