/**
 * Sockets, pipes, splice, epoll, eventfd and setns for the port proxy (src/net/).
 *
 * Two kinds of wrappers: checked ones that throw {@link SyscallError} (setup paths), and
 * `*Raw` ones for the proxy's hot path that return the result or `-errno` without allocating,
 * because EAGAIN is the normal outcome there, not an error. Every call here is synchronous: the
 * proxy runs them on its own worker thread, blocked in `epoll_wait` when idle.
 *
 * @module
 */
import { check, cstr, errno, openLibc } from "./libc.ts";
import { SyscallError } from "./errors.ts";
import { MessageHeader } from "./msghdr.ts";

const libc = openLibc({
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  listen: { parameters: ["i32", "i32"], result: "i32" },
  accept4: { parameters: ["i32", "buffer", "buffer", "i32"], result: "i32" },
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  shutdown: { parameters: ["i32", "i32"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  pipe2: { parameters: ["buffer", "i32"], result: "i32" },
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  splice: {
    parameters: ["i32", "pointer", "i32", "pointer", "usize", "u32"],
    result: "isize",
  },
  epoll_create1: { parameters: ["i32"], result: "i32" },
  epoll_ctl: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  epoll_wait: { parameters: ["i32", "buffer", "i32", "i32"], result: "i32" },
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  recvfrom: {
    parameters: ["i32", "buffer", "usize", "i32", "buffer", "buffer"],
    result: "isize",
  },
  sendto: { parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"], result: "isize" },
  setns: { parameters: ["i32", "i32"], result: "i32" },
  recvmsg: { parameters: ["i32", "buffer", "i32"], result: "isize" },
  open: { parameters: ["buffer", "i32"], result: "i32" },
});

/** Address families. */
export const AF_INET = 2;
/** IPv6 address family. */
export const AF_INET6 = 10;
/** Stream socket. */
export const SOCK_STREAM = 1;
/** Datagram socket. */
export const SOCK_DGRAM = 2;
/** socket()/accept4() flag: O_NONBLOCK. */
export const SOCK_NONBLOCK = 0o4000;
/** socket()/accept4()/pipe2() flag: O_CLOEXEC. */
export const SOCK_CLOEXEC = 0o2000000;
/** shutdown() directions. */
export const SHUT_RD = 0;
/** Shut down the write side (sends FIN). */
export const SHUT_WR = 1;
/** Shut down both sides. */
export const SHUT_RDWR = 2;

/** Socket option levels and names used by the proxy. */
export const SOL_SOCKET = 1;
/** Allow binding a port with connections in TIME_WAIT. */
export const SO_REUSEADDR = 2;
/** Pending error of a socket (result of a nonblocking connect). */
export const SO_ERROR = 4;
/** Linger on close (0 seconds: reset instead of FIN). */
export const SO_LINGER = 13;
/** IPv6 level. */
export const IPPROTO_IPV6 = 41;
/** Keep an IPv6 socket from also taking IPv4 connections. */
export const IPV6_V6ONLY = 26;
/** TCP level. */
export const IPPROTO_TCP = 6;
/** Disable Nagle's algorithm. */
export const TCP_NODELAY = 1;

/** pipe2()/open() flags. */
export const O_NONBLOCK = 0o4000;
/** Close the fd on execve. */
export const O_CLOEXEC = 0o2000000;
/** fcntl: set a pipe's capacity. */
export const F_SETPIPE_SZ = 1031;

/** splice() flags: move pages instead of copying when possible. */
export const SPLICE_F_MOVE = 1;
/** splice() flags: do not block on the pipe. */
export const SPLICE_F_NONBLOCK = 2;
/** splice() flags: more data will follow (like MSG_MORE). */
export const SPLICE_F_MORE = 4;

/** epoll_ctl operations. */
export const EPOLL_CTL_ADD = 1;
/** Remove an fd from the interest list. */
export const EPOLL_CTL_DEL = 2;
/** Change an fd's events. */
export const EPOLL_CTL_MOD = 3;
/** epoll events. */
export const EPOLLIN = 0x001;
/** Writable. */
export const EPOLLOUT = 0x004;
/** Error condition. */
export const EPOLLERR = 0x008;
/** Hang-up (both directions closed). */
export const EPOLLHUP = 0x010;
/** The peer shut down its write side. */
export const EPOLLRDHUP = 0x2000;
/** Size of `struct epoll_event` on x86-64 (packed: u32 events, u64 data). */
export const EPOLL_EVENT_SIZE = 12;

/** eventfd flags. */
export const EFD_NONBLOCK = 0o4000;
/** Close the eventfd on execve. */
export const EFD_CLOEXEC = 0o2000000;

/** setns() namespace type for network namespaces. */
export const CLONE_NEWNET = 0x40000000;

/** errno values the proxy tells apart. */
export const E = {
  EINTR: 4,
  EAGAIN: 11,
  EPIPE: 32,
  EADDRINUSE: 98,
  EADDRNOTAVAIL: 99,
  EAFNOSUPPORT: 97,
  ECONNRESET: 104,
  ECONNREFUSED: 111,
  EINPROGRESS: 115,
} as const;

/** An IPv4 or IPv6 socket address. */
export interface SockAddr {
  /** Dotted quad, or IPv6 text without brackets. */
  readonly host: string;
  readonly port: number;
}

/** True when `host` is IPv6 text (contains a colon). */
export function isIPv6(host: string): boolean {
  return host.includes(":");
}

function parseIPv4(host: string): Uint8Array {
  const parts = host.split(".");
  if (parts.length !== 4 || parts.some((p) => !/^[0-9]{1,3}$/.test(p) || Number(p) > 255)) {
    throw new RangeError(`not an IPv4 address: ${host}`);
  }
  return new Uint8Array(parts.map(Number));
}

function parseIPv6(host: string): Uint8Array {
  const out = new Uint8Array(16);
  let text = host;
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two groups.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const b = parseIPv4(v4[1]);
    text = text.slice(0, v4.index) + `${((b[0] << 8) | b[1]).toString(16)}:` +
      ((b[2] << 8) | b[3]).toString(16);
  }
  const halves = text.split("::");
  if (halves.length > 2) throw new RangeError(`not an IPv6 address: ${host}`);
  const groups = (s: string) => s === "" ? [] : s.split(":");
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  const fill = 8 - head.length - tail.length;
  if ((halves.length === 1 && fill !== 0) || fill < 0) {
    throw new RangeError(`not an IPv6 address: ${host}`);
  }
  const all = [...head, ...Array(halves.length === 2 ? fill : 0).fill("0"), ...tail];
  all.forEach((g, i) => {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) throw new RangeError(`not an IPv6 address: ${host}`);
    const v = parseInt(g, 16);
    out[i * 2] = v >> 8;
    out[i * 2 + 1] = v & 0xff;
  });
  return out;
}

/** Encodes a `sockaddr_in` / `sockaddr_in6`. */
export function encodeSockAddr(addr: SockAddr): Uint8Array<ArrayBuffer> {
  if (isIPv6(addr.host)) {
    const b = new Uint8Array(28);
    const v = new DataView(b.buffer);
    v.setUint16(0, AF_INET6, true);
    v.setUint16(2, addr.port, false);
    b.set(parseIPv6(addr.host), 8);
    return b;
  }
  const b = new Uint8Array(16);
  const v = new DataView(b.buffer);
  v.setUint16(0, AF_INET, true);
  v.setUint16(2, addr.port, false);
  b.set(parseIPv4(addr.host), 4);
  return b;
}

/** Decodes a `sockaddr_in` / `sockaddr_in6` (IPv6 text in its shortest form). */
export function decodeSockAddr(b: Uint8Array): SockAddr {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const family = v.getUint16(0, true);
  const port = v.getUint16(2, false);
  if (family === AF_INET) return { host: Array.from(b.subarray(4, 8)).join("."), port };
  if (family !== AF_INET6) throw new RangeError(`unknown address family ${family}`);
  const groups = Array.from({ length: 8 }, (_, i) => v.getUint16(8 + i * 2, false));
  // Compress the longest run of zero groups, as RFC 5952 prints addresses.
  let best = -1, bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i > 1) [best, bestLen] = [i, j - i];
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return { host: hex.join(":"), port };
  const host = `${hex.slice(0, best).join(":")}::${hex.slice(best + bestLen).join(":")}`;
  return { host, port };
}

