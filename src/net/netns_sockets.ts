/**
 * Sockets inside a network namespace that this process may not enter: the rootless proxy's way
 * to reach a container.
 *
 * A socket belongs for good to the network namespace it was created in. Root moves the proxy's
 * thread into the container's namespace with setns (proxy_worker.ts); a plain user may not,
 * since the namespace belongs to the container's user namespace and a threaded process may
 * neither enter that user namespace nor, from outside it, the namespaces it owns. A process made
 * by the clone stub is single-threaded, though: it joins the user namespace (gaining its
 * capabilities there), then the network namespace, creates a batch of sockets and sends them
 * back over a unix socket (SCM_RIGHTS) before it exits. Connected from the proxy's thread, such
 * a socket reaches the container's 127.0.0.1. One helper process serves a whole batch, so a
 * connection costs a clone only once per {@link BATCH}.
 *
 * @module
 */
import {
  bytes,
  cloneProgram,
  CompiledProgram,
  decodeStatus,
  type Op,
  Struct,
} from "../../ffi/clone.ts";
import { SyscallError } from "../../ffi/errors.ts";
import { NAMESPACE_TYPES } from "../../ffi/namespace.ts";
import { close, fcntlRaw, receiveFds, SOCK_CLOEXEC, SOCK_NONBLOCK } from "../../ffi/net.ts";
import { waitPidSync } from "../../ffi/process.ts";
import { SYS, syscallName } from "../../ffi/syscall_numbers.ts";
import { SOCK_DGRAM, socketPair } from "../../ffi/terminal.ts";

/** Sockets one helper process makes. */
export const BATCH = 16;

const F_DUPFD_CLOEXEC = 1030;
const PR_SET_DUMPABLE = 4;
const SOL_SOCKET = 1;
const SCM_RIGHTS = 1;

function op(nr: number, what: string, args: Op["args"], flags = 0): Op {
  return { nr, args, flags, what };
}

/** A msghdr with one byte of data and an SCM_RIGHTS message carrying fds `first..first+n-1`. */
function fdsMessage(first: number, n: number): Struct {
  const space = 16 + Math.ceil((4 * n) / 8) * 8; // CMSG_SPACE(n * sizeof(int))
  const cmsg = new Uint8Array(space);
  const cv = new DataView(cmsg.buffer);
  cv.setBigUint64(0, BigInt(16 + 4 * n), true); // CMSG_LEN(n * sizeof(int))
  cv.setInt32(8, SOL_SOCKET, true);
  cv.setInt32(12, SCM_RIGHTS, true);
  for (let i = 0; i < n; i++) cv.setInt32(16 + 4 * i, first + i, true);
  const iov = new Uint8Array(16);
  new DataView(iov.buffer).setBigUint64(8, 1n, true);
  const msg = new Uint8Array(56);
  const mv = new DataView(msg.buffer);
  mv.setBigUint64(24, 1n, true); // msg_iovlen
  mv.setBigUint64(40, BigInt(space), true); // msg_controllen
  return new Struct(msg, [
    { offset: 16, to: new Struct(iov, [{ offset: 0, to: bytes(new Uint8Array([0x73])) }]) },
    { offset: 32, to: bytes(cmsg) },
  ]);
}

/**
 * The helper's program. Its fds are made predictable first (the channel as 0, the namespaces
 * as 1 and 2, nothing else), so the sockets it creates are 1..n once the namespace fds are
 * closed, and the message naming them can be laid out before it runs. Failures are reported on
 * fd 0, the channel, as a 16-byte status record (the ops before it is fd 0 cannot fail).
 */
export function socketHelperOps(
  fds: { readonly channel: number; readonly userns: number; readonly netns: number },
  family: number,
  type: number,
  n: number,
): Op[] {
  return [
    // Its memory is a copy of the supervisor's: no process of the container's user, which it
    // becomes a member of, may read it through /proc or ptrace.
    op(SYS.prctl, "make the helper non-dumpable", [PR_SET_DUMPABLE, 0, 0, 0, 0]),
    op(SYS.dup3, "install the channel as fd 0", [fds.channel, 0, 0]),
    op(SYS.dup3, "install the user namespace fd as fd 1", [fds.userns, 1, 0]),
    op(SYS.dup3, "install the network namespace fd as fd 2", [fds.netns, 2, 0]),
    op(SYS.close_range, "close fds from 3", [3, 0xffffffff, 0]),
    op(SYS.setns, "join the container's user namespace", [1, NAMESPACE_TYPES.user]),
    op(SYS.setns, "join the container's network namespace", [2, NAMESPACE_TYPES.net]),
    op(SYS.close_range, "close the namespace fds", [1, 2, 0]),
    ...Array.from(
      { length: n },
      (_, i) => op(SYS.socket, `socket ${i + 1}`, [family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0]),
    ),
    op(SYS.sendmsg, "send the sockets", [0, fdsMessage(1, n), 0]),
    op(SYS.exit_group, "exit", [0]),
  ];
}

