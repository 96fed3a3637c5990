/**
 * Handing an fd to another program over a unix socket named by path (SCM_RIGHTS): how an OCI
 * runtime gives the container's pty master to its caller (`--console-socket`, which conmon and
 * the containerd shim listen on), and how tests play that caller.
 *
 * @module
 */
import { check, errno, openLibc } from "./libc.ts";
import { SyscallError } from "./errors.ts";
import { MessageHeader, SCM_RIGHTS, SOL_SOCKET } from "./msghdr.ts";

const libc = openLibc({
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  listen: { parameters: ["i32", "i32"], result: "i32" },
  accept4: { parameters: ["i32", "pointer", "pointer", "i32"], result: "i32", nonblocking: true },
  sendmsg: { parameters: ["i32", "buffer", "i32"], result: "isize" },
  recvmsg: { parameters: ["i32", "buffer", "i32"], result: "isize", nonblocking: true },
  close: { parameters: ["i32"], result: "i32" },
});

const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOCK_CLOEXEC = 0o2000000;
const MSG_CMSG_CLOEXEC = 0x40000000;
const encoder = new TextEncoder();

function sockaddrUn(path: string): Uint8Array<ArrayBuffer> {
  const bytes = encoder.encode(path);
  if (bytes.length >= 108) throw new SyscallError("connect", [path], 36); // ENAMETOOLONG
  const addr = new Uint8Array(110);
  new DataView(addr.buffer).setUint16(0, AF_UNIX, true);
  addr.set(bytes, 2);
  return addr;
}

/**
 * Connects to the unix stream socket at `path` and sends `fd` with `name` as the message's
 * bytes (runc sends the pty's name; receivers use only the fd). The connection is closed after.
 */
export function sendFdToPath(path: string, fd: number, name: string): void {
  const sock = check(libc.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket", ["unix"]);
  try {
    const addr = sockaddrUn(path);
    check(libc.connect(sock, addr, addr.length), "connect", [path]);
    const data = encoder.encode(name || "fd") as Uint8Array<ArrayBuffer>;
    const control = new Uint8Array(24); // CMSG_SPACE(sizeof(int))
    const cv = new DataView(control.buffer);
    cv.setBigUint64(0, 20n, true); // CMSG_LEN(sizeof(int))
    cv.setInt32(8, SOL_SOCKET, true);
    cv.setInt32(12, SCM_RIGHTS, true);
    cv.setInt32(16, fd, true);
    const msg = new MessageHeader(data, control);
    const n = libc.sendmsg(sock, msg.bytes, 0);
    if (n < 0) throw new SyscallError("sendmsg", [path], errno());
  } finally {
    libc.close(sock);
  }
}

/** A listening unix socket at a path (the caller's side of `--console-socket`, for tests). */
export function listenUnix(path: string): number {
  const sock = check(libc.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket", ["unix"]);
  const addr = sockaddrUn(path);
  if (libc.bind(sock, addr, addr.length) < 0 || libc.listen(sock, 4) < 0) {
    const e = errno();
    libc.close(sock);
    throw new SyscallError("bind", [path], e);
  }
  return sock;
}

/** Accepts one connection on `listener` and receives one fd from it (blocking off-thread). */
export async function acceptFd(listener: number): Promise<number> {
  const conn = await libc.accept4(listener, null, null, SOCK_CLOEXEC);
  if (conn < 0) throw new SyscallError("accept4", [listener], errno());
  try {
    const msg = new MessageHeader(new Uint8Array(256), new Uint8Array(64));
    const n = Number(await libc.recvmsg(conn, msg.bytes, MSG_CMSG_CLOEXEC));
    if (n < 0) throw new SyscallError("recvmsg", [listener], errno());
    const fd = msg.receivedFds()[0];
    if (fd === undefined) throw new SyscallError("recvmsg", ["no fd received"], 22);
    return fd;
  } finally {
    libc.close(conn);
  }
}