/** Creates a socket (checked). */
export function socket(domain: number, type: number, protocol = 0): number {
  return check(libc.socket(domain, type, protocol), "socket", [domain, type, protocol]);
}

/** Sets an integer socket option (checked). */
export function setsockoptInt(fd: number, level: number, name: number, value: number): void {
  const b = new Int32Array([value]);
  check(
    libc.setsockopt(fd, level, name, new Uint8Array(b.buffer), 4),
    "setsockopt",
    [fd, level, name, value],
  );
}

/** Makes close() reset the connection (RST) instead of a graceful FIN. */
export function setLingerZero(fd: number): void {
  const b = new Int32Array([1, 0]);
  libc.setsockopt(fd, SOL_SOCKET, SO_LINGER, new Uint8Array(b.buffer), 8);
}

const intBuf = new Int32Array(1);
const intBytes = new Uint8Array(intBuf.buffer);
const lenBuf = new Uint32Array(1);
const lenBytes = new Uint8Array(lenBuf.buffer);

/** Reads an integer socket option (checked). */
export function getsockoptInt(fd: number, level: number, name: number): number {
  lenBuf[0] = 4;
  check(libc.getsockopt(fd, level, name, intBytes, lenBytes), "getsockopt", [fd, level, name]);
  return intBuf[0];
}

