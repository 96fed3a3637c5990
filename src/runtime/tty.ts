/**
 * Terminals for `run -t`, `exec -t` and `attach`: the ops that give a container process a pty
 * from the container's own devpts (so `tty` inside prints /dev/pts/N), and the host side that
 * connects that pty's master to the user's terminal (raw mode, window size, byte pumping).
 *
 * The pty is opened by the child itself, after it is inside the container's mount namespace:
 * a pty from the host's devpts would not exist in the container's /dev/pts. The child sends the
 * master to tsbox over a unix datagram socket (SCM_RIGHTS) and keeps only the slave.
 *
 * Pumping: each direction is a loop of poll(2) on a worker thread (FFI `nonblocking`) followed
 * by a read that cannot block and a write on a worker thread. Nothing blocks the event loop, and
 * unlike a pending read(2), a poll also watches a wake-up pipe, so stopping is immediate and
 * leaves no read on the user's terminal stealing the next keystroke after tsbox is done.
 *
 * @module
 */
import { argFromLast, bytes, IGNORE_ERROR, type Op, str, Struct } from "../../ffi/clone.ts";
import {
  closeFd,
  getWindowSize,
  isTerminal,
  makeRaw,
  O_CLOEXEC,
  O_NOCTTY,
  O_RDWR,
  POLL,
  poll,
  readSome,
  receiveFd,
  setTermios,
  setWindowSize,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  socketPair,
  type Termios,
  TIOC,
  type WindowSize,
  winsizeBytes,
  writeAllAsync,
  writeNow,
} from "../../ffi/terminal.ts";
import { pipe } from "../../ffi/process.ts";
import { SYS } from "../../ffi/syscall_numbers.ts";
import { TsboxError } from "../errors.ts";

const AT_FDCWD = -100;
const SOL_SOCKET = 1;
const SCM_RIGHTS = 1;

/** What the child needs to set up its terminal. */
export interface TerminalPlan {
  /** The child's end of the unix datagram socket the master is sent over. */
  readonly socketFd: number;
  /** Initial window size, set before the process starts (so its first query is right). */
  readonly size?: WindowSize;
  /** Owner given to the slave (the container user), as docker's runtimes do. */
  readonly uid: number;
}

function op(nr: number, what: string, args: Op["args"], flags = 0): Op {
  return { nr, args, flags, what };
}

/** A msghdr carrying one byte and an SCM_RIGHTS message with `fd`. */
function fdMessage(fd: number): Struct {
  const cmsg = new Uint8Array(24); // CMSG_SPACE(sizeof(int))
  const cv = new DataView(cmsg.buffer);
  cv.setBigUint64(0, 20n, true); // CMSG_LEN(sizeof(int))
  cv.setInt32(8, SOL_SOCKET, true);
  cv.setInt32(12, SCM_RIGHTS, true);
  cv.setInt32(16, fd, true);
  const iov = new Uint8Array(16);
  new DataView(iov.buffer).setBigUint64(8, 1n, true);
  const msg = new Uint8Array(56);
  const mv = new DataView(msg.buffer);
  mv.setBigUint64(24, 1n, true); // msg_iovlen
  mv.setBigUint64(40, BigInt(cmsg.length), true); // msg_controllen
  return new Struct(msg, [
    { offset: 16, to: new Struct(iov, [{ offset: 0, to: bytes(new Uint8Array([0x74])) }]) },
    { offset: 32, to: bytes(cmsg) },
  ]);
}

/**
 * Ops that open a pty in the devpts behind the process's /dev/ptmx, send the master to tsbox,
 * and make the slave fds 0, 1, 2 and the controlling terminal of a new session. Run them after
 * the process has its final root (the container's /dev) and before it drops privileges.
 *
 * The master is opened as fd 0 (the lowest free fd right after closing 0: the child is single
 * threaded), so the SCM_RIGHTS message can name it before the program runs.
 */
export function terminalOps(t: TerminalPlan): Op[] {
  const ops: Op[] = [
    op(SYS.close, "free fd 0 for the pty master", [0], IGNORE_ERROR),
    op(SYS.openat, "open /dev/ptmx", [AT_FDCWD, str("/dev/ptmx"), O_RDWR | O_NOCTTY, 0]),
    op(SYS.ioctl, "unlock the pty", [0, TIOC.SPTLCK, bytes(new Uint8Array(4))]),
  ];
  if (t.size) {
    ops.push(op(SYS.ioctl, "set the window size", [0, TIOC.SWINSZ, bytes(winsizeBytes(t.size))]));
  }
  ops.push(
    op(SYS.sendmsg, "send the pty master to tsbox", [t.socketFd, fdMessage(0), 0]),
    op(SYS.close, "close the master socket", [t.socketFd]),
    op(SYS.ioctl, "open the pty slave", [0, TIOC.GPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC]),
    op(SYS.dup3, "install the pty slave as fd 1", [0, 1, 0], argFromLast(0)),
    op(SYS.dup3, "install the pty slave as fd 0", [1, 0, 0]),
    op(SYS.dup3, "install the pty slave as fd 2", [1, 2, 0]),
    op(SYS.fchown, "give the pty to the container user", [0, t.uid, -1]),
    op(SYS.setsid, "start a new session", []),
    op(SYS.ioctl, "make the pty the controlling terminal", [0, TIOC.SCTTY, 0]),
  );
  return ops;
}

