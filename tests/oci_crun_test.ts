/**
 * Another runtime runs tsbox's spec the same way (root, Debian's crun). A container is created
 * with several of `run`'s flags; tsbox starts it; then its bundle is copied, the container's
 * exported filesystem put at `root.path`, and crun runs the same config.json. What the process
 * sees in both (ids, cwd, env, hostname, capability sets, no_new_privs, seccomp mode, rlimits,
 * read-only root, masked and read-only paths, mount points) and the memory and pids limits the
 * host shows for its cgroup must match. The created container's config.json also validates
 * against the runtime-spec's JSON schema.
 */
import { join } from "node:path";
import { assertEquals, assertOk } from "./assert.ts";
import { seedStore } from "./busybox_store.ts";
import { schemaValidator } from "./fixtures/oci_schema.ts";
import { tempRoot, tsbox } from "./cli.ts";
import type { Spec } from "../src/oci/spec.ts";

const isRoot = Deno.uid() === 0;
const hasCrun = (() => {
  try {
    return Deno.statSync("/usr/bin/crun").isFile;
  } catch {
    return false;
  }
})();

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
  "ls -A /dev | sort | tr '\\n' ' '; echo",
  "awk '{print $5}' /proc/self/mountinfo | sort | tr '\\n' ' '; echo",
  "echo ready > /x/ready",
  "cat /x/go > /dev/null",
].join("; ");

const USER_FLAGS = [
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
];

async function sh(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const dec = new TextDecoder();
  if (!out.success) throw new Error(`${cmd} ${args.join(" ")}: ${dec.decode(out.stderr)}`);
  return dec.decode(out.stdout);
}

/** The limit file of `controller` for `pid`'s cgroup, as the host shows it. */
function hostLimit(pid: number, controller: "memory" | "pids"): string {
  const lines = Deno.readTextFileSync(`/proc/${pid}/cgroup`).trim().split("\n");
  const v1 = lines.map((l) => l.split(":")).find(([, ctrls]) =>
    ctrls.split(",").includes(controller)
  );
  if (v1) {
    const file = controller === "memory" ? "memory.limit_in_bytes" : "pids.max";
    return Deno.readTextFileSync(`/sys/fs/cgroup/${controller}${v1[2]}/${file}`).trim();
  }
  const v2 = lines.find((l) => l.startsWith("0::"))!.slice(3);
  const file = controller === "memory" ? "memory.max" : "pids.max";
  return Deno.readTextFileSync(`/sys/fs/cgroup/unified${v2}/${file}`).trim();
}

