/**
 * The watcher of a detached supervisor whose container has a restart policy (watch_policy.ts):
 * a process with no JS in it (a clone running a syscall program, ffi/clone.ts) that sits
 * blocked in `read` on a pipe only the supervisor holds open. When the supervisor ends by any
 * means (SIGKILL, the OOM killer), the kernel closes the write end, the read returns, and the
 * watcher `execve`s a new supervisor with the same command line and environment plus
 * `TSBOX_RECOVER` (recover.ts). A supervisor that ends normally dismisses its watcher first.
 *
 * The two watch each other: the watcher also holds the write end of a second pipe that the
 * supervisor reads, so a watcher killed on its own (kill -9, the OOM killer) is noticed at once
 * and replaced by a new one; a later death of the supervisor is still caught. Only both killed
 * together (nothing of tsbox is left to act, there being no daemon) leaves the container down:
 * PID 1 dies with the supervisor (parent-death signal), the next command records it exited, and
 * `start`, `system boot` or a systemd unit (generate systemd) brings it back.
 *
 * Why a clone and not a second Deno: a Deno process costs ~20 MiB, a blocked clone almost
 * nothing. The clone starts with the supervisor's memory shared copy-on-write, which would
 * become the watcher's own copy page by page as the supervisor writes; so its program first
 * unmaps every writable mapping it inherited but its own program region, the main stack (which
 * holds the command line /proc shows) and the thread's rseq area (ffi/thread.ts). Measured:
 * PSS 5.7 MiB right after the clone without this (and growing), 0.3 MiB with it.
 *
 * @module
 */
import {
  bytes,
  cloneProgram,
  CompiledProgram,
  IGNORE_ERROR,
  type Op,
  str,
  StringArray,
} from "../../ffi/clone.ts";
import { closeFd, killPid, pipe, readFd, waitPid } from "../../ffi/process.ts";
import { SYS } from "../../ffi/syscall_numbers.ts";
import { threadAreas } from "../../ffi/thread.ts";
import { signalOps } from "../runtime/program.ts";

/** Set in the environment of a supervisor that a watcher started: it recovers a dead run. */
export const RECOVER_ENV = "TSBOX_RECOVER";

const AT_FDCWD = -100;
const O_RDWR = 2;
const O_CLOEXEC = 0o2000000;
/** Where the watcher keeps the write end of the pipe its supervisor watches it through. */
const LIFE_FD = 3;
const PR_SET_NAME = 15;
const SIGKILL = 9;

/** A running watcher; {@link Watcher.dismiss} ends it (the supervisor is ending normally). */
export interface Watcher {
  /** The watcher's pid; undefined while a dead one is being replaced. */
  readonly pid: number | undefined;
  dismiss(): Promise<void>;
}

function op(nr: number, what: string, args: Op["args"], flags = 0): Op {
  return { nr, args, flags, what };
}

/** The supervisor's own command line, as the kernel keeps it. */
function ownArgv(): string[] {
  const raw = Deno.readTextFileSync("/proc/self/cmdline");
  return raw.split("\0").slice(0, -1);
}

/**
 * The watcher's program: detach from the supervisor's session, keep only the pipe's read end
 * (as fd 0), /dev/null (1, 2) and the write end of the pipe the supervisor watches it through
 * (fd 3, close-on-exec: the new supervisor does not keep it) so that no listener, database or
 * log fd of the supervisor stays open in it, wait for EOF, then become the new supervisor.
 */
export function watcherProgram(
  readFd: number,
  lifeFd: number,
  exe: string,
  argv: readonly string[],
  env: readonly string[],
  unmap: readonly Mapping[] = [],
): Op[] {
  return [
    ...signalOps(),
    op(SYS.setsid, "setsid", [], IGNORE_ERROR),
    op(SYS.prctl, "name the watcher", [PR_SET_NAME, str("tsbox-watch"), 0, 0, 0], IGNORE_ERROR),
    op(SYS.dup3, "keep the pipe as fd 0", [readFd, 0, 0]),
    // Fails (EINVAL) only when it already is fd 3, close-on-exec as pipe() made it.
    op(SYS.dup3, "keep the life pipe as fd 3", [lifeFd, LIFE_FD, O_CLOEXEC], IGNORE_ERROR),
    op(SYS.close_range, "close fds 1 and 2", [1, 2, 0]),
    op(SYS.close_range, "close every other fd", [LIFE_FD + 1, 0xffffffff, 0]),
    op(SYS.openat, "open /dev/null as fd 1", [AT_FDCWD, str("/dev/null"), O_RDWR, 0]),
    op(SYS.dup3, "/dev/null as fd 2", [1, 2, 0]),
    ...unmap.map(([at, length]) =>
      op(SYS.munmap, `munmap 0x${at.toString(16)}`, [at, length], IGNORE_ERROR)
    ),
    // Returns 0 (EOF) once the supervisor is gone: nothing is ever written to the pipe.
    op(SYS.read, "wait for the supervisor to end", [0, bytes(new Uint8Array(8)), 1]),
    op(SYS.dup3, "/dev/null as fd 0", [1, 0, 0]),
    op(SYS.execve, `execve ${exe}`, [str(exe), new StringArray(argv), new StringArray(env)]),
  ];
}

