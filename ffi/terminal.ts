/**
 * Terminals: pseudo-terminal pairs, termios (raw mode), window sizes, the controlling-terminal
 * ioctls, and the few fd calls that moving bytes between a user's terminal and a pty master
 * needs (poll, read and write off the main thread, receiving a master fd over a unix socket).
 *
 * @module
 */
import { check, cstr, errno, openLibc } from "./libc.ts";
import { SyscallError } from "./errors.ts";
import { MessageHeader } from "./msghdr.ts";

const libc = openLibc({
  posix_openpt: { parameters: ["i32"], result: "i32" },
  grantpt: { parameters: ["i32"], result: "i32" },
  unlockpt: { parameters: ["i32"], result: "i32" },
  ptsname_r: { parameters: ["i32", "buffer", "usize"], result: "i32" },
  open: { parameters: ["buffer", "i32", "u32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  isatty: { parameters: ["i32"], result: "i32" },
  tcgetattr: { parameters: ["i32", "buffer"], result: "i32" },
  tcsetattr: { parameters: ["i32", "i32", "buffer"], result: "i32" },
  cfmakeraw: { parameters: ["buffer"], result: "void" },
  ioctl: { parameters: ["i32", "u64", "buffer"], result: "i32" },
  socketpair: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  recvmsg: { parameters: ["i32", "buffer", "i32"], result: "isize" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  // The blocking variants run on a worker thread so the event loop keeps going.
  pollWait: {
    name: "poll",
    parameters: ["buffer", "u64", "i32"],
    result: "i32",
    nonblocking: true,
  },
  writeWait: {
    name: "write",
    parameters: ["i32", "buffer", "usize"],
    result: "isize",
    nonblocking: true,
  },
});

/** ioctl request numbers (include/uapi/asm-generic/ioctls.h). */
export const TIOC = {
  SCTTY: 0x540e,
  GWINSZ: 0x5413,
  SWINSZ: 0x5414,
  /** Opens the slave of a master (Linux 4.13+), without a path lookup. */
  GPTPEER: 0x5441,
  /** _IOW('T', 0x31, int): lock/unlock the slave (unlockpt). */
  SPTLCK: 0x40045431,
  /** _IOR('T', 0x30, unsigned int): the pty's number. */
  GPTN: 0x80045430,
} as const;

/** open(2) flags used with ptys. */
export const O_RDWR = 0o2;
/** Do not make the terminal the caller's controlling terminal. */
export const O_NOCTTY = 0o400;
/** Close on exec. */
export const O_CLOEXEC = 0o2000000;

const TCSANOW = 0;
const EINTR = 4;
const EAGAIN = 11;
const EIO = 5;
const AF_UNIX = 1;
const MSG_DONTWAIT = 0x40;
const MSG_CMSG_CLOEXEC = 0x40000000;

/** A terminal's size in character cells (struct winsize without the unused pixel fields). */
export interface WindowSize {
  readonly rows: number;
  readonly cols: number;
}

/** struct termios is 60 bytes on x86-64 glibc; a little slack costs nothing. */
const TERMIOS_SIZE = 64;

/** A saved termios, to be restored with {@link setTermios}. */
export type Termios = Uint8Array<ArrayBuffer>;

/** A pseudo-terminal pair on the host's devpts. */
export interface PtyPair {
  readonly master: number;
  readonly slave: number;
  /** Path of the slave, e.g. /dev/pts/3. */
  readonly path: string;
}

/**
 * Opens a new pty pair on the caller's /dev/ptmx (posix_openpt, grantpt, unlockpt, ptsname_r),
 * both ends close-on-exec and the slave not becoming the controlling terminal.
 */
export function openPty(): PtyPair {
  const master = check(libc.posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC), "posix_openpt", []);
  try {
    check(libc.grantpt(master), "grantpt", [master]);
    check(libc.unlockpt(master), "unlockpt", [master]);
    const buf = new Uint8Array(128);
    const r = libc.ptsname_r(master, buf, BigInt(buf.length));
    if (r !== 0) throw new SyscallError("ptsname_r", [master], r);
    const path = new TextDecoder().decode(buf.subarray(0, buf.indexOf(0)));
    const slave = check(libc.open(cstr(path), O_RDWR | O_NOCTTY | O_CLOEXEC, 0), "open", [path]);
    return { master, slave, path };
  } catch (err) {
    libc.close(master);
    throw err;
  }
}

/** True when `fd` refers to a terminal. */
export function isTerminal(fd: number): boolean {
  return libc.isatty(fd) === 1;
}

/** The current termios of `fd`. */
export function getTermios(fd: number): Termios {
  const t = new Uint8Array(TERMIOS_SIZE);
  check(libc.tcgetattr(fd, t), "tcgetattr", [fd]);
  return t;
}

/** Applies `termios` to `fd` now (TCSANOW). */
export function setTermios(fd: number, termios: Termios): void {
  for (;;) {
    if (libc.tcsetattr(fd, TCSANOW, termios) === 0) return;
    if (errno() !== EINTR) throw new SyscallError("tcsetattr", [fd], errno());
  }
}

/**
 * Puts `fd` in raw mode (cfmakeraw: no echo, no line editing, no signal characters, no output
 * processing) and returns the previous termios for restoring it.
 */
export function makeRaw(fd: number): Termios {
  const saved = getTermios(fd);
  const raw = saved.slice();
  libc.cfmakeraw(raw);
  setTermios(fd, raw);
  return saved;
}

/** The window size of terminal `fd` (TIOCGWINSZ). */
export function getWindowSize(fd: number): WindowSize {
  const ws = new Uint16Array(4);
  check(libc.ioctl(fd, BigInt(TIOC.GWINSZ), new Uint8Array(ws.buffer)), "ioctl", [
    fd,
    "TIOCGWINSZ",
  ]);
  return { rows: ws[0], cols: ws[1] };
}

/** The bytes of a struct winsize (rows, cols, 0, 0). */
export function winsizeBytes(size: WindowSize): Uint8Array<ArrayBuffer> {
  return new Uint8Array(new Uint16Array([size.rows, size.cols, 0, 0]).buffer);
}

/** Sets the window size of terminal `fd` (TIOCSWINSZ); the kernel sends SIGWINCH on change. */
export function setWindowSize(fd: number, size: WindowSize): void {
  check(libc.ioctl(fd, BigInt(TIOC.SWINSZ), winsizeBytes(size)), "ioctl", [fd, "TIOCSWINSZ"]);
}

/** The pty number of master `fd` (TIOCGPTN): the slave is /dev/pts/<n> in its devpts. */
export function ptyNumber(fd: number): number {
  const n = new Uint32Array(1);
  check(libc.ioctl(fd, BigInt(TIOC.GPTN), new Uint8Array(n.buffer)), "ioctl", [fd, "TIOCGPTN"]);
  return n[0];
}

/** Closes `fd`, ignoring errors. */
export function closeFd(fd: number): void {
  libc.close(fd);
}

/** A connected pair of unix sockets of `type` (SOCK_DGRAM, SOCK_SEQPACKET, ... | flags). */
export function socketPair(type: number): [number, number] {
  const fds = new Int32Array(2);
  check(libc.socketpair(AF_UNIX, type, 0, new Uint8Array(fds.buffer)), "socketpair", [type]);
  return [fds[0], fds[1]];
}

/** SOCK_DGRAM for {@link socketPair}. */
export const SOCK_DGRAM = 2;
/** SOCK_CLOEXEC for {@link socketPair}. */
export const SOCK_CLOEXEC = 0o2000000;

/**
 * Receives one fd sent with SCM_RIGHTS on unix socket `sock`, without waiting: `undefined`
 * when nothing is queued. The fd arrives close-on-exec.
 */
export function receiveFd(sock: number): number | undefined {
  const msg = new MessageHeader(new Uint8Array(8), new Uint8Array(64));
  const n = Number(libc.recvmsg(sock, msg.bytes, MSG_DONTWAIT | MSG_CMSG_CLOEXEC));
  if (n < 0) {
    if (errno() === EAGAIN) return undefined;
    throw new SyscallError("recvmsg", [sock], errno());
  }
  return msg.receivedFds()[0];
}

/** poll(2) event bits. */
export const POLL = { IN: 0x1, OUT: 0x4, ERR: 0x8, HUP: 0x10, NVAL: 0x20 } as const;

/**
 * Waits on a worker thread until one of `fds` has an event in `events` (or HUP/ERR), or
 * `timeoutMs` passes (-1: forever). Returns the revents per fd; all zero on timeout.
 */
export async function poll(fds: readonly number[], events: number, timeoutMs: number) {
  const buf = new Uint8Array(8 * fds.length);
  const view = new DataView(buf.buffer);
  fds.forEach((fd, i) => {
    view.setInt32(i * 8, fd, true);
    view.setInt16(i * 8 + 4, events, true);
  });
  const r = await libc.pollWait(buf, BigInt(fds.length), timeoutMs);
  // A failed poll (EINTR is the only likely one) reads as "nothing yet": callers loop anyway.
  return fds.map((_, i) => r <= 0 ? 0 : view.getInt16(i * 8 + 6, true));
}

/**
 * One read(2) on `fd` that has just polled readable. Returns the bytes, an empty array at EOF
 * (or EIO: a pty master whose slave is closed everywhere), or `undefined` when it would block.
 */
export function readSome(fd: number, size = 16384): Uint8Array | undefined {
  const buf = new Uint8Array(size);
  for (;;) {
    const n = Number(libc.read(fd, buf, BigInt(size)));
    if (n >= 0) return buf.subarray(0, n);
    const e = errno();
    if (e === EINTR) continue;
    if (e === EAGAIN) return undefined;
    if (e === EIO) return new Uint8Array(0);
    throw new SyscallError("read", [fd], e);
  }
}

/**
 * Writes all of `data` to `fd` on a worker thread (a full pty or pipe must not stall the event
 * loop). Throws when the other side is gone.
 */
export async function writeAllAsync(fd: number, data: Uint8Array<ArrayBuffer>): Promise<void> {
  let off = 0;
  while (off < data.length) {
    const n = Number(await libc.writeWait(fd, data.subarray(off), BigInt(data.length - off)));
    // errno is not readable after a call on another thread: report EIO for any failure.
    if (n < 0) throw new SyscallError("write", [fd], EIO);
    off += n;
  }
}

/** Writes all of `data` to `fd` from this thread (small writes such as a wake-up byte). */
export { writeAll as writeNow } from "./fs.ts";
