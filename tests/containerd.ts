/**
 * Debian's containerd (1.6) for tests, started by the test as its own child process with a
 * config of its own: socket, root, state, opt and runtime state dirs all under one temp dir, so
 * it never touches the system's containerd (/run/containerd/containerd.sock, /var/lib/containerd).
 *
 * Two things containerd 1.6 puts outside that dir, whatever the config says (measured): the runc
 * shim's ttrpc socket is `/run/containerd/s/<sha256(address/namespace/id)>` (hard-coded in the
 * shim), and ctr's IO fifos default to /run/containerd/fifo (tests pass `--fifo-dir`, see
 * {@link Containerd.taskFlags}). The runtime's own state (`--root` of runc or tsbox's runtime)
 * defaults to /run/containerd/runc and is moved under the temp dir by `--runc-root`.
 *
 * {@link Containerd.stop} kills by PID what this containerd started and is still there (container
 * processes, shims, runtime invocations, containerd itself), unmounts what is mounted under the
 * temp dir, removes the containers' cgroups (all under a parent of the harness's own) and the
 * shim sockets, then the dir. The same cleanup runs from an `unload` handler, and from a small
 * watchdog process when the test process is killed outright (`deno run -A tests/containerd.ts
 * --cleanup DIR`), so no containerd, shim or mount outlives the test however it ends.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import { mountsUnder } from "./cleanup.ts";

/** Raised when containerd cannot be started or does not answer. */
export class ContainerdStartError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "ContainerdStartError";
  }
}

/** One runtime handler of containerd's CRI plugin (`runtime_type` io.containerd.runc.v2). */
export interface CriRuntime {
  /** The runc-compatible executable (the shim's `BinaryName`). */
  readonly binary: string;
}

/** Turns on containerd's CRI plugin (off otherwise: it needs a sandbox image and a registry). */
export interface CriOptions {
  /** The pod sandbox ("pause") image's reference. */
  readonly sandboxImage: string;
  /** Registries (`HOST:PORT`) the CRI plugin reaches over plain HTTP. */
  readonly plainHttpRegistries: readonly string[];
  /** Runtime handlers by name. */
  readonly runtimes: Readonly<Record<string, CriRuntime>>;
  /**
   * A CNI network list for the pods (written to the harness's own CNI config dir before
   * containerd starts); without one, only pods on the node's network can run.
   */
  readonly cniConfList?: Readonly<Record<string, unknown>>;
}

/** Options of {@link startContainerd}. */
export interface ContainerdOptions {
  /** Enables the CRI plugin with these settings. */
  readonly cri?: CriOptions;
}

/** What a finished `ctr` left. */
export interface CtrResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** What is left of containerd's containers: each list is empty when nothing is. */
export interface Leftovers {
  /** Mount points under the harness's dir. */
  readonly mounts: string[];
  /** Shims of this containerd, runtime invocations, and processes in the harness's cgroups. */
  readonly processes: number[];
  /** Cgroup directories below the harness's cgroup parent, in every hierarchy. */
  readonly cgroups: string[];
  /** Entries in the runtime's state dir (`--runc-root`), namespace dirs descended into. */
  readonly runtimeState: string[];
  /** Shim sockets of this containerd under /run/containerd/s. */
  readonly shimSockets: string[];
  /** libcni's cached results (/var/lib/cni/results) of this containerd's pods. */
  readonly cniResults: string[];
}

/** A running containerd of a test's own. */
export interface Containerd {
  /** The temp dir that holds everything (config, sockets, root, state). */
  readonly dir: string;
  /** The gRPC socket (`ctr --address`). */
  readonly address: string;
  /** containerd's PID (a child of the test process). */
  readonly pid: number;
  /** The runtime state dir handed to the shim (`--runc-root`); the shim adds `/<namespace>`. */
  readonly runtimeRoot: string;
  /** Where ctr makes its IO fifos (`--fifo-dir`). */
  readonly fifoDir: string;
  /** The cgroup parent (`/NAME`) for the containers; `--cgroup PARENT/ID`. */
  readonly cgroupParent: string;
  /** Runs `ctr --address SOCKET ARGS...`. */
  ctr(args: readonly string[], opts?: { stdin?: string }): Promise<CtrResult>;
  /** `ctr run` flags that keep a task hermetic and pick `runtime` (runc-compatible binary). */
  taskFlags(runtime: string, id: string): string[];
  /** Pulls `ref` from a plain-HTTP registry into containerd's image store. */
  pull(ref: string): Promise<void>;
  /** What containers left; see {@link Leftovers}. */
  leftovers(): Leftovers;
  /** Stops containerd and removes everything it started or made (idempotent). */
  stop(): Promise<void>;
}