async function waitForFile(path: string, child: Deno.ChildProcess): Promise<void> {
  let ended = false;
  child.status.then(() => ended = true);
  for (let i = 0; i < 600; i++) {
    try {
      Deno.statSync(path);
      return;
    } catch { /* not yet */ }
    if (ended) throw new Error(`the container ended before it was ready`);
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${path} never appeared`);
}

interface Seen {
  readonly output: string;
  readonly memory: string;
  readonly pids: string;
}

/** Runs one side: `child` is the runtime's process; `pid` finds PID 1 once it is ready. */
async function observe(
  xdir: string,
  child: Deno.ChildProcess,
  pid: () => Promise<number>,
): Promise<Seen> {
  await Deno.remove(join(xdir, "ready")).catch(() => {});
  try {
    await waitForFile(join(xdir, "ready"), child);
  } catch (err) {
    const out = await child.output();
    const dec = new TextDecoder();
    throw new Error(`${err}: ${dec.decode(out.stdout)}${dec.decode(out.stderr)}`);
  }
  const p = await pid();
  const memory = hostLimit(p, "memory");
  const pids = hostLimit(p, "pids");
  await Deno.writeTextFile(join(xdir, "go"), "go\n");
  const out = await child.output();
  const dec = new TextDecoder();
  assertEquals(out.code, 0, dec.decode(out.stderr));
  return { output: dec.decode(out.stdout), memory, pids };
}

/** The spec's default devices, which each runtime supplies its own way. */
const DEFAULT_DEVICES = ["null", "zero", "full", "random", "urandom", "tty"];

/**
 * What the process saw, without the two ways the runtimes may differ under the spec: the
 * default devices are bind-mounted host nodes in tsbox (which also works in a user namespace)
 * and mknod'ed nodes in crun, so only tsbox shows them as mount points; crun adds a `/dev/core`
 * link (to /proc/kcore), as runc does.
 */
function sameRuntime(output: string): string {
  return output.split("\n").map((line) =>
    line.split(" ").filter((w) => w !== "core" && !DEFAULT_DEVICES.some((d) => w === `/dev/${d}`))
      .join(" ")
  ).join("\n");
}

/**
 * crun 1.8 refuses our hybrid cgroup layout until hugetlb has its v1 hierarchy (design.md):
 * mounted for the test when missing; returns how to put the machine back as it was.
 */
function hugetlbForCrun(): () => void {
  if (Deno.readTextFileSync("/proc/self/mountinfo").includes(" /sys/fs/cgroup/hugetlb ")) {
    return () => {};
  }
  Deno.mkdirSync("/sys/fs/cgroup/hugetlb", { recursive: true });
  new Deno.Command("mount", {
    args: ["-t", "cgroup", "-o", "hugetlb", "cgroup", "/sys/fs/cgroup/hugetlb"],
  }).outputSync();
  return () => {
    new Deno.Command("umount", { args: ["/sys/fs/cgroup/hugetlb"] }).outputSync();
  };
}

/**
 * Creates a container with `flags`, starts it with tsbox, runs its bundle with crun, and
 * compares; returns what tsbox's process saw.
 */
async function compare(name: string, flags: readonly string[], memory: number, pids: number) {
  const { root, cleanup } = await tempRoot();
  const work = await Deno.makeTempDir({ prefix: "tsbox-oci-" });
  const crunRoot = join(work, "crun-state");
  const crunId = `tsbox-oci-${Deno.pid}`;
  let restoreHugetlb = () => {};
  try {
    await seedStore(root);
    const xdir = join(work, "x");
    await Deno.mkdir(xdir);
    await Deno.chmod(xdir, 0o777);
    await sh("mkfifo", ["-m", "0666", join(xdir, "go")]);
    const created = await tsbox(
      ["create", "--name", name, ...flags, "-v", `${xdir}:/x`, "busybox", "sh", "-c", SCRIPT],
      { root },
    );
    assertEquals(created.code, 0, created.stderr);
    const id = created.stdout.trim();
    const inspect = JSON.parse((await tsbox(["inspect", name], { root })).stdout)[0];
    const configPath = inspect.OCIConfigPath as string;
    assertEquals(configPath, join(root, "containers", id, "config.json"));
    const spec = JSON.parse(await Deno.readTextFile(configPath)) as Spec;
    const validate = schemaValidator();
    assertOk(validate(spec), JSON.stringify(validate.errors));

    // tsbox's own start.
    const main = new URL("../main.ts", import.meta.url).pathname;
    const started = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--quiet", main, "--root", root, "start", "-a", name],
      env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const tsboxSeen = await observe(xdir, started, async () => {
      const r = await tsbox(["inspect", "-f", "{{.State.Pid}}", name], { root });
      return Number(r.stdout.trim());
    });

    // The same bundle under crun: the exported filesystem at root.path, its own cgroup.
    const bundle = join(work, "bundle");
    await Deno.mkdir(join(bundle, "rootfs"), { recursive: true });
    const tar = join(work, "fs.tar");
    const exported = await tsbox(["export", "-o", tar, name], { root });
    assertEquals(exported.code, 0, exported.stderr);
    await sh("tar", ["-xpf", tar, "--numeric-owner", "-C", join(bundle, "rootfs")]);
    const copy = {
      ...spec,
      root: { ...spec.root, path: "rootfs" },
      linux: { ...spec.linux, cgroupsPath: `/tsbox-oci-test/${crunId}` },
    };
    await Deno.writeTextFile(join(bundle, "config.json"), JSON.stringify(copy));
    restoreHugetlb = hugetlbForCrun();
    const crun = new Deno.Command("crun", {
      args: ["--root", crunRoot, "run", "--bundle", bundle, crunId],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const crunSeen = await observe(xdir, crun, async () => {
      const state = JSON.parse(await sh("crun", ["--root", crunRoot, "state", crunId]));
      return state.pid as number;
    });

    if (Deno.env.get("TSBOX_TEST_SHOW")) console.error(tsboxSeen.output);
    assertEquals(sameRuntime(crunSeen.output), sameRuntime(tsboxSeen.output));
    assertEquals(crunSeen.memory, String(memory));
    assertEquals(tsboxSeen.memory, String(memory));
    assertEquals(crunSeen.pids, String(pids));
    assertEquals(tsboxSeen.pids, String(pids));
    return tsboxSeen.output;
  } finally {
    await new Deno.Command("crun", { args: ["--root", crunRoot, "delete", "-f", crunId] })
      .output().catch(() => {});
    // crun removes the container's cgroup, not the parent the test named.
    for (const e of Deno.readDirSync("/sys/fs/cgroup")) {
      await Deno.remove(`/sys/fs/cgroup/${e.name}/tsbox-oci-test`).catch(() => {});
    }
    restoreHugetlb();
    await cleanup();
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
}

function crunTest(name: string, fn: () => Promise<void>) {
  Deno.test({
    name,
    ignore: !isRoot || !hasCrun,
    sanitizeResources: false,
    sanitizeOps: false,
    fn,
  });
}

crunTest(
  "crun runs tsbox's config.json as tsbox does: -u, -w, -e, -h, nnp, ulimit, r/o",
  async () => {
    const seen = await compare("t-oci-user", USER_FLAGS, 64 * 1024 * 1024, 50);
    // What the flags asked for shows in what both saw.
    assertOk(seen.startsWith("uid=1000(app) gid=1000(app) groups=1000(app),2000(extra)\n"), seen);
    for (
      const line of ["/home/app", "oci-host", "FOO=bar", "NoNewPrivs:\t1", "Seccomp:\t2", "root=ro"]
    ) {
      assertOk(seen.includes(`${line}\n`), `${line} in:\n${seen}`);
    }
  },
);

crunTest(
  "crun runs tsbox's config.json as tsbox does: root, cap-add/drop, default seccomp",
  async () => {
    const seen = await compare(
      "t-oci-root",
      [
        "--cap-add",
        "SYS_ADMIN",
        "--cap-drop",
        "NET_RAW",
        "--memory",
        "32m",
        "--pids-limit",
        "20",
        "-w",
        "/tmp",
        "--tmpfs",
        "/scratch",
      ],
      32 * 1024 * 1024,
      20,
    );
    // docker's 14 capabilities, plus SYS_ADMIN, minus NET_RAW, effective for root.
    for (
      const line of ["CapEff:\t00000000a82405fb", "CapBnd:\t00000000a82405fb", "root=rw", "/tmp"]
    ) {
      assertOk(seen.includes(`${line}\n`), `${line} in:\n${seen}`);
    }
  },
);