/** An address range `[start, length]`. */
export type Mapping = readonly [bigint, bigint];

/** This process's writable mappings (/proc/self/maps): what a clone would share copy-on-write. */
function writableMappings(): Mapping[] {
  const keep = threadAreas();
  const out: Mapping[] = [];
  for (const line of Deno.readTextFileSync("/proc/self/maps").split("\n")) {
    const [range, perms] = line.split(" ");
    // The main stack holds the command line that /proc/PID/cmdline shows: kept, so that the
    // watcher is seen (and can be found) as what it will become.
    if (!perms || perms[1] !== "w" || line.endsWith("[stack]")) continue;
    const [start, end] = range.split("-").map((h) => BigInt(`0x${h}`));
    // The kernel writes the thread's rseq area on every wake-up (ffi/thread.ts).
    if (keep.some((a) => a >= start && a < end)) continue;
    out.push([start, end - start]);
  }
  return out;
}

function overlaps(maps: readonly Mapping[], at: bigint, size: number): boolean {
  const end = at + BigInt(size);
  return maps.some(([start, length]) => start < end && at < start + length);
}

/**
 * Lays out the watcher's program. Its own region is mapped after the mappings were read, so it
 * lies outside them unless another thread unmapped one meanwhile: then the layout is tried
 * again, and after three such tries the watcher keeps its inherited memory.
 */
function compileWatcher(
  readFd: number,
  lifeFd: number,
  env: readonly string[],
): CompiledProgram {
  const argv = ownArgv();
  for (let attempt = 0; attempt < 4; attempt++) {
    const maps = attempt < 3 ? writableMappings() : [];
    const program = CompiledProgram.compile(
      watcherProgram(readFd, lifeFd, Deno.execPath(), argv, env, maps),
      2,
    );
    if (!overlaps(maps, program.address, program.size)) return program;
    program.free();
  }
  throw new Error("unreachable: the last layout unmaps nothing");
}

/** One watcher process and this supervisor's ends of the two pipes. */
interface Spawned {
  readonly pid: number;
  /** Held open for the watcher's life: its EOF is what wakes the watcher. */
  readonly write: number;
  /** Reads EOF once the watcher is gone. */
  readonly life: number;
}

function spawnWatcher(env: readonly string[]): Spawned {
  const [r, w] = pipe();
  const [lifeR, lifeW] = pipe();
  let pid: number;
  try {
    const program = compileWatcher(r, lifeW, env);
    try {
      pid = cloneProgram(program, 0);
    } finally {
      program.free();
    }
  } catch (err) {
    closeFd(w);
    closeFd(lifeR);
    throw err;
  } finally {
    closeFd(r);
    closeFd(lifeW);
  }
  return { pid, write: w, life: lifeR };
}

/** A watcher killed again and again is replaced at most this often. */
const RESPAWN_DELAY_MS = 100;

/**
 * Starts the watcher of this supervisor, and a new one whenever it dies while this supervisor
 * lives. The pipes' ends stay open in this process (close-on-exec, so no container or helper
 * inherits them past its execve). `warn` hears when a new one cannot be started.
 */
export function startWatcher(warn: (message: string) => void = () => {}): Watcher {
  const env = Object.entries(Deno.env.toObject())
    .filter(([k]) => k !== RECOVER_ENV)
    .map(([k, v]) => `${k}=${v}`);
  env.push(`${RECOVER_ENV}=${Deno.pid}`);
  let current: Spawned | undefined = spawnWatcher(env);
  let dismissed = false;
  const loop = (async () => {
    while (current) {
      const cur = current;
      await readFd(cur.life, 1).catch(() => {});
      // From here on `dismiss` leaves it alone: it is reaped below, after which its pid may be
      // anyone's. Until then it is our unreaped child, so the kill cannot reach another process.
      current = undefined;
      killPid(cur.pid, SIGKILL);
      await waitPid(cur.pid).catch(() => {});
      closeFd(cur.write);
      closeFd(cur.life);
      if (dismissed) return;
      await new Promise((r) => setTimeout(r, RESPAWN_DELAY_MS));
      if (dismissed) return;
      try {
        current = spawnWatcher(env);
      } catch (err) {
        warn(`tsbox: cannot start a new watcher: ${(err as Error).message}`);
      }
    }
  })();
  return {
    get pid() {
      return current?.pid;
    },
    dismiss() {
      dismissed = true;
      if (current) killPid(current.pid, SIGKILL);
      return loop;
    },
  };
}