/** What the cleanup needs to know, written to DIR/harness.json for the watchdog. */
interface HarnessRecord {
  readonly dir: string;
  readonly address: string;
  readonly pid: number;
  readonly cgroupParent: string;
  /** /run/containerd paths the harness found missing at start (removed again when empty). */
  readonly madeRunDirs: string[];
  /** The test's CNI network: libcni caches its results in /var/lib/cni/results/NAME-*. */
  readonly cniNetwork?: string;
  /** The watchdog's PID, whose command line names the dir too (not a leftover). */
  watchdog?: number;
}

const SHIM_SOCKET_DIR = "/run/containerd/s";
const NAMESPACE = "default";

function tomlString(s: string): string {
  return JSON.stringify(s); // a JSON string is a valid TOML basic string for these paths
}

/** containerd's config.toml (version 2) with every path under `dir`. */
export function configToml(dir: string, address: string, cri?: CriOptions): string {
  const lines = [
    "version = 2",
    `root = ${tomlString(join(dir, "root"))}`,
    `state = ${tomlString(join(dir, "state"))}`,
    // The CRI plugin is off unless asked for: it would otherwise look for CNI config and
    // start a streaming server.
    cri ? "disabled_plugins = []" : 'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
    "[grpc]",
    `  address = ${tomlString(address)}`,
    "[ttrpc]",
    `  address = ${tomlString(`${address}.ttrpc`)}`,
    "[debug]",
    `  address = ${tomlString(join(dir, "debug.sock"))}`,
    '  level = "info"',
    "[metrics]",
    '  address = ""',
    '[plugins."io.containerd.internal.v1.opt"]',
    `  path = ${tomlString(join(dir, "opt"))}`,
  ];
  if (cri) {
    const p = '[plugins."io.containerd.grpc.v1.cri"';
    lines.push(
      `${p}]`,
      `  sandbox_image = ${tomlString(cri.sandboxImage)}`,
      // This machine refuses an oom_score_adj below 0 even to root (no CAP_SYS_RESOURCE).
      "  restrict_oom_score_adj = true",
      // Pods' network namespaces under the state dir instead of /var/run/netns.
      "  netns_mounts_under_state_dir = true",
      '  stream_server_address = "127.0.0.1"',
      '  stream_server_port = "0"',
      // A CNI config dir of the harness's own (empty unless a test writes one), not /etc/cni.
      `${p}.cni]`,
      '  bin_dir = "/usr/lib/cni"',
      `  conf_dir = ${tomlString(join(dir, "cni"))}`,
      `${p}.containerd]`,
      '  snapshotter = "overlayfs"',
      '  default_runtime_name = "runc"',
      `${p}.containerd.runtimes.runc]`,
      '  runtime_type = "io.containerd.runc.v2"',
      `${p}.containerd.runtimes.runc.options]`,
      `  Root = ${tomlString(join(dir, "runtime"))}`,
    );
    for (const [name, rt] of Object.entries(cri.runtimes)) {
      lines.push(
        `${p}.containerd.runtimes.${name}]`,
        '  runtime_type = "io.containerd.runc.v2"',
        `${p}.containerd.runtimes.${name}.options]`,
        `  BinaryName = ${tomlString(rt.binary)}`,
        `  Root = ${tomlString(join(dir, "runtime"))}`,
      );
    }
    for (const host of cri.plainHttpRegistries) {
      lines.push(
        `${p}.registry.mirrors.${tomlString(host)}]`,
        `  endpoint = [${tomlString(`http://${host}`)}]`,
      );
    }
  }
  return lines.join("\n") + "\n";
}

function procStat(pid: number): string[] | undefined {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const tail = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return tail; // [state, ppid, ...]
  } catch {
    return undefined;
  }
}

/** True while the process exists and is not a zombie. */
function alive(pid: number): boolean {
  const s = procStat(pid);
  return s !== undefined && s[0] !== "Z";
}

function allPids(): number[] {
  const out: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    const pid = Number(e.name);
    if (Number.isInteger(pid) && pid !== Deno.pid) out.push(pid);
  }
  return out;
}

function cmdline(pid: number): string[] {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0");
  } catch {
    return [];
  }
}

/** Every cgroup directory at or below `/NAME` in each hierarchy, deepest first. */
function cgroupTree(parent: string): string[] {
  const found: string[] = [];
  const walk = (path: string) => {
    found.push(path);
    try {
      for (const e of Deno.readDirSync(path)) if (e.isDirectory) walk(join(path, e.name));
    } catch { /* removed meanwhile */ }
  };
  for (const h of Deno.readDirSync("/sys/fs/cgroup")) {
    const top = join("/sys/fs/cgroup", h.name, parent);
    try {
      if (Deno.statSync(top).isDirectory) walk(top);
    } catch { /* not in this hierarchy */ }
  }
  return found.sort((a, b) => b.length - a.length);
}