/** Binds `fd` to `addr` (checked). */
export function bind(fd: number, addr: SockAddr): void {
  const sa = encodeSockAddr(addr);
  check(libc.bind(fd, sa, sa.length), "bind", [fd, `${addr.host}:${addr.port}`]);
}

/** Marks `fd` as listening (checked). */
export function listen(fd: number, backlog: number): void {
  check(libc.listen(fd, backlog), "listen", [fd, backlog]);
}

/** The address a socket is bound to (checked). */
export function getsockname(fd: number): SockAddr {
  const b = new Uint8Array(28);
  lenBuf[0] = 28;
  check(libc.getsockname(fd, b, lenBytes), "getsockname", [fd]);
  return decodeSockAddr(b);
}

/** accept4 with `flags`; the new fd, or -errno. */
export function accept4Raw(fd: number, flags: number): number {
  const r = libc.accept4(fd, null, null, flags);
  return r < 0 ? -errno() : r;
}

/** connect; 0, or -errno (-EINPROGRESS for a nonblocking socket still connecting). */
export function connectRaw(fd: number, addr: SockAddr): number {
  const sa = encodeSockAddr(addr);
  return libc.connect(fd, sa, sa.length) < 0 ? -errno() : 0;
}

/** shutdown; 0 or -errno. */
export function shutdownRaw(fd: number, how: number): number {
  return libc.shutdown(fd, how) < 0 ? -errno() : 0;
}

/** Closes an fd, ignoring errors. */
export function close(fd: number): void {
  libc.close(fd);
}

/** A pipe `[read, write]` with `flags` (O_NONBLOCK | O_CLOEXEC), checked. */
export function pipe2(flags: number): [number, number] {
  const fds = new Int32Array(2);
  check(libc.pipe2(new Uint8Array(fds.buffer), flags), "pipe2", [flags]);
  return [fds[0], fds[1]];
}

/** fcntl with an integer argument; the result or -errno. */
export function fcntlRaw(fd: number, cmd: number, arg: number): number {
  const r = libc.fcntl(fd, cmd, arg);
  return r < 0 ? -errno() : r;
}

/** splice between `fdIn` and `fdOut` (one must be a pipe); bytes moved, 0 at EOF, or -errno. */
export function spliceRaw(fdIn: number, fdOut: number, len: number, flags: number): number {
  const r = Number(libc.splice(fdIn, null, fdOut, null, BigInt(len), flags));
  return r < 0 ? -errno() : r;
}

/** Creates an epoll instance (checked, close-on-exec). */
export function epollCreate(): number {
  return check(libc.epoll_create1(O_CLOEXEC), "epoll_create1", []);
}

const eventBytes = new Uint8Array(EPOLL_EVENT_SIZE);
const eventView = new DataView(eventBytes.buffer);

