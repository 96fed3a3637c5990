/**
 * A recording {@link Host} for unit tests of the host-side start logic without root: each call
 * is appended to {@link RecordingHost.calls} as one line ("mount overlay on /x/rootfs", "cgroup
 * join 4242", "kill 4242 9"), and any call can be made to fail. File calls on the state
 * directory are also made for real (it is a temporary directory of the test), except chown;
 * mounts, cgroups, namespaces and processes are only recorded. The cloned PID 1 is simulated:
 * its status pipe gives the records its program writes there itself (an OCI process's pause and
 * ready records) up to the failure {@link FakeOptions.programFailure} picks, then that failure,
 * or the end of file of a successful execve.
 *
 * @module
 */
import type { Op, ProgramFailure } from "../../ffi/clone.ts";
import { CLONE, Data } from "../../ffi/clone.ts";
import type { WaitStatus } from "../../ffi/process.ts";
import type { Cgroup, ResourceLimits } from "./cgroups.ts";
import { SYS } from "../../ffi/syscall_numbers.ts";
import type { Host, HostStat, IdmappedLayers, SharedPid } from "./host.ts";
import type { OverlayDirs } from "./rootfs.ts";
import type { IdMapping } from "./userns.ts";
import type { TimeOffsets } from "./oci_time.ts";
import type { HostIdentity, RootlessMapping } from "./rootless.ts";
import type { HeldOverlay } from "./overlay_holder.ts";

/** How the fake behaves. */
export interface FakeOptions {
  /** Calls (as recorded) that throw instead; the error is `error(call)` or a plain Error. */
  readonly failOn?: RegExp;
  /** The error a failing call throws. */
  readonly error?: (call: string) => Error;
  /** What PID 1's program reports once released: undefined for a successful execve. */
  readonly programFailure?: (ops: readonly Op[]) => ProgramFailure | undefined;
  /** How PID 1 ends when waited for. */
  readonly exit?: WaitStatus;
  /** Take the rootless path, as this user with these maps. */
  readonly rootless?: { readonly who: HostIdentity; readonly maps: RootlessMapping };
  /**
   * exec: namespace kinds a running container shares with tsbox (the same id for "self" and
   * its PID 1); every other kind differs. None by default.
   */
  readonly sharedNamespaces?: readonly string[];
  /** exec: files of the container below its root fd, by path. */
  readonly rootFiles?: Readonly<Record<string, string>>;
  /** exec: /proc/PID/status of the container's PID 1 (a CapBnd of docker's 14 by default). */
  readonly procStatus?: string;
  /**
   * runc create: st_mode of files below the container's root; a path of {@link rootFiles}
   * is an executable regular file (0o100755) unless given here.
   */
  readonly rootModes?: Readonly<Record<string, number>>;
}

const FLAG_NAMES = Object.entries(CLONE);

/** Names of the CLONE_* bits in `flags` ("NEWPID|NEWNS"). */
export function cloneFlagNames(flags: number): string {
  return FLAG_NAMES.filter(([, bit]) => (flags & bit) !== 0).map(([name]) => name).join("|");
}

/** The recording fake; see the module doc. */
export class RecordingHost implements Host {
  /** Every call, in order. */
  readonly calls: string[] = [];
  /** The ops of each cloned program. */
  readonly programs: (readonly Op[])[] = [];
  #nextFd = 100;
  #nextPid = 4242;
  readonly #open = new Set<number>();
  /** status read end -> the records its program writes there, in order. */
  readonly #status = new Map<number, Uint8Array[]>();
  readonly #pairs = new Map<number, number>();
  /** The failure the last cloned program reports, and that program. */
  #last?: { ops: readonly Op[]; failure?: ProgramFailure };

  constructor(readonly options: FakeOptions = {}) {}

  /** Fds the fake handed out that are still open. */
  openFds(): number[] {
    return [...this.#open];
  }

  #record(call: string): void {
    this.calls.push(call);
    if (this.options.failOn?.test(call)) {
      throw this.options.error?.(call) ?? new Error(`fake failure: ${call}`);
    }
  }

  /** Records `call` and settles like an async host call: a failure rejects. */
  later<T>(call: string, value: () => T): Promise<T> {
    try {
      this.#record(call);
      return Promise.resolve(value());
    } catch (err) {
      return Promise.reject(err);
    }
  }

