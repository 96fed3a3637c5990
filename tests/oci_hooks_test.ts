/**
 * OCI hooks through `tsbox runc` (root), each where the runtime-spec puts it: hooks write what
 * they see (the state on their stdin, their mount namespace, root, cwd, user, argv, env) into
 * files and the test compares that with the container's process as the host sees it.
 *
 * The bundles' root is a busybox tree made from the host's busybox-static (the hooks, not the
 * image, are the subject here).
 *
 * Checked against Debian's runc 1.1.5 (TSBOX_TEST_RUNC=/usr/bin/runc): it agrees on every
 * namespace, root, cwd, user, env and ordering assertion; it differs where it departs from the
 * runtime-spec: createContainer and startContainer get the pid inside the container (1)
 * instead of the host's, poststart sees "created", its `start` exits 0 when a startContainer
 * hook failed, and its messages say "error running hook #N" (runc 1.2 names the point).
 */
import { join } from "node:path";
import { assertEquals, assertMatch, assertOk, assertStringIncludes } from "./assert.ts";
import type { Hook, Spec } from "../src/oci/spec.ts";
import {
  alive,
  bundle,
  cgroupExists,
  removeTestCgroups as removeCgroups,
  rootTest,
  rt,
  setup as setupPrefix,
} from "./oci_bundle.ts";

const setup = () => setupPrefix("tsbox-ocihooks");

/**
 * A hook run by busybox's sh (in the container's tree or the host's: the rootfs's busybox
 * is the same binary) that writes what it sees into `dir/NAME.*`.
 */
function probe(name: string, dir: string, extra: Partial<Hook> = {}): Hook {
  const o = `${dir}/${name}`;
  return {
    path: "/bin/sh",
    args: [
      "sh",
      "-c",
      [
        `cat > ${o}.json`,
        `readlink /proc/self/ns/mnt > ${o}.mnt`,
        `readlink /proc/self/ns/pid > ${o}.pid`,
        `pwd > ${o}.cwd`,
        `id -u > ${o}.uid`,
        `([ -e /in-rootfs ] && echo rootfs || echo host) > ${o}.root`,
        `env | sort > ${o}.env`,
        `grep -c " ${"$"}(pwd)/proc " /proc/self/mountinfo > ${o}.procmounts || true`,
      ].join("; "),
    ],
    env: ["HOOKVAR=" + name],
    ...extra,
  };
}