/** The socket pair a child sends its pty master over: `child` goes into its TerminalPlan. */
export function terminalChannel(): { parent: number; child: number } {
  const [parent, child] = socketPair(SOCK_DGRAM | SOCK_CLOEXEC);
  return { parent, child };
}

/** Takes the master the child sent (call after its execve succeeded). */
export function receiveTerminal(parent: number): number {
  const fd = receiveFd(parent);
  if (fd === undefined) throw new TerminalError("the container's pty master did not arrive");
  return fd;
}

/** A terminal could not be set up. */
export class TerminalError extends TsboxError {
  constructor(message: string) {
    super(message);
    this.name = "TerminalError";
  }
}

/** How to connect a pty master to the user's terminal. */
export interface AttachOptions {
  /** Copy the user's stdin to the container (`-i`). */
  readonly stdin: boolean;
  /** The fd to read the user's input from (default 0). */
  readonly input?: number;
  /**
   * The fd to write the container's output to (default 1); null: nowhere but `onOutput` (a
   * detached container: no user terminal, so no raw mode and no SIGWINCH either).
   */
  readonly output?: number | null;
  /** Also hands every chunk of output here (the container's log). */
  readonly onOutput?: (chunk: Uint8Array) => void;
  /**
   * A key sequence that detaches instead of being sent (docker's ctrl-p ctrl-q for attach);
   * none by default.
   */
  readonly detachKeys?: Uint8Array;
}

/** Why a terminal session ended. */
export type SessionEnd = "stopped" | "detached" | "closed";

/** A pty master connected to the user's terminal. */
export interface TerminalSession {
  /** Resolves when the user typed the detach keys or the pty closed (all slave fds gone). */
  readonly ended: Promise<SessionEnd>;
  /**
   * Delivers what output is left, restores the user's terminal and stops pumping. Safe to call
   * more than once; the master fd stays open (its owner closes it).
   */
  stop(): Promise<void>;
}

/** docker's default detach keys: ctrl-p, ctrl-q. */
export const DOCKER_DETACH_KEYS: Uint8Array = new Uint8Array([0x10, 0x11]);

const restorers = new Set<() => void>();
let unloadHooked = false;

/** Raw mode on `fd`, undone by the returned function and, failing that, when Deno exits. */
export function enterRaw(fd: number): () => void {
  const saved: Termios = makeRaw(fd);
  let done = false;
  const restore = () => {
    if (done) return;
    done = true;
    restorers.delete(restore);
    try {
      setTermios(fd, saved);
    } catch { /* the terminal is gone */ }
  };
  restorers.add(restore);
  if (!unloadHooked) {
    unloadHooked = true;
    globalThis.addEventListener("unload", () => {
      for (const r of [...restorers]) r();
    });
  }
  return restore;
}

/** Copies the size of the user's terminal (stdin, else stdout) to `master`, if it has one. */
export function copyWindowSize(master: number, from: readonly number[] = [0, 1]): void {
  const size = userWindowSize(from);
  if (size) setWindowSize(master, size);
}

/** The size of the first of `from` that is a terminal. */
export function userWindowSize(from: readonly number[] = [0, 1]): WindowSize | undefined {
  for (const fd of from) {
    if (!isTerminal(fd)) continue;
    try {
      const size = getWindowSize(fd);
      if (size.rows > 0 && size.cols > 0) return size;
    } catch { /* not a terminal after all */ }
  }
  return undefined;
}

/**
 * Splits input at the detach keys: returns the bytes to send and whether the sequence completed.
 * A partial match is held back in `held` until the next input decides it.
 */
export function filterDetach(
  input: Uint8Array,
  keys: Uint8Array,
  held: number[],
): { send: Uint8Array<ArrayBuffer>; detached: boolean } {
  const out: number[] = [];
  for (const b of input) {
    if (b === keys[held.length]) {
      held.push(b);
      if (held.length === keys.length) return { send: new Uint8Array(out), detached: true };
      continue;
    }
    out.push(...held);
    held.length = 0;
    if (b === keys[0]) held.push(b);
    else out.push(b);
  }
  return { send: new Uint8Array(out), detached: false };
}

/**
 * Connects `master` to the user's terminal: raw mode when stdin is a terminal and `-i` was
 * given, the window size now and on every SIGWINCH, output copied to stdout, input (with `-i`)
 * copied to the container, where the pty's line discipline turns ctrl-c into SIGINT.
 */
