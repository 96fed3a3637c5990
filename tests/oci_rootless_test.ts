/**
 * `tsbox runc` as an ordinary user (rootless, as runc runs without root): the suite (root)
 * makes a throwaway user, and the user writes a bundle with `spec --rootless` and runs it.
 * Checked: its own uid and gid mapped to 0 in a user namespace, subordinate ranges through
 * newuidmap/newgidmap once the user has one (a file written as container uid 1000 belongs to
 * the matching subordinate id on the host), the lifecycle (create, state, start, kill,
 * delete) under the user's state root, cgroups skipped where the user cannot create one
 * (pause says so) and limits refused clearly, with nothing left behind, and hooks in their
 * places.
 */
import { dirname, join } from "node:path";
import { assertEquals, assertMatch, assertStringIncludes } from "./assert.ts";
import { userNamespacesAllowed } from "../src/runtime/rootless.ts";
import { addRange, type Result, run, type TestUser, withUser } from "./rootless_user.ts";
import type { Spec } from "../src/oci/spec.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const isRoot = Deno.uid() === 0;
const userns = userNamespacesAllowed();

/** `tsbox runc --root STATE ARGS` as the user, in `cwd`; output through files (see below). */
async function runcAs(
  u: TestUser,
  cwd: string,
  args: string[],
  root: string[] = ["--root", join(u.home, "state")],
): Promise<Result> {
  // Files, not pipes: a created container keeps the runtime's stdio open.
  const out = join(u.home, `out-${crypto.randomUUID()}`);
  const status = await new Deno.Command("setpriv", {
    args: [
      `--reuid=${u.uid}`,
      `--regid=${u.gid}`,
      "--init-groups",
      "--",
      "/bin/sh",
      "-c",
      'o="$1"; shift; exec "$@" >"$o.out" 2>"$o.err"',
      "sh",
      out,
      Deno.execPath(),
      "run",
      "-A",
      "--quiet",
      "--cached-only",
      MAIN,
      "runc",
      ...root,
      ...args,
    ],
    cwd,
    clearEnv: true,
    env: {
      HOME: u.home,
      USER: u.name,
      PATH: `${dirname(Deno.execPath())}:/usr/local/bin:/usr/bin:/bin`,
      DENO_DIR: u.denoDir,
      DENO_NO_UPDATE_CHECK: "1",
      NO_COLOR: "1",
    },
    stdin: "null",
  }).output();
  const read = async (ext: string) => {
    const text = await Deno.readTextFile(`${out}.${ext}`).catch(() => "");
    await Deno.remove(`${out}.${ext}`).catch(() => {});
    return text;
  };
  return { code: status.code, stdout: await read("out"), stderr: await read("err") };
}

/** A bundle owned by the user: a busybox root and `spec --rootless` running `args`. */
async function bundleAs(
  u: TestUser,
  name: string,
  args: string[],
  change: (s: Spec) => Spec = (s) => s,
): Promise<string> {
  const dir = join(u.home, name);
  const rootfs = join(dir, "rootfs");
  for (const d of ["bin", "etc", "tmp", "proc", "sys", "dev"]) {
    await Deno.mkdir(join(rootfs, d), { recursive: true });
  }
  await Deno.copyFile("/bin/busybox", join(rootfs, "bin/busybox"));
  await Deno.chmod(join(rootfs, "bin/busybox"), 0o755);
  for (const a of (await run("/bin/busybox", ["--list"])).split("\n")) {
    if (a && a !== "busybox") await Deno.symlink("busybox", join(rootfs, "bin", a));
  }
  await Deno.writeTextFile(join(rootfs, "etc/passwd"), "root:x:0:0:root:/:/bin/sh\n");
  await run("chown", ["-R", `${u.uid}:${u.gid}`, dir]);
  const made = await runcAs(u, dir, ["spec", "--rootless"]);
  assertEquals(made.code, 0, made.stderr);
  const spec = JSON.parse(await Deno.readTextFile(join(dir, "config.json"))) as Spec;
  const mine: Spec = {
    ...spec,
    process: { ...spec.process, terminal: false, args },
    linux: { ...spec.linux, cgroupsPath: `/tsbox-ocirootless-${name}` },
  };
  await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify(change(mine)));
  return dir;
}