function cgroupProcs(dirs: string[]): number[] {
  const pids = new Set<number>();
  for (const d of dirs) {
    try {
      for (const l of Deno.readTextFileSync(join(d, "cgroup.procs")).split("\n")) {
        if (l.trim()) pids.add(Number(l));
      }
    } catch { /* gone */ }
  }
  return [...pids];
}

/**
 * PIDs that belong to this harness, containerd itself left out: processes whose command line
 * names a path under the dir (shims by `-address`, runtime invocations by `--root`/`--bundle`),
 * their descendants (the containers' processes, children of their shim), and whatever sits in
 * the harness's cgroups.
 */
function harnessPids(rec: HarnessRecord): number[] {
  const pids = allPids();
  const parents = new Map<number, number>();
  for (const p of pids) {
    const s = procStat(p);
    if (s && s[0] !== "Z") parents.set(p, Number(s[1]));
  }
  const mine = new Set<number>();
  for (const p of parents.keys()) {
    if (p === rec.pid || p === rec.watchdog) continue;
    if (cmdline(p).some((a) => a === rec.dir || a.startsWith(`${rec.dir}/`))) mine.add(p);
  }
  for (const p of cgroupProcs(cgroupTree(rec.cgroupParent))) if (parents.has(p)) mine.add(p);
  // Descendants, to a fixed point.
  for (let grew = true; grew;) {
    grew = false;
    for (const [p, pp] of parents) {
      if (p !== rec.pid && p !== rec.watchdog && !mine.has(p) && mine.has(pp)) {
        mine.add(p);
        grew = true;
      }
    }
  }
  return [...mine];
}

function taskDirs(rec: HarnessRecord): { ns: string; id: string }[] {
  const out: { ns: string; id: string }[] = [];
  const base = join(rec.dir, "state", "io.containerd.runtime.v2.task");
  try {
    for (const ns of Deno.readDirSync(base)) {
      for (const id of Deno.readDirSync(join(base, ns.name))) {
        out.push({ ns: ns.name, id: id.name });
      }
    }
  } catch { /* no tasks */ }
  return out;
}

/** The shim's socket for a task: `/run/containerd/s/<sha256(ADDRESS/NS/ID)>` (containerd 1.6). */
export function shimSocket(address: string, ns: string, id: string): string {
  const hash = createHash("sha256").update(`${address}/${ns}/${id}`).digest("hex");
  return join(SHIM_SOCKET_DIR, hash);
}

function existingShimSockets(rec: HarnessRecord): string[] {
  return taskDirs(rec).map(({ ns, id }) => shimSocket(rec.address, ns, id)).filter((s) => {
    try {
      Deno.lstatSync(s);
      return true;
    } catch {
      return false;
    }
  });
}

function runtimeStateEntries(root: string): string[] {
  const out: string[] = [];
  try {
    for (const ns of Deno.readDirSync(root)) {
      if (!ns.isDirectory) {
        out.push(ns.name);
        continue;
      }
      for (const e of Deno.readDirSync(join(root, ns.name))) out.push(`${ns.name}/${e.name}`);
    }
  } catch { /* no state dir yet */ }
  return out;
}

/** Ids of this containerd's tasks and CRI pod sandboxes (named in libcni's cache files). */
function sandboxIds(rec: HarnessRecord): string[] {
  const ids = taskDirs(rec).map((t) => t.id);
  for (const base of ["root", "state"]) {
    try {
      const dir = join(rec.dir, base, "io.containerd.grpc.v1.cri", "sandboxes");
      for (const e of Deno.readDirSync(dir)) ids.push(e.name);
    } catch { /* no CRI */ }
  }
  return [...new Set(ids)];
}

/**
 * libcni's cached results of this containerd's pods in /var/lib/cni/results (containerd 1.6 has
 * no setting to move them): `NETWORK-SANDBOXID-IFNAME`, for the test's network and for the
 * loopback network (`cni-loopback`) the CRI plugin adds to every pod.
 */
function cniResultsOf(rec: HarnessRecord, ids = sandboxIds(rec)): string[] {
  try {
    return [...Deno.readDirSync("/var/lib/cni/results")].map((e) => e.name).filter((n) =>
      (rec.cniNetwork !== undefined && n.startsWith(`${rec.cniNetwork}-`)) ||
      ids.some((id) => n.includes(`-${id}-`))
    );
  } catch {
    return [];
  }
}