rootTest("tsbox runc hooks: each kind where the runtime-spec runs it, state on stdin", async () => {
  const f = await setup();
  const state = join(f.work, "state-all");
  const out = join(f.work, "out-all");
  await Deno.mkdir(out, { recursive: true });
  await Deno.chmod(out, 0o777);
  // The container sees `out` at /hooks; the hooks that run before pivot_root see host paths.
  const b = await bundle(f, "all", [
    "sh",
    "-c",
    "[ -e /hooks/startContainer.json ] && echo after > /hooks/cmd || echo before > /hooks/cmd; sleep 1000",
  ], (s) => ({
    ...s,
    process: { ...s.process, user: { uid: 1000, gid: 1000 }, cwd: "/tmp" },
    mounts: [...s.mounts ?? [], {
      destination: "/hooks",
      type: "bind",
      source: out,
      options: ["rbind", "rw"],
    }],
    annotations: { "org.example": "hooks" },
    hooks: {
      prestart: [probe("prestart", out)],
      createRuntime: [probe("createRuntime", out)],
      createContainer: [probe("createContainer", out)],
      startContainer: [probe("startContainer", "/hooks")],
      poststart: [probe("poststart", out)],
      poststop: [probe("poststop", out)],
    },
  }));
  const id = "t-hooks-all";
  const seen = (name: string, what: string) =>
    Deno.readTextFileSync(join(out, `${name}.${what}`)).trim();
  const json = (name: string) => JSON.parse(seen(name, "json"));
  try {
    const pidFile = join(f.work, "all.pid");
    const created = await rt(f, state, ["create", "--bundle", b, "--pid-file", pidFile, id]);
    assertEquals(created.code, 0, created.stderr);
    const pid = Number(await Deno.readTextFile(pidFile));
    const hostMnt = Deno.readLinkSync("/proc/self/ns/mnt");
    const ctrMnt = Deno.readLinkSync(`/proc/${pid}/ns/mnt`);
    const ctrPid = Deno.readLinkSync(`/proc/${pid}/ns/pid`);
    assertOk(hostMnt !== ctrMnt);
    for (const name of ["prestart", "createRuntime"]) {
      // The runtime's namespaces, its tree, in the bundle; the container already mounted.
      assertEquals([json(name).status, json(name).pid, json(name).id], ["creating", pid, id]);
      assertEquals(json(name).annotations, { "org.example": "hooks" });
      assertEquals(seen(name, "mnt"), hostMnt);
      assertEquals(seen(name, "root"), "host");
      assertEquals(seen(name, "cwd"), b);
      // Exactly the hook's env (the shell adds its own PWD and SHLVL).
      assertEquals(
        seen(name, "env").split("\n").filter((l) => !/^(PWD|SHLVL)=/.test(l)),
        [`HOOKVAR=${name}`],
      );
    }
    // createContainer: the container's mount and pid namespaces, before pivot_root (the host's
    // tree with the container's mounts on it), in the rootfs dir, as root.
    const cc = json("createContainer");
    assertEquals([cc.status, cc.pid, cc.id], ["creating", pid, id]);
    assertEquals(seen("createContainer", "mnt"), ctrMnt);
    assertEquals(seen("createContainer", "pid"), ctrPid);
    assertEquals(seen("createContainer", "root"), "host");
    assertEquals(seen("createContainer", "cwd"), f.rootfs);
    assertEquals(seen("createContainer", "uid"), "0");
    assertEquals(seen("createContainer", "procmounts"), "1");
    assertMatch(seen("createContainer", "env"), /^HOOKVAR=createContainer$/m);
    // Not started yet: no startContainer, no command.
    assertEquals(await Deno.stat(join(out, "startContainer.json")).then(() => 1, () => 0), 0);
    assertEquals(await Deno.stat(join(out, "cmd")).then(() => 1, () => 0), 0);
    const started = await rt(f, state, ["start", id]);
    assertEquals(started.code, 0, started.stderr);
    // startContainer: inside the container (its root, cwd and user), before the command ran.
    const sc = json("startContainer");
    assertEquals([sc.status, sc.pid, sc.id], ["created", pid, id]);
    assertEquals(seen("startContainer", "mnt"), ctrMnt);
    assertEquals(seen("startContainer", "pid"), ctrPid);
    assertEquals(seen("startContainer", "root"), "rootfs");
    assertEquals(seen("startContainer", "cwd"), "/tmp");
    assertEquals(seen("startContainer", "uid"), "1000");
    for (let i = 0; i < 200 && !(await Deno.stat(join(out, "cmd")).then(() => 1, () => 0)); i++) {
      await new Promise((r) => setTimeout(r, 25));
    }
    assertEquals(Deno.readTextFileSync(join(out, "cmd")), "after\n");
    // poststart: the runtime's namespaces, the container running.
    const ps = json("poststart");
    assertEquals([ps.status, ps.pid], ["running", pid]);
    assertEquals(seen("poststart", "mnt"), hostMnt);
    assertEquals(await Deno.stat(join(out, "poststop.json")).then(() => 1, () => 0), 0);
    assertEquals((await rt(f, state, ["kill", id, "KILL"])).code, 0);
    for (let i = 0; i < 200 && alive(pid); i++) await new Promise((r) => setTimeout(r, 25));
    const deleted = await rt(f, state, ["delete", id]);
    assertEquals(deleted.code, 0, deleted.stderr);
    const pst = json("poststop");
    assertEquals([pst.status, pst.id], ["stopped", id]);
    assertEquals(seen("poststop", "mnt"), hostMnt);
  } finally {
    await rt(f, state, ["delete", "--force", id]);
    removeCgroups(f);
  }
});