Deno.test({
  name: "rootless tsbox runc: spec --rootless, run with the user's own ids, then a subuid range",
  ignore: !isRoot || !userns.allowed,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await withUser(async (u) => {
      const b = await bundleAs(u, "b1", [
        "sh",
        "-c",
        "id; cat /proc/self/uid_map /proc/self/gid_map; readlink /proc/self/ns/user; exit 3",
      ]);
      const spec = JSON.parse(await Deno.readTextFile(join(b, "config.json"))) as Spec;
      // runc's rootless spec: a user namespace, the user's ids, no network namespace, /sys bound.
      assertEquals(spec.linux.uidMappings, [{ containerID: 0, hostID: u.uid, size: 1 }]);
      assertEquals(spec.linux.gidMappings, [{ containerID: 0, hostID: u.gid, size: 1 }]);
      assertEquals(
        spec.linux.namespaces!.map((n) => n.type).sort(),
        ["ipc", "mount", "pid", "user", "uts"],
      );
      assertEquals(spec.mounts!.find((m) => m.destination === "/sys")?.options?.[0], "rbind");
      const r = await runcAs(u, b, ["run", "t-rl1"]);
      assertEquals(r.code, 3, r.stderr);
      const lines = r.stdout.trim().split("\n");
      assertEquals(lines[0], "uid=0(root) gid=0 groups=0");
      assertEquals(
        lines.slice(1, 3).map((l) => l.trim().split(/\s+/).map(Number)),
        [[0, u.uid, 1], [0, u.gid, 1]],
      );
      assertMatch(lines[3], /^user:\[\d+\]$/);
      assertEquals(lines[3] === Deno.readLinkSync("/proc/self/ns/user"), false);
      // Run and gone: the state dir holds nothing of it.
      assertEquals([...Deno.readDirSync(join(u.home, "state"))].length, 0);

      // Without --root and XDG_RUNTIME_DIR the state goes to /tmp/tsbox-runc-UID, made
      // private; one someone else planted there is refused.
      const tmpRoot = `/tmp/tsbox-runc-${u.uid}`;
      await Deno.mkdir(tmpRoot, { mode: 0o777 });
      await Deno.chmod(tmpRoot, 0o777);
      try {
        const planted = await runcAs(u, b, ["list"], []);
        assertEquals(planted.code, 1);
        assertStringIncludes(planted.stderr, `${tmpRoot} is not a private directory`);
        await Deno.remove(tmpRoot);
        assertEquals((await runcAs(u, b, ["list"], [])).code, 0);
        const made = await Deno.stat(tmpRoot);
        assertEquals([made.uid, (made.mode ?? 0) & 0o777], [u.uid, 0o700]);
      } finally {
        await Deno.remove(tmpRoot, { recursive: true }).catch(() => {});
      }

      // With a subordinate range: newuidmap/newgidmap map it, container uid 1000 is start+999.
      const { start } = await addRange(u);
      const shared = join(u.home, "shared");
      await Deno.mkdir(shared);
      await Deno.chmod(shared, 0o777);
      const b2 = await bundleAs(u, "b2", [
        "sh",
        "-c",
        "id; cat /proc/self/uid_map /proc/self/gid_map; touch /shared/made",
      ], (s) => ({
        ...s,
        process: { ...s.process, user: { uid: 1000, gid: 1000, additionalGids: [2000] } },
        mounts: [...s.mounts ?? [], {
          destination: "/shared",
          type: "bind",
          source: shared,
          options: ["rbind", "rw"],
        }],
        linux: {
          ...s.linux,
          uidMappings: [{ containerID: 0, hostID: u.uid, size: 1 }, {
            containerID: 1,
            hostID: start,
            size: 65536,
          }],
          gidMappings: [{ containerID: 0, hostID: u.gid, size: 1 }, {
            containerID: 1,
            hostID: start,
            size: 65536,
          }],
        },
      }));
      const r2 = await runcAs(u, b2, ["run", "t-rl2"]);
      assertEquals(r2.code, 0, r2.stderr);
      const l2 = r2.stdout.trim().split("\n");
      assertEquals(l2[0], "uid=1000 gid=1000 groups=2000");
      assertEquals(
        l2.slice(1).map((l) => l.trim().split(/\s+/).map(Number)),
        [[0, u.uid, 1], [1, start, 65536], [0, u.gid, 1], [1, start, 65536]],
      );
      const made = await Deno.stat(join(shared, "made"));
      assertEquals([made.uid, made.gid], [start + 999, start + 999]);
    });
  },
});