/** A failure of the helper process, naming its step and errno. */
export class SocketHelperError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "SocketHelperError";
  }
}

/** Makes sockets in a network namespace owned by a user namespace this process may join. */
export class NetnsSockets {
  readonly #userns: number;
  readonly #netns: number;
  readonly #parent: number;
  readonly #child: number;
  readonly #pools = new Map<string, number[]>();
  readonly #programs = new Map<string, { program: CompiledProgram; ops: Op[] }>();
  #closed = false;

  /** Keeps copies of `userns` and `netns` (fds of the container's namespaces) until close(). */
  constructor(userns: number, netns: number) {
    const dup = (fd: number, what: string) => {
      // Copies above 2: the helper's first ops overwrite 0, 1 and 2.
      const r = fcntlRaw(fd, F_DUPFD_CLOEXEC, 3);
      if (r < 0) throw new SyscallError("fcntl", [fd, "F_DUPFD_CLOEXEC", what], -r);
      return r;
    };
    this.#userns = dup(userns, "user namespace");
    try {
      this.#netns = dup(netns, "network namespace");
    } catch (err) {
      close(this.#userns);
      throw err;
    }
    // Both ends stay here: the helper is waited for before its message is read, so no EOF is
    // needed to notice that it died.
    [this.#parent, this.#child] = socketPair(SOCK_DGRAM | SOCK_CLOEXEC);
  }

  /**
   * A new socket of `family` and `type` (SOCK_STREAM, SOCK_DGRAM) in the namespace, nonblocking
   * and close-on-exec; the caller owns it.
   */
  socket(family: number, type: number): number {
    const key = `${family}/${type}`;
    let pool = this.#pools.get(key);
    if (!pool) this.#pools.set(key, pool = []);
    if (pool.length === 0) pool.push(...this.#make(key, family, type));
    return pool.pop()!;
  }

  #make(key: string, family: number, type: number): number[] {
    if (this.#closed) throw new SocketHelperError("the namespace's socket maker is closed");
    let compiled = this.#programs.get(key);
    if (!compiled) {
      const ops = socketHelperOps(
        { channel: this.#child, userns: this.#userns, netns: this.#netns },
        family,
        type,
        BATCH,
      );
      // The status fd is the helper's fd 0, which is the channel from its first op on.
      compiled = { program: CompiledProgram.compile(ops, 0), ops };
      this.#programs.set(key, compiled);
    }
    const pid = cloneProgram(compiled.program, 0);
    const status = waitPidSync(pid);
    const message = receiveFds(this.#parent, BATCH);
    if (message && message.fds.length > 0) {
      if (message.fds.length === BATCH) return message.fds;
      for (const fd of message.fds) close(fd);
      throw new SocketHelperError(`the socket helper sent ${message.fds.length} of ${BATCH}`);
    }
    const failure = message?.data.length === 16 ? decodeStatus(message.data) : undefined;
    if (failure && failure.opIndex >= 0) {
      const step = compiled.ops[failure.opIndex]?.what ?? `op ${failure.opIndex}`;
      const nr = compiled.ops[failure.opIndex]?.nr;
      const cause = new SyscallError(
        nr === undefined ? "syscall" : syscallName(nr),
        [],
        failure.errno,
      );
      throw new SocketHelperError(`socket helper: ${step}: ${cause.message}`, { cause });
    }
    const how = status.signal !== undefined
      ? `was killed by signal ${status.signal}`
      : `exited ${status.exitCode}`;
    throw new SocketHelperError(`the socket helper ${how} without sending sockets`);
  }

  /** Closes the pooled sockets, the namespace fds and the channel. Safe to call twice. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const pool of this.#pools.values()) for (const fd of pool.splice(0)) close(fd);
    for (const { program } of this.#programs.values()) program.free();
    for (const fd of [this.#userns, this.#netns, this.#parent, this.#child]) close(fd);
  }
}