rootTest(
  "tsbox runc hooks: a failing or late create hook fails create and leaves nothing",
  async () => {
    const f = await setup();
    const state = join(f.work, "state-fail");
    const out = join(f.work, "out-fail");
    await Deno.mkdir(out, { recursive: true });
    // The failing hook leaves the pid it was given, to check the process is gone afterwards.
    const failing: Hook = {
      path: "/bin/sh",
      args: [
        "sh",
        "-c",
        `sed -n 's/.*"pid":\\([0-9]*\\).*/\\1/p' > ${out}/pid; echo out-text; echo boom >&2; exit 3`,
      ],
    };
    const late: Hook = {
      path: "/bin/sh",
      args: [
        "sh",
        "-c",
        `sed -n 's/.*"pid":\\([0-9]*\\).*/\\1/p' > ${out}/pid; exec sleep 60`,
      ],
      timeout: 1,
    };
    const cases: [string, keyof NonNullable<Spec["hooks"]>, Hook, string][] = [
      [
        "cc",
        "createContainer",
        failing,
        "error running createContainer hook #1: error running hook: exit status 3, stdout: out-text, stderr: boom",
      ],
      [
        "cr",
        "createRuntime",
        late,
        "error running createRuntime hook #1: hook ran past specified timeout of 1.0s",
      ],
      [
        "pre",
        "prestart",
        { path: "/no/such/hook" },
        'error running prestart hook #1: error running hook: exec: "/no/such/hook": stat /no/such/hook: no such file or directory',
      ],
    ];
    try {
      for (const [name, point, hook, message] of cases) {
        await Deno.remove(join(out, "pid")).catch(() => {});
        const b = await bundle(f, name, ["true"], (s) => ({
          ...s,
          hooks: { [point]: [{ path: "/bin/true" }, hook] },
        }));
        const id = `t-hooks-${name}`;
        const r = await rt(f, state, ["create", "--bundle", b, "--pid-file", `${out}/pf`, id]);
        assertEquals(r.code, 1, r.stderr);
        assertStringIncludes(r.stderr, message);
        // Nothing behind: no state, no cgroup, no pid file, no process.
        const st = await rt(f, state, ["state", id]);
        assertEquals(st.code, 1);
        assertStringIncludes(st.stderr, "container does not exist");
        assertEquals(await Deno.stat(join(state, id)).then(() => 1, () => 0), 0);
        assertEquals(cgroupExists(f, name), false);
        assertEquals(await Deno.stat(`${out}/pf`).then(() => 1, () => 0), 0);
        const pid = Number(await Deno.readTextFile(join(out, "pid")).catch(() => "0"));
        if (hook !== cases[2][2]) {
          assertOk(pid > 0);
          assertEquals(alive(pid), false);
        }
      }
    } finally {
      for (const [name] of cases) await rt(f, state, ["delete", "--force", `t-hooks-${name}`]);
      removeCgroups(f);
    }
  },
);

rootTest(
  "tsbox runc hooks: startContainer failure fails start; poststart failure only warns",
  async () => {
    const f = await setup();
    const state = join(f.work, "state-start");
    const fail: Hook = { path: "/bin/sh", args: ["sh", "-c", "echo no-start >&2; exit 4"] };
    const b1 = await bundle(f, "sc", ["sleep", "1000"], (s) => ({
      ...s,
      hooks: { startContainer: [fail] },
    }));
    const b2 = await bundle(f, "ps", ["sh", "-c", "exit 7"], (s) => ({
      ...s,
      hooks: { poststart: [fail], poststop: [fail] },
    }));
    try {
      const pidFile = join(f.work, "sc.pid");
      assertEquals(
        (await rt(f, state, ["create", "--bundle", b1, "--pid-file", pidFile, "t-sc"])).code,
        0,
      );
      const pid = Number(await Deno.readTextFile(pidFile));
      const started = await rt(f, state, ["start", "t-sc"]);
      assertEquals(started.code, 1);
      assertStringIncludes(
        started.stderr,
        "error running startContainer hook #0: error running hook: exit status 4, stdout: , stderr: no-start",
      );
      for (let i = 0; i < 200 && alive(pid); i++) await new Promise((r) => setTimeout(r, 25));
      assertEquals(alive(pid), false);
      assertEquals(JSON.parse((await rt(f, state, ["state", "t-sc"])).stdout).status, "stopped");
      // poststart and poststop failures are warnings: the run ends with the command's status.
      const run = await rt(f, state, ["run", "--bundle", b2, "t-ps"]);
      assertEquals(run.code, 7, run.stderr);
      assertMatch(run.stderr, /WARN.*error running poststart hook #0: .*exit status 4/);
      assertMatch(run.stderr, /WARN.*error running poststop hook #0: .*exit status 4/);
    } finally {
      await rt(f, state, ["delete", "--force", "t-sc"]);
      await rt(f, state, ["delete", "--force", "t-ps"]);
      removeCgroups(f);
    }
  },
);