function leftoversOf(rec: HarnessRecord): Leftovers {
  return {
    mounts: mountsUnder(rec.dir),
    processes: harnessPids(rec).filter(alive),
    // The parent itself stays until stop(); only containers' cgroups count.
    cgroups: cgroupTree(rec.cgroupParent).filter((d) => !d.endsWith(rec.cgroupParent)),
    runtimeState: runtimeStateEntries(join(rec.dir, "runtime")),
    shimSockets: existingShimSockets(rec),
    cniResults: cniResultsOf(rec),
  };
}

/** Whether every kind of leftover is empty. */
export function nothingLeft(l: Leftovers): boolean {
  return Object.values(l).every((v) => v.length === 0);
}

/**
 * Waits (bounded, 10 s) until the containers left nothing and returns what is left then: a shim
 * exits on its own shortly after its last task is deleted, so its socket and process may outlive
 * `ctr task delete` by a moment.
 */
export async function settledLeftovers(h: Pick<Containerd, "leftovers">): Promise<Leftovers> {
  let l = h.leftovers();
  for (let i = 0; i < 200 && !nothingLeft(l); i++) {
    await new Promise((r) => setTimeout(r, 50));
    l = h.leftovers();
  }
  return l;
}

/**
 * The first `argv.length` words of `pid`'s command line once they are `argv`, or what they are
 * after 10 s: a runtime's `start` (and a detached exec) may return before the process has
 * called execve, until which it shows the runtime's own command line.
 */
