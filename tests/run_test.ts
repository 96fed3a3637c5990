/**
 * `tsbox run` against real containers (root): a store holding a busybox image made from Debian's
 * busybox-static, then the CLI as a user runs it, checked against what the kernel shows.
 */
import { dirname, join } from "node:path";
import { Store } from "../src/store/mod.ts";
import { seedStore, sha } from "./busybox_store.ts";
import { Container, newContainerId } from "../src/runtime/mod.ts";
import { CgroupV1, locateCgroup, sharesToWeight } from "../src/runtime/cgroups.ts";
import { assertEquals, assertMatch, assertOk, assertStringIncludes } from "./assert.ts";
import { tempRoot, tsbox } from "./cli.ts";
import { purgeRootSync } from "./cleanup.ts";
import { startSpec } from "./start_spec.ts";

const isRoot = Deno.uid() === 0;

let shared: Promise<{ root: string; layerDir: string }> | undefined;
function sharedStore() {
  shared ??= (async () => {
    const { root } = await tempRoot();
    const { layerDir } = await seedStore(root);
    globalThis.addEventListener("unload", () => purgeRootSync(root));
    return { root, layerDir };
  })();
  return shared;
}

async function run(args: string[]) {
  const { root } = await sharedStore();
  return await tsbox(["run", "--rm", ...args], { root });
}

async function treeDigest(dir: string): Promise<string> {
  const out = await new Deno.Command("sh", {
    args: [
      "-c",
      `cd '${dir}' && find . -printf '%p %y %m %s %l\\n' | sort && find . -type f -exec sha256sum {} + | sort`,
    ],
  }).output();
  return await sha(new TextDecoder().decode(out.stdout));
}

function rootTest(name: string, fn: () => Promise<void>) {
  Deno.test({ name, ignore: !isRoot, sanitizeResources: false, sanitizeOps: false, fn });
}

rootTest("the container's process is PID 1 and ps sees only the container", async () => {
  const r = await run(["busybox", "sh", "-c", "echo $$; ps -o pid,comm; true"]);
  assertEquals(r.code, 0, r.stderr);
  const [pid, header, ...rows] = r.stdout.trim().split("\n");
  assertEquals(pid, "1");
  assertMatch(header, /PID\s+COMMAND/);
  assertEquals(rows.map((l) => l.trim().split(/\s+/)[1]), ["sh", "ps"]);
});

rootTest("hostname is the short id, also in HOSTNAME; HOME and PATH are set", async () => {
  const { root } = await sharedStore();
  const r = await tsbox(["run", "busybox", "sh", "-c", 'hostname; echo "$HOSTNAME|$HOME|$PATH"'], {
    root,
  });
  assertEquals(r.code, 0, r.stderr);
  const [hostname, env] = r.stdout.trim().split("\n");
  const ids = [...Deno.readDirSync(join(root, "containers"))].map((e) => e.name)
    .filter((id) => id.startsWith(hostname));
  assertEquals(ids.length, 1, "one container dir whose id starts with the hostname");
  assertMatch(ids[0], /^[0-9a-f]{64}$/);
  assertEquals(hostname, ids[0].slice(0, 12));
  assertEquals(env, `${hostname}|/root|/usr/sbin:/usr/bin:/sbin:/bin`);
  await Deno.remove(join(root, "containers", ids[0]), { recursive: true });
});

rootTest("--network private: a namespace with only lo, and it is up", async () => {
  const r = await run([
    "--network",
    "private",
    "busybox",
    "sh",
    "-c",
    "cat /proc/net/dev; ip link show lo",
  ]);
  assertEquals(r.code, 0, r.stderr);
  const ifaces = r.stdout.split("\n").filter((l) => /^\s*\w+:\s+\d/.test(l)).map((l) =>
    l.trim().split(":")[0]
  );
  assertEquals(ifaces, ["lo"]);
  assertMatch(r.stdout, /<LOOPBACK,UP,LOWER_UP>/);
});