  #fd(): number {
    const fd = this.#nextFd++;
    this.#open.add(fd);
    return fd;
  }

  isRootless(): boolean {
    return this.options.rootless !== undefined;
  }

  rootlessIdentity(): { who: HostIdentity; maps: RootlessMapping } {
    if (!this.options.rootless) throw new Error("fake: not rootless");
    return this.options.rootless;
  }

  /** The holder's view is the rootfs directory itself (the test's files are there). */
  holdOverlay(
    rootfs: string,
    overlay: { readonly lowerBase: string; readonly options: string },
    _maps: RootlessMapping,
  ): Promise<HeldOverlay> {
    const pid = this.#nextPid++;
    const lower = /lowerdir=([^,]*)/.exec(overlay.options)?.[1];
    return this.later(`hold overlay on ${rootfs} lower=${lower} pid ${pid}`, () => ({
      pid,
      view: rootfs,
      release: () => this.later(`release holder ${pid}`, () => {}),
    }));
  }

  writeRootlessMaps(pid: number, maps: RootlessMapping): Promise<void> {
    const how = `${maps.subUids ? "newuidmap" : "uid_map"} ${
      maps.subGids ? "newgidmap" : "gid_map"
    }`;
    return this.later(`rootless maps ${pid} ${how}`, () => {});
  }

  async mkdir(path: string, mode: number): Promise<void> {
    this.#record(`mkdir ${path} ${mode.toString(8)}`);
    await Deno.mkdir(path, { recursive: true, mode });
  }

  async stat(path: string): Promise<HostStat> {
    this.#record(`stat ${path}`);
    const info = await Deno.stat(path);
    return { mode: info.mode, uid: info.uid, gid: info.gid };
  }

  async chmod(path: string, mode: number): Promise<void> {
    this.#record(`chmod ${path} ${mode.toString(8)}`);
    await Deno.chmod(path, mode);
  }

  chown(path: string, uid: number | null, gid: number | null): Promise<void> {
    return this.later(`chown ${path} ${uid}:${gid}`, () => {});
  }

  async writeTextFile(path: string, content: string, mode: number): Promise<void> {
    this.#record(`write ${path} ${mode.toString(8)}`);
    await Deno.writeTextFile(path, content, { mode });
  }

  mountOverlay(dirs: OverlayDirs): void {
    this.#record(`mount overlay on ${dirs.target} lower=${dirs.lower.join(":")}`);
  }

  mountTmpfs(target: string, _flags: number, data: string): void {
    this.#record(`mount tmpfs on ${target} ${data}`);
  }

  unmount(target: string): boolean {
    this.#record(`unmount ${target}`);
    return true;
  }

  idmapLayers(
    _lowerBase: string,
    layers: readonly string[],
    dir: string,
    _mapping: IdMapping,
  ): Promise<IdmappedLayers> {
    return this.later(`idmap ${layers.length} layers under ${dir}`, () => ({
      entries: layers.map((_, i) => String(i)),
      detach: () => void this.calls.push(`detach idmapped layers under ${dir}`),
    }));
  }

  createCgroup(id: string, limits: ResourceLimits): Promise<Cgroup> {
    const shown = Object.entries(limits).filter(([k]) => k !== "devices")
      .map(([k, v]) => `${k}=${v}`).join(",");
    return this.later(`cgroup create ${id} ${shown}`.trimEnd(), () => new FakeCgroup(this, id));
  }

  writeOomScoreAdj(pid: number, value: number): Promise<void> {
    return this.later(`oom_score_adj ${pid} ${value}`, () => {});
  }

  openNamespace(path: string): number {
    this.#record(`open ${path}`);
    return this.#fd();
  }

  clone(ops: readonly Op[], statusFd: number, flags: number, pidnsFd?: number): number {
    this.#record(
      `clone ${cloneFlagNames(flags)}${pidnsFd === undefined ? "" : ` pidns=${pidnsFd}`}`,
    );
    this.programs.push(ops);
    const read = this.#pairs.get(statusFd);
    const failure = this.options.programFailure?.(ops);
    if (read !== undefined) this.#status.set(read, statusRecords(ops, statusFd, failure));
    this.#last = { ops, failure };
    return this.#nextPid++;
  }

  writeIdMaps(pid: number, mapping: IdMapping): Promise<void> {
    const first = mapping.uid[0];
    return this.later(
      `id maps ${pid} uid ${first?.inside}:${first?.outside}:${first?.count}`,
      () => {},
    );
  }

  pipe(): [number, number] {
    const r = this.#fd(), w = this.#fd();
    this.#pairs.set(w, r);
    this.#record(`pipe ${r} ${w}`);
    return [r, w];
  }

  closeFd(fd: number): void {
    this.#record(`close ${fd}`);
    if (!this.#open.delete(fd)) throw new Error(`fake: close of fd ${fd}, not open`);
  }

  writeFd(fd: number, data: Uint8Array): void {
    this.#record(`write fd ${fd} ${data.length} bytes`);
  }

  readFd(fd: number, _size: number): Promise<Uint8Array> {
    return this.later(`read fd ${fd}`, () => this.#status.get(fd)?.shift() ?? new Uint8Array(0));
  }

  waitPid(pid: number): Promise<WaitStatus> {
    return this.later(`wait ${pid}`, () => this.options.exit ?? { exitCode: 0 });
  }

  killPid(pid: number, signal: number): boolean {
    this.#record(`kill ${pid} ${signal}`);
    return true;
  }

  terminalChannel(): { parent: number; child: number } {
    const parent = this.#fd(), child = this.#fd();
    this.#record(`socketpair ${parent} ${child}`);
    return { parent, child };
  }

  receiveTerminal(parent: number): number {
    this.#record(`receive terminal on ${parent}`);
    return this.#fd();
  }

  /** Not recorded (a read of /proc): "self" and a pid differ unless the kind is shared. */
  namespaceId(pid: number | "self", kind: string): string {
    const shared = this.options.sharedNamespaces?.includes(kind);
    if (pid !== "self" && this.options.failOn?.test(`ns id ${pid} ${kind}`)) {
      throw this.options.error?.(`ns id ${pid} ${kind}`) ?? new Deno.errors.NotFound(kind);
    }
    return `${kind}:[${pid === "self" || shared ? 1 : 2}]`;
  }

  openRoot(pid: number): number {
    this.#record(`open /proc/${pid}/root`);
    return this.#fd();
  }

  readInRoot(_root: number, path: string): string {
    return this.options.rootFiles?.[path] ?? "";
  }

  procStatus(pid: number): Promise<string> {
    return this.later(
      `status ${pid}`,
      () => this.options.procStatus ?? "Name:\tsh\nCapBnd:\t00000000a80425fb\n",
    );
  }

  joinCgroupsOf(initPid: number, pid: number): Promise<void> {
    return this.later(`cgroup join ${pid} as ${initPid}`, () => {});
  }

  /**
   * The forked child's pid is there unless the last program failed at or before its fork (the
   * raw clone op).
   */
  sharedWord(): SharedPid {
    this.#record("shared word");
    let pid: number | undefined;
    return {
      address: 0x7000n,
      read: () => {
        if (pid !== undefined) return pid;
        const last = this.#last;
        const fork = last?.ops.findIndex((o) => o.nr === SYS.clone) ?? -1;
        const failed = last?.failure?.opIndex ?? -1;
        pid = fork < 0 || (failed >= 0 && failed <= fork) ? 0 : this.#nextPid++;
        this.calls.push(`read shared word ${pid}`);
        return pid;
      },
      free: () => void this.calls.push("free shared word"),
    };
  }

  lastCap(): number {
    return 40;
  }

  createOciCgroup(path: string, limits: ResourceLimits): Promise<Cgroup> {
    const shown = Object.entries(limits).filter(([k]) => k !== "devices")
      .map(([k, v]) => `${k}=${v}`).join(",");
    return this.later(`cgroup create ${path} ${shown}`.trimEnd(), () => new FakeCgroup(this, path));
  }

  joinOciCgroup(_cgroup: Cgroup, pid: number): void {
    this.#record(`cgroup join ${pid}`);
  }

  openDirectory(path: string): number {
    this.#record(`open dir ${path}`);
    return this.#fd();
  }

  modeInRoot(_root: number, path: string): number | undefined {
    return this.options.rootModes?.[path] ??
      (this.options.rootFiles?.[path] !== undefined ? 0o100755 : undefined);
  }

  writeTimeOffsets(pid: number, offsets: TimeOffsets): void {
    this.#record(`time offsets ${pid} ${JSON.stringify(offsets)}`);
  }

  sendTerminal(socketPath: string, master: number): void {
    this.#record(`send terminal ${master} to ${socketPath}`);
    this.#open.delete(master);
  }
}

/** A 16-byte status record (ffi/clone.ts decodeStatus). */
function record(failure: ProgramFailure): Uint8Array {
  const out = new Uint8Array(16);
  const view = new DataView(out.buffer);
  view.setBigInt64(0, BigInt(failure.opIndex), true);
  view.setBigInt64(8, BigInt(failure.errno), true);
  return out;
}

/**
 * What a program writes on its status pipe: the records its own ops write to `statusFd`
 * before the failing op, then the failure's record.
 */
function statusRecords(
  ops: readonly Op[],
  statusFd: number,
  failure: ProgramFailure | undefined,
): Uint8Array[] {
  const end = failure && failure.opIndex >= 0 ? failure.opIndex : ops.length;
  const out: Uint8Array[] = [];
  for (const o of ops.slice(0, end)) {
    const data = o.args[1];
    if (o.nr === SYS.write && o.args[0] === statusFd && data instanceof Data) {
      out.push(data.bytes);
    }
  }
  if (failure) out.push(record(failure));
  return out;
}

/** A cgroup that only records (its calls can fail through the host's `failOn`). */
class FakeCgroup implements Cgroup {
  readonly dirs: readonly string[];
  constructor(readonly host: RecordingHost, readonly id: string) {
    this.dirs = [`/fake-cgroup/${id}`];
  }
  apply(_limits: ResourceLimits): Promise<void> {
    return this.host.later(`cgroup apply ${this.id}`, () => {});
  }
  join(pid: number): Promise<void> {
    return this.host.later(`cgroup join ${pid}`, () => {});
  }
  pids(): Promise<number[]> {
    return Promise.resolve([]);
  }
  oomKilled(): Promise<boolean> {
    return this.host.later(`cgroup oom ${this.id}`, () => false);
  }
  remove(): Promise<void> {
    return this.host.later(`cgroup remove ${this.id}`, () => {});
  }
}