export async function argvOnceExeced(pid: number, argv: readonly string[]): Promise<string[]> {
  let seen: string[] = [];
  for (let i = 0; i < 200; i++) {
    seen = cmdline(pid).slice(0, argv.length);
    if (seen.join("\0") === argv.join("\0")) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return seen;
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function killAndWait(pids: number[], signal: Deno.Signal, ms: number): void {
  for (const p of pids) {
    try {
      Deno.kill(p, signal);
    } catch { /* gone */ }
  }
  const end = Date.now() + ms;
  while (pids.some(alive) && Date.now() < end) sleepSync(20);
}

/**
 * Removes everything the harness described by `rec` started or made; synchronous, so that an
 * `unload` handler and the watchdog can run it. Safe to run twice.
 */
export function cleanupSync(rec: HarnessRecord): void {
  // Shim sockets and libcni's cache files are named after tasks and pods whose dirs are about
  // to go: note them first.
  const sockets = existingShimSockets(rec);
  const cniResults = cniResultsOf(rec);
  // The containers and shims first (containerd would restart nothing, but a shim could still
  // be running the runtime), then containerd: SIGTERM lets it close its bolt database.
  for (let round = 0; round < 3; round++) {
    const pids = harnessPids(rec);
    if (pids.length === 0) break;
    killAndWait(pids, "SIGKILL", 5000);
  }
  if (alive(rec.pid)) {
    killAndWait([rec.pid], "SIGTERM", 3000);
    killAndWait([rec.pid], "SIGKILL", 3000);
  }
  for (const point of mountsUnder(rec.dir)) {
    new Deno.Command("umount", { args: ["-l", point], stdout: "null", stderr: "null" })
      .outputSync();
  }
  for (const d of cgroupTree(rec.cgroupParent)) {
    try {
      Deno.removeSync(d);
    } catch { /* busy or gone */ }
  }
  for (const s of sockets) {
    try {
      Deno.removeSync(s);
    } catch { /* gone */ }
  }
  for (const name of cniResults) {
    try {
      Deno.removeSync(join("/var/lib/cni/results", name));
    } catch { /* gone */ }
  }
  // Only what the harness found missing, and only when nothing else is in it now.
  for (const d of rec.madeRunDirs) {
    try {
      Deno.removeSync(d);
    } catch { /* not empty: another containerd's */ }
  }
  try {
    Deno.removeSync(rec.dir, { recursive: true });
  } catch { /* gone */ }
}

const SELF = new URL(import.meta.url).pathname;

// Polls the owner (PR_SET_PDEATHSIG follows the creating thread, and Deno spawns from worker
// threads) and runs the cleanup once it is gone; killed by stop() when the test ends normally.
const WATCHDOG = `
owner=$1 dir=$2 deno=$3 self=$4
while kill -0 "$owner" 2>/dev/null; do sleep 0.5; done
[ -e "$dir/harness.json" ] && exec "$deno" run -A --quiet "$self" --cleanup "$dir"
`;

/**
 * Starts containerd with its own config under a new temp dir and waits until it answers
 * `ctr version`. Call `stop()` in a `finally`.
 */
export async function startContainerd(opts: ContainerdOptions = {}): Promise<Containerd> {
  const dir = await Deno.makeTempDir({ prefix: "tsbox-ctrd-" });
  const address = join(dir, "c.sock");
  const runtimeRoot = join(dir, "runtime");
  const fifoDir = join(dir, "fifo");
  await Deno.mkdir(fifoDir);
  await Deno.mkdir(join(dir, "cni"));
  if (opts.cri?.cniConfList) {
    await Deno.writeTextFile(
      join(dir, "cni", "10-test.conflist"),
      JSON.stringify(opts.cri.cniConfList, null, 2),
    );
  }
  const cgroupParent = `/tsbox-ctrd-${dir.slice(dir.lastIndexOf("-") + 1)}`;
  const madeRunDirs = [
    "/run/containerd/s",
    "/run/containerd/fifo",
    "/run/containerd",
    // libcni's cache (containerd 1.6 has no setting for it).
    "/var/lib/cni/results",
    "/var/lib/cni",
  ].filter(
    (d) => {
      try {
        Deno.statSync(d);
        return false;
      } catch {
        return true;
      }
    },
  );
  const config = join(dir, "config.toml");
  await Deno.writeTextFile(config, configToml(dir, address, opts.cri));
  const logPath = join(dir, "containerd.log");
  // exec: bash becomes containerd, so the child's PID is containerd's.
  const child = new Deno.Command("bash", {
    args: ["-c", 'exec containerd --config "$1" >"$2" 2>&1', "bash", config, logPath],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const cniNetwork = opts.cri?.cniConfList?.name;
  const rec: HarnessRecord = {
    dir,
    address,
    pid: child.pid,
    cgroupParent,
    madeRunDirs,
    cniNetwork: typeof cniNetwork === "string" ? cniNetwork : undefined,
  };
  await Deno.writeTextFile(join(dir, "harness.json"), JSON.stringify(rec));
  const watchdog = new Deno.Command("setsid", {
    args: ["bash", "-c", WATCHDOG, "watchdog", String(Deno.pid), dir, Deno.execPath(), SELF],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  rec.watchdog = watchdog.pid;
  const unload = () => cleanupSync(rec);
  globalThis.addEventListener("unload", unload);

  const dec = new TextDecoder();
  const ctr = async (args: readonly string[], o: { stdin?: string } = {}): Promise<CtrResult> => {
    const p = new Deno.Command("ctr", {
      args: ["--address", address, "--namespace", NAMESPACE, ...args],
      stdin: o.stdin === undefined ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    if (o.stdin !== undefined) {
      const w = p.stdin.getWriter();
      await w.write(new TextEncoder().encode(o.stdin));
      await w.close();
    }
    const out = await p.output();
    return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  };

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    globalThis.removeEventListener("unload", unload);
    try {
      Deno.kill(watchdog.pid, "SIGKILL");
    } catch { /* gone */ }
    await watchdog.status;
    cleanupSync(rec);
    await child.status;
  };

  let exited = false;
  child.status.then(() => exited = true);
  for (let i = 0;; i++) {
    const v = await ctr(["version"]);
    if (v.code === 0) break;
    if (exited || i >= 200) {
      const log = await Deno.readTextFile(logPath).catch(() => "");
      await stop();
      throw new ContainerdStartError(
        `containerd (${config}) did not answer on ${address}: ${v.stderr.trim()}\n${log}`,
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }

  return {
    dir,
    address,
    pid: child.pid,
    runtimeRoot,
    fifoDir,
    cgroupParent,
    ctr,
    taskFlags: (runtime, id) => [
      "--fifo-dir",
      fifoDir,
      "--runc-binary",
      runtime,
      "--runc-root",
      runtimeRoot,
      "--cgroup",
      `${cgroupParent}/${id}`,
    ],
    async pull(ref) {
      const r = await ctr(["images", "pull", "--plain-http", ref]);
      if (r.code !== 0) throw new Error(`ctr images pull ${ref}: ${r.stderr.trim()}`);
    },
    leftovers: () => leftoversOf(rec),
    stop,
  };
}

if (import.meta.main) {
  // The watchdog's entry: `--cleanup DIR` once the test process is gone.
  const i = Deno.args.indexOf("--cleanup");
  if (i < 0) {
    console.error("usage: containerd.ts --cleanup DIR");
    Deno.exit(2);
  }
  const rec = JSON.parse(Deno.readTextFileSync(join(Deno.args[i + 1], "harness.json")));
  cleanupSync(rec);
}
