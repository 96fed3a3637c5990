/**
 * Handing an fd to another program over a unix socket named by path (SCM_RIGHTS): how an OCI
 * runtime gives the container's pty master to its caller (`--console-socket`, which conmon and
 * the containerd shim listen on), and how tests play that caller.
 *
 * @module
 */
import { check, errno, openLibc } from "./libc.ts";
import { SyscallError } from "./errors.ts";

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
const SOL_SOCKET = 1;
const SCM_RIGHTS = 1;
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

function pointerOf(buf: Uint8Array<ArrayBuffer>): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)));
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
    const iov = new BigUint64Array([pointerOf(data), BigInt(data.length)]);
    const control = new Uint8Array(24); // CMSG_SPACE(sizeof(int))
    const cv = new DataView(control.buffer);
    cv.setBigUint64(0, 20n, true); // CMSG_LEN(sizeof(int))
    cv.setInt32(8, SOL_SOCKET, true);
    cv.setInt32(12, SCM_RIGHTS, true);
    cv.setInt32(16, fd, true);
    const msg = new BigUint64Array(7);
    msg[2] = pointerOf(new Uint8Array(iov.buffer));
    msg[3] = 1n;
    msg[4] = pointerOf(control);
    msg[5] = BigInt(control.length);
    const n = libc.sendmsg(sock, new Uint8Array(msg.buffer), 0);
    if (n < 0) throw new SyscallError("sendmsg", [path], errno());
    void iov;
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
    const data = new Uint8Array(256);
    const iov = new BigUint64Array([pointerOf(data), 256n]);
    const control = new Uint8Array(64);
    const msg = new BigUint64Array(7);
    msg[2] = pointerOf(new Uint8Array(iov.buffer));
    msg[3] = 1n;
    msg[4] = pointerOf(control);
    msg[5] = BigInt(control.length);
    const n = Number(await libc.recvmsg(conn, new Uint8Array(msg.buffer), MSG_CMSG_CLOEXEC));
    if (n < 0) throw new SyscallError("recvmsg", [listener], errno());
    void iov;
    const view = new DataView(control.buffer);
    if (Number(msg[5]) < 20 || view.getInt32(12, true) !== SCM_RIGHTS) {
      throw new SyscallError("recvmsg", ["no fd received"], 22);
    }
    return view.getInt32(16, true);
  } finally {
    libc.close(conn);
  }
}