export function attachTerminal(master: number, options: AttachOptions): TerminalSession {
  const input = options.input ?? 0;
  const output = options.output === undefined ? 1 : options.output;
  const user = output !== null;
  const [wakeR, wakeW] = pipe();
  const restoreRaw = user && options.stdin && isTerminal(input) ? enterRaw(input) : undefined;
  const sizeFrom = output === null ? [] : [input, output];
  try {
    copyWindowSize(master, sizeFrom);
  } catch { /* the container's pty may already be closed */ }
  const onWinch = () => {
    try {
      copyWindowSize(master, sizeFrom);
    } catch { /* ignore: the next SIGWINCH tries again */ }
  };
  if (user) Deno.addSignalListener("SIGWINCH", onWinch);
  const deliver = async (chunk: Uint8Array<ArrayBuffer>) => {
    options.onOutput?.(chunk);
    if (output !== null) await writeAllAsync(output, chunk);
  };
  let stopping = false;
  let resolveEnded!: (end: SessionEnd) => void;
  const ended = new Promise<SessionEnd>((r) => resolveEnded = r);

  // Container -> user. On stop, drains what the pty still holds, then ends.
  const outputDone = (async () => {
    for (;;) {
      const [rev, wake] = await poll([master, wakeR], POLL.IN, -1);
      if (rev & (POLL.IN | POLL.HUP | POLL.ERR)) {
        const chunk = readSome(master);
        if (chunk === undefined) continue;
        if (chunk.length === 0) break;
        try {
          await deliver(chunk.slice());
        } catch {
          break; // the user's side is gone
        }
        continue;
      }
      if (rev & POLL.NVAL) break;
      if (wake) {
        // Stopping: take what is left without waiting for more.
        for (;;) {
          const [r] = await poll([master], POLL.IN, 0);
          if (!(r & (POLL.IN | POLL.HUP))) break;
          const chunk = readSome(master);
          if (!chunk || chunk.length === 0) break;
          await deliver(chunk.slice()).catch(() => {});
        }
        break;
      }
    }
  })().catch(() => {/* a closed or failing fd ends the session */}).finally(() =>
    resolveEnded("closed")
  );

  // User -> container, with -i only.
  const inputDone = options.stdin
    ? (async () => {
      const held: number[] = [];
      for (;;) {
        const [rev, wake] = await poll([input, wakeR], POLL.IN, -1);
        if (wake || stopping) return;
        if (rev & POLL.NVAL) return;
        if (!(rev & (POLL.IN | POLL.HUP | POLL.ERR))) continue;
        const chunk = readSome(input);
        if (chunk === undefined) continue;
        if (chunk.length === 0) {
          // EOF on a non-terminal stdin: docker sends the terminal's EOF character (ctrl-d).
          await writeAllAsync(master, new Uint8Array([0x04])).catch(() => {});
          return;
        }
        const data = chunk.slice();
        if (options.detachKeys && options.detachKeys.length > 0) {
          const f = filterDetach(chunk, options.detachKeys, held);
          if (f.send.length > 0) await writeAllAsync(master, f.send).catch(() => {});
          if (f.detached) {
            resolveEnded("detached");
            return;
          }
          continue;
        }
        try {
          await writeAllAsync(master, data);
        } catch {
          return;
        }
      }
    })().catch(() => {/* the user's input or the pty is gone */})
    : Promise.resolve();

  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      stopping = true;
      try {
        writeNow(wakeW, new Uint8Array([1]));
      } catch { /* already woken */ }
      await Promise.all([outputDone, inputDone]);
      if (user) Deno.removeSignalListener("SIGWINCH", onWinch);
      restoreRaw?.();
      closeFd(wakeR);
      closeFd(wakeW);
      resolveEnded("stopped");
    })();
    return stopped;
  };
  return { ended, stop };
}

/** A `-t` container's terminal as its supervisor runs it. */
export interface SupervisedTerminal {
  readonly session: TerminalSession;
  /** Everything the container wrote, for the log (ends when the session ends). */
  readonly output: ReadableStream<Uint8Array>;
}

/**
 * Connects a `-t` container's pty master for its supervisor: output goes to the returned stream
 * (the log) and, when `attach`, to the user's terminal, which `interactive` also puts in raw
 * mode and reads from.
 */
export function superviseTerminal(
  master: number,
  o: { readonly attach: boolean; readonly interactive: boolean },
): SupervisedTerminal {
  let sink!: ReadableStreamDefaultController<Uint8Array>;
  const output = new ReadableStream<Uint8Array>({ start: (c) => void (sink = c) });
  const session = attachTerminal(master, {
    stdin: o.attach && o.interactive,
    output: o.attach ? 1 : null,
    onOutput: (chunk) => {
      try {
        sink.enqueue(chunk);
      } catch { /* the log side closed */ }
    },
  });
  session.ended.then(() => sink.close()).catch(() => {});
  return { session, output };
}

/** docker's check for `-it`: stdin must be a terminal. */
export function assertInputTerminal(tty: boolean | undefined, interactive: boolean | undefined) {
  if (tty && interactive && !isTerminal(0)) {
    throw new TerminalError("the input device is not a TTY");
  }
}