Deno.test({
  name: "rootless tsbox runc: create, state, start, kill, delete; no cgroup: pause refused, " +
    "limits refused",
  ignore: !isRoot || !userns.allowed,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await withUser(async (u) => {
      const b = await bundleAs(u, "b3", ["sleep", "1000"]);
      const pidFile = join(u.home, "pid");
      const id = "t-rl3";
      try {
        const c = await runcAs(u, b, ["create", "--pid-file", pidFile, id]);
        assertEquals(c.code, 0, c.stderr);
        const pid = Number(await Deno.readTextFile(pidFile));
        let st = JSON.parse((await runcAs(u, b, ["state", id])).stdout);
        assertEquals([st.status, st.pid], ["created", pid]);
        // The process is the user's on the host, in a user namespace of its own.
        assertMatch(
          Deno.readTextFileSync(`/proc/${pid}/status`),
          new RegExp(`^Uid:\\s+${u.uid}\\s`, "m"),
        );
        assertEquals((await runcAs(u, b, ["start", id])).code, 0);
        st = JSON.parse((await runcAs(u, b, ["state", id])).stdout);
        assertEquals(st.status, "running");
        const listed = JSON.parse((await runcAs(u, b, ["list", "--format", "json"])).stdout);
        assertEquals(
          listed.map((c: { id: string; owner: string }) => [c.id, c.owner]),
          [[id, u.name]],
        );
        const ps = JSON.parse((await runcAs(u, b, ["ps", "--format", "json", id])).stdout);
        assertEquals(ps, [pid]);
        // No cgroup was created for it (none is delegated to the user here).
        assertEquals(
          await Deno.stat("/sys/fs/cgroup/pids/tsbox-ocirootless-b3").then(() => 1, () => 0),
          0,
        );
        const paused = await runcAs(u, b, ["pause", id]);
        assertEquals(paused.code, 1);
        assertStringIncludes(paused.stderr, "has no cgroup");
        assertEquals((await runcAs(u, b, ["kill", id, "KILL"])).code, 0);
        for (let i = 0; i < 200; i++) {
          st = JSON.parse((await runcAs(u, b, ["state", id])).stdout);
          if (st.status === "stopped") break;
          await new Promise((r) => setTimeout(r, 25));
        }
        assertEquals(st.status, "stopped");
        assertEquals((await runcAs(u, b, ["delete", id])).code, 0);
        assertEquals([...Deno.readDirSync(join(u.home, "state"))].length, 0);

        // Limits need a cgroup: refused clearly, nothing left.
        const limited = await bundleAs(u, "b4", ["true"], (s) => ({
          ...s,
          linux: { ...s.linux, resources: { pids: { limit: 10 } } },
        }));
        const r = await runcAs(u, limited, ["run", "t-rl4"]);
        assertEquals(r.code, 1);
        assertStringIncludes(r.stderr, "rootless: linux.resources sets limits");
        assertEquals([...Deno.readDirSync(join(u.home, "state"))].length, 0);

        // Hooks, rootless: each in its place (the container's mount namespace for
        // createContainer and startContainer, entered as the user who owns it).
        const seen = join(u.home, "seen");
        await Deno.mkdir(seen);
        await Deno.chown(seen, u.uid, u.gid);
        const hook = (name: string, dir: string) => ({
          path: "/bin/sh",
          args: [
            "sh",
            "-c",
            `cat > ${dir}/${name}.json; readlink /proc/self/ns/mnt > ${dir}/${name}.mnt; ` +
            `id -u > ${dir}/${name}.uid`,
          ],
        });
        const hooked = await bundleAs(u, "b5", ["readlink", "/proc/self/ns/mnt"], (s) => ({
          ...s,
          mounts: [...s.mounts ?? [], {
            destination: "/seen",
            type: "bind",
            source: seen,
            options: ["rbind", "rw"],
          }],
          hooks: {
            createRuntime: [hook("createRuntime", seen)],
            createContainer: [hook("createContainer", seen)],
            startContainer: [hook("startContainer", "/seen")],
          },
        }));
        const h = await runcAs(u, hooked, ["run", "t-rl5"]);
        assertEquals(h.code, 0, h.stderr);
        const ctrMnt = h.stdout.trim();
        const read = (f: string) => Deno.readTextFileSync(join(seen, f)).trim();
        assertEquals(read("createRuntime.mnt"), Deno.readLinkSync("/proc/self/ns/mnt"));
        assertEquals(read("createRuntime.uid"), String(u.uid));
        for (const name of ["createContainer", "startContainer"]) {
          assertEquals(read(`${name}.mnt`), ctrMnt, name);
          assertEquals(read(`${name}.uid`), "0", name);
        }
        assertEquals(JSON.parse(read("createContainer.json")).status, "creating");
        assertEquals(JSON.parse(read("startContainer.json")).status, "created");
      } finally {
        await runcAs(u, b, ["delete", "--force", id]);
      }
    });
  },
});