/** epoll_ctl with `events` and the fd itself as the event's data; 0 or -errno. */
export function epollCtlRaw(epfd: number, op: number, fd: number, events: number): number {
  eventView.setUint32(0, events, true);
  eventView.setUint32(4, fd, true);
  eventView.setUint32(8, 0, true);
  return libc.epoll_ctl(epfd, op, fd, eventBytes) < 0 ? -errno() : 0;
}

/**
 * Blocks the calling thread in epoll_wait. `events` holds `EPOLL_EVENT_SIZE`-byte records; read
 * them with {@link epollEventAt}. Returns the count, or -errno (-EINTR is normal).
 */
export function epollWaitRaw(epfd: number, events: Uint8Array<ArrayBuffer>, timeoutMs: number) {
  const r = libc.epoll_wait(epfd, events, Math.floor(events.length / EPOLL_EVENT_SIZE), timeoutMs);
  return r < 0 ? -errno() : r;
}

/** The `[events, fd]` of record `i` in an epoll_wait buffer. */
export function epollEventAt(view: DataView, i: number): [number, number] {
  const at = i * EPOLL_EVENT_SIZE;
  return [view.getUint32(at, true), view.getUint32(at + 4, true)];
}

/** A nonblocking, close-on-exec eventfd (checked). */
export function eventfd(): number {
  return check(libc.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), "eventfd", []);
}

const one = new BigUint64Array([1n]);

/** Adds 1 to an eventfd (wakes whoever waits on it). */
export function eventfdSignal(fd: number): void {
  libc.write(fd, new Uint8Array(one.buffer), 8n);
}

const drain = new Uint8Array(8);
/** Resets an eventfd to 0. */
export function eventfdDrain(fd: number): void {
  libc.read(fd, drain, 8n);
}

/** recvfrom into `buf`; bytes read or -errno. `from` (28 bytes) receives the sender. */
export function recvfromRaw(
  fd: number,
  buf: Uint8Array<ArrayBuffer>,
  from: Uint8Array<ArrayBuffer> | null,
): number {
  lenBuf[0] = from ? from.length : 0;
  const r = Number(libc.recvfrom(fd, buf, BigInt(buf.length), 0, from, from ? lenBytes : null));
  return r < 0 ? -errno() : r;
}

/** sendto (or send when `to` is null); bytes sent or -errno. */
export function sendtoRaw(
  fd: number,
  buf: Uint8Array<ArrayBuffer>,
  to: Uint8Array<ArrayBuffer> | null,
): number {
  const r = Number(libc.sendto(fd, buf, BigInt(buf.length), 0, to, to ? to.length : 0));
  return r < 0 ? -errno() : r;
}

/** Opens a namespace file (e.g. `/proc/PID/ns/net`) read-only, close-on-exec (checked). */
export function openNamespace(path: string): number {
  return check(libc.open(cstr(path), O_CLOEXEC), "open", [path]);
}

/**
 * Moves the *calling thread* into the network namespace `fd` refers to. Sockets that thread
 * creates afterwards belong to that namespace; sockets made before keep theirs.
 */
export function setnsNet(fd: number): void {
  if (libc.setns(fd, CLONE_NEWNET) < 0) throw new SyscallError("setns", [fd, "net"], errno());
}

const MSG_DONTWAIT = 0x40;
const MSG_CMSG_CLOEXEC = 0x40000000;

/** One message taken by {@link receiveFds}: its bytes and the fds it carried. */
export interface FdMessage {
  readonly data: Uint8Array;
  readonly fds: number[];
}

/**
 * Takes one queued message from unix socket `sock` without waiting (checked; `undefined` when
 * none is queued), with up to `maxFds` fds sent along with SCM_RIGHTS, received close-on-exec.
 */
export function receiveFds(sock: number, maxFds: number): FdMessage | undefined {
  const control = new Uint8Array(16 + Math.ceil((4 * maxFds) / 8) * 8);
  const msg = new MessageHeader(new Uint8Array(64), control);
  const n = Number(libc.recvmsg(sock, msg.bytes, MSG_DONTWAIT | MSG_CMSG_CLOEXEC));
  if (n < 0) {
    const e = errno();
    if (e === E.EAGAIN) return undefined;
    throw new SyscallError("recvmsg", [sock], e);
  }
  return { data: msg.data.slice(0, n), fds: msg.receivedFds() };
}