rootTest("the cgroup namespace is rooted at the container's cgroup", async () => {
  const r = await run(["busybox", "cat", "/proc/1/cgroup"]);
  assertEquals(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split("\n");
  assertOk(lines.length > 0);
  for (const line of lines) assertMatch(line, /:\/$/);
});

rootTest("docker's default capabilities, nothing inheritable or ambient", async () => {
  const r = await run(["busybox", "grep", "^Cap", "/proc/self/status"]);
  assertEquals(r.code, 0, r.stderr);
  const caps = Object.fromEntries(r.stdout.trim().split("\n").map((l) => l.split(/:\s+/)));
  assertEquals(caps.CapEff, "00000000a80425fb");
  assertEquals(caps.CapPrm, "00000000a80425fb");
  assertEquals(caps.CapBnd, "00000000a80425fb");
  assertEquals(caps.CapInh, "0000000000000000");
  assertEquals(caps.CapAmb, "0000000000000000");
});

rootTest("only fds 0, 1, 2 reach the container (3 is ls's own directory)", async () => {
  const r = await run(["busybox", "ls", "/proc/self/fd"]);
  assertEquals(r.code, 0, r.stderr);
  assertEquals(r.stdout.trim().split(/\s+/), ["0", "1", "2", "3"]);
});

rootTest("--rm leaves no file, no mount, no cgroup and untouched layers", async () => {
  const { root, layerDir } = await sharedStore();
  const before = await treeDigest(layerDir);
  // Mounts under this store only: other tests' stores may mount and unmount meanwhile.
  const ownMounts = async () =>
    (await Deno.readTextFile("/proc/self/mountinfo")).split("\n")
      .filter((line) => line.split(" ")[4]?.startsWith(`${root}/`));
  const mounts = await ownMounts();
  const cgroupsBefore = tsboxCgroups();
  const r = await run([
    "busybox",
    "sh",
    "-c",
    "echo data > /etc/passwd; echo x > /newfile; rm /bin/ls; cat /etc/passwd",
  ]);
  assertEquals(r.code, 0, r.stderr);
  assertEquals(r.stdout, "data\n");
  assertEquals(await treeDigest(layerDir), before);
  assertEquals(await ownMounts(), mounts);
  assertEquals([...Deno.readDirSync(join(root, "containers"))].length, 0);
  // Other containers (of concurrent runs) may come and go: only new cgroups count.
  assertEquals(tsboxCgroups().filter((c) => !cgroupsBefore.includes(c)), []);
  const again = await run([
    "busybox",
    "sh",
    "-c",
    "test -e /newfile || echo gone; test -e /bin/ls && echo ls",
  ]);
  assertEquals(again.stdout, "gone\nls\n");
});

rootTest("exit codes: 0, 3, 126 (not executable), 127 (not found)", async () => {
  assertEquals((await run(["busybox", "true"])).code, 0);
  assertEquals((await run(["busybox", "sh", "-c", "exit 3"])).code, 3);
  const denied = await run(["busybox", "/etc"]);
  assertEquals(denied.code, 126);
  assertStringIncludes(denied.stderr, "permission denied");
  const missing = await run(["busybox", "no-such-command"]);
  assertEquals(missing.code, 127);
  assertStringIncludes(missing.stderr, "executable file not found in $PATH");
  assertEquals((await run(["busybox", "/no/such/file"])).code, 127);
});

rootTest("a signal that kills PID 1 gives 128+N; SIGTERM to tsbox is forwarded", async () => {
  const { root } = await sharedStore();
  const id = newContainerId();
  const store = await Store.open(root);
  const image = store.findImage("busybox")!;
  store.close();
  const { spec, options } = startSpec(root, id, image.layers.map((l) => l.shortId), {
    argv: ["sleep", "60"],
    env: ["PATH=/bin"],
    network: "none",
  });
  const c = await Container.start(spec, options);
  c.kill(9);
  assertEquals((await c.wait()).exitCode, 137);
  await c.remove();

  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--quiet",
      new URL("../main.ts", import.meta.url).pathname,
      "--root",
      root,
      "run",
      "--rm",
      "busybox",
      "sh",
      "-c",
      "trap 'exit 143' TERM; echo ready; while :; do sleep 0.05; done",
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const reader = child.stdout.getReader();
  const first = await reader.read();
  assertEquals(new TextDecoder().decode(first.value), "ready\n");
  child.kill("SIGTERM");
  reader.releaseLock();
  const out = await child.output();
  assertEquals(out.code, 143, new TextDecoder().decode(out.stderr));
});

rootTest("--memory 32m: allocating 200 MB ends with 137 (OOM kill)", async () => {
  const r = await run([
    "--memory",
    "32m",
    "busybox",
    "sh",
    "-c",
    "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived",
  ]);
  assertEquals(r.code, 137, r.stderr);
  assertEquals(r.stdout, "");
});

rootTest("--pids-limit 20 stops a fork loop", async () => {
  const out = await Deno.makeTempDir();
  try {
    const r = await run([
      "--pids-limit",
      "20",
      "-v",
      `${out}:/out`,
      "busybox",
      "sh",
      "-c",
      "for i in $(seq 1 60); do sleep 30 & echo $! >> /out/started; done",
    ]);
    // busybox sh gives up at the first failed fork.
    assertEquals(r.code, 2);
    assertStringIncludes(r.stderr, "can't fork");
    const started = (await Deno.readTextFile(join(out, "started"))).trim().split("\n").length;
    assertOk(started >= 15 && started < 20, `sleeps started: ${started}`);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

rootTest("--cpus 0.5 and --cpu-shares are written to the container's cgroup", async () => {
  const { root } = await sharedStore();
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--quiet",
      new URL("../main.ts", import.meta.url).pathname,
      "--root",
      root,
      "run",
      "--rm",
      "--cpus",
      "0.5",
      "--cpu-shares",
      "512",
      "busybox",
      "sh",
      "-c",
      "hostname; sleep 30",
    ],
    stdout: "piped",
  }).spawn();
  const reader = child.stdout.getReader();
  const hostname = new TextDecoder().decode((await reader.read()).value).trim();
  const id = [...Deno.readDirSync(join(root, "containers"))].map((e) => e.name)
    .find((name) => name.startsWith(hostname));
  assertOk(id, "the container's directory");
  // Where tsbox puts the container's cgroup on this host (v1 here, v2 on most user hosts).
  const cg = locateCgroup(id);
  try {
    const read = async (dir: string, file: string) =>
      (await Deno.readTextFile(`${dir}/${file}`)).trim();
    if (cg instanceof CgroupV1) {
      const cpu = cg.byController.get("cpu");
      assertOk(cpu, "v1 cpu cgroup of the container");
      assertEquals(await read(cpu, "cpu.cfs_quota_us"), "50000");
      assertEquals(await read(cpu, "cpu.cfs_period_us"), "100000");
      assertEquals(await read(cpu, "cpu.shares"), "512");
    } else {
      assertEquals(await read(cg.dir, "cpu.max"), "50000 100000");
      assertEquals(await read(cg.dir, "cpu.weight"), String(sharesToWeight(512)));
    }
  } finally {
    child.kill("SIGKILL");
    // tsbox itself was killed: clean up what it could not (as a later `rm` would). The
    // container's processes go first: they hold the pipe that output() reads to its end.
    await cg.remove();
    reader.releaseLock();
    await child.output();
    await new Deno.Command("umount", { args: ["-l", join(root, "containers", id, "rootfs")] })
      .output();
    await Deno.remove(join(root, "containers", id), { recursive: true });
  }
});

rootTest("-u, -e, --env-file, -w, --entrypoint and image defaults", async () => {
  const { root } = await sharedStore();
  const envFile = join(root, "env.list");
  await Deno.writeTextFile(envFile, "# comment\nFROM_FILE=yes\n");
  const r = await run([
    "-u",
    "app",
    "-e",
    "A=1",
    "--env-file",
    envFile,
    "-w",
    "/work/dir",
    "--entrypoint",
    "sh",
    "busybox",
    "-c",
    'id; pwd; echo "$A $FROM_FILE $HOME"',
  ]);
  assertEquals(r.code, 0, r.stderr);
  const [id, pwd, env] = r.stdout.trim().split("\n");
  assertMatch(id, /^uid=1000\(app\) gid=1000\(app\) groups=1000\(app\),2000\(extra\)$/);
  assertEquals(pwd, "/work/dir");
  assertEquals(env, "1 yes /home/app");
  const caps = await run(["-u", "1000", "busybox", "grep", "^CapEff", "/proc/self/status"]);
  assertStringIncludes(caps.stdout, "0000000000000000");
});

rootTest("-v, --tmpfs and --read-only", async () => {
  const { root } = await sharedStore();
  const host = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(join(host, "in"), "from host\n");
    const r = await run([
      "--read-only",
      "-v",
      `${host}:/data`,
      "--tmpfs",
      "/scratch",
      "busybox",
      "sh",
      "-c",
      "cat /data/in; echo out > /data/out; echo t > /scratch/t && echo tmpfs-ok; touch /x 2>/dev/null || echo ro",
    ]);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(r.stdout, "from host\ntmpfs-ok\nro\n");
    assertEquals(await Deno.readTextFile(join(host, "out")), "out\n");
    const ro = await run(["-v", `${host}:/data:ro`, "busybox", "sh", "-c", "echo y > /data/y"]);
    assertOk(ro.code !== 0);
  } finally {
    await Deno.remove(host, { recursive: true });
  }
  void root;
});

/**
 * Every container cgroup under tsbox's parent dirs (one per v1 controller, or the one v2 dir),
 * found where tsbox's own placement rule puts them, as "parent/id".
 */
function tsboxCgroups(): string[] {
  const out: string[] = [];
  for (const parent of locateCgroup("any").dirs.map((d) => dirname(d))) {
    try {
      for (const e of Deno.readDirSync(parent)) {
        if (e.isDirectory) out.push(`${parent}/${e.name}`);
      }
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
  }
  return out;
}