Deno.test({
  name: "rootless podman with tsbox runc as its runtime: run --rm, run -d, exec, logs, stop, rm",
  ignore: !isRoot || !userns.allowed,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await withUser(async (u) => {
      const { start } = await addRange(u);
      // podman's per-user runtime dir, as a login session would have it.
      const xdg = await Deno.makeTempDir({ prefix: "tsbox-rlpodman-" });
      await Deno.chown(xdg, u.uid, u.gid);
      await Deno.chmod(xdg, 0o700);
      const runtime = join(u.home, "tsbox-runc");
      await Deno.writeTextFile(
        runtime,
        `#!/bin/sh\nDENO_DIR='${u.denoDir}' DENO_NO_UPDATE_CHECK=1 exec '${Deno.execPath()}' ` +
          `run -A --quiet --cached-only '${MAIN}' runc "$@"\n`,
        { mode: 0o755 },
      );
      const conf = join(u.home, "containers.conf");
      await Deno.writeTextFile(conf, "[containers]\ndefault_ulimits = []\n");
      const b = await bundleAs(u, "img", ["true"]);
      const tar = join(u.home, "img.tar");
      await run("tar", ["-C", join(b, "rootfs"), "-cf", tar, "."]);
      await run("chown", [`${u.uid}:${u.gid}`, tar, conf, runtime]);
      const podman = async (args: string[]) => {
        const out = await new Deno.Command("setpriv", {
          args: [
            `--reuid=${u.uid}`,
            `--regid=${u.gid}`,
            "--init-groups",
            "--",
            "podman",
            "--storage-driver",
            "vfs",
            "--root",
            join(u.home, "store"),
            "--runroot",
            join(xdg, "run"),
            "--cgroup-manager",
            "cgroupfs",
            "--runtime",
            runtime,
            ...args,
          ],
          cwd: u.home,
          clearEnv: true,
          env: {
            HOME: u.home,
            USER: u.name,
            XDG_RUNTIME_DIR: xdg,
            CONTAINERS_CONF: conf,
            PATH: "/usr/local/bin:/usr/bin:/bin",
          },
          stdin: "null",
          stdout: "piped",
          stderr: "piped",
        }).output();
        const dec = new TextDecoder();
        return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
      };
      try {
        const imported = await podman(["import", tar, "localhost/tsbox-rl"]);
        assertEquals(imported.code, 0, imported.stderr);
        const r = await podman([
          "run",
          "--rm",
          "--network",
          "none",
          "localhost/tsbox-rl",
          "sh",
          "-c",
          "id -u; cat /proc/self/uid_map; exit 3",
        ]);
        assertEquals(r.code, 3, r.stderr);
        const lines = r.stdout.trim().split("\n");
        assertEquals(lines[0], "0");
        assertEquals(
          lines.slice(1).map((l) => l.trim().split(/\s+/).map(Number)),
          [[0, u.uid, 1], [1, start, 65536]],
        );
        // The runtime ran as root of podman's user namespace: its state went to XDG_RUNTIME_DIR.
        assertEquals((await Deno.stat(join(xdg, "tsbox-runc"))).isDirectory, true);
        const d = await podman([
          "run",
          "-d",
          "--name",
          "t-rlpodman",
          "localhost/tsbox-rl",
          "sh",
          "-c",
          "echo started; exec sleep 1000",
        ]);
        assertEquals(d.code, 0, d.stderr);
        const e = await podman([
          "exec",
          "-u",
          "1000",
          "t-rlpodman",
          "sh",
          "-c",
          "echo exec:$(id -u)",
        ]);
        assertEquals([e.code, e.stdout], [0, "exec:1000\n"], e.stderr);
        assertEquals((await podman(["logs", "t-rlpodman"])).stdout, "started\n");
        assertEquals((await podman(["stop", "-t", "1", "t-rlpodman"])).code, 0);
        assertEquals((await podman(["rm", "t-rlpodman"])).code, 0);
        assertEquals([...Deno.readDirSync(join(xdg, "tsbox-runc"))].length, 0);
      } finally {
        await podman(["rm", "-f", "t-rlpodman"]);
        // podman leaves a pause process holding its user namespace: end it (it is the test's).
        const pause = await Deno.readTextFile(join(xdg, "libpod", "tmp", "pause.pid"))
          .catch(() => "");
        if (Number(pause) > 0) Deno.kill(Number(pause), "SIGKILL");
        await Deno.remove(xdg, { recursive: true }).catch(() => {});
      }
    });
  },
});
