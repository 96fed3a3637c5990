/**
 * The attach socket: a unix stream socket in the container's directory (mode 0600) through which
 * `attach` and `start -a` reach a container its supervisor runs. The supervisor stays the only
 * reader of the container's output (the log must see every byte); it copies each chunk to every
 * attached client, and takes their input, window sizes and end of input.
 *
 * Frames in both directions are attach_frames.ts's (docker's stdcopy header, and control
 * messages), re-exported here.
 *
 * @module
 */
import { join } from "../path.ts";
import { AT_FDCWD, O_CLOEXEC, O_DIRECTORY, O_PATH, openat } from "../../ffi/fs.ts";
import { closeFd } from "../../ffi/process.ts";
import { setWindowSize, type WindowSize, writeAllAsync } from "../../ffi/terminal.ts";
import { containerDir } from "./paths.ts";
import {
  decodeResize,
  encodeFrame,
  exitFrame,
  FRAME,
  type Frame,
  FrameDecoder,
} from "./attach_frames.ts";

/** A client this far behind is disconnected rather than slowing the container down. */
const MAX_BACKLOG = 8 << 20;
/** Input held while no process runs yet (attach-first start). */
const MAX_PENDING_INPUT = 1 << 16;

export {
  decodeExit,
  decodeResize,
  encodeFrame,
  exitFrame,
  FRAME,
  type Frame,
  FrameDecoder,
  FrameError,
  resizeFrame,
} from "./attach_frames.ts";

/** Where the attach socket of container `id` lives. */
export function attachSocketPath(root: string, id: string): string {
  return join(containerDir(root, id), "attach.sock");
}

/** The marker `start -a` leaves so the supervisor waits for it before starting the process. */
export function attachFirstPath(root: string, id: string): string {
  return join(containerDir(root, id), "attach-first");
}

/** sun_path holds 108 bytes including the terminating NUL. */
const SUN_PATH_MAX = 107;

/**
 * Calls `fn` with a path to `path` short enough for a unix socket address: `path` itself, or one
 * through an O_PATH fd of its directory (`/proc/self/fd/N/name`), open while `fn` runs.
 */
export async function withShortPath<T>(
  path: string,
  fn: (short: string) => T | Promise<T>,
): Promise<T> {
  if (new TextEncoder().encode(path).length <= SUN_PATH_MAX) return await fn(path);
  const slash = path.lastIndexOf("/");
  const dir = openat(AT_FDCWD, path.slice(0, slash) || "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  try {
    return await fn(`/proc/self/fd/${dir}/${path.slice(slash + 1)}`);
  } finally {
    closeFd(dir);
  }
}

/** Connects to the attach socket of container `id`. */
export function connectAttach(root: string, id: string): Promise<Deno.UnixConn> {
  return withShortPath(
    attachSocketPath(root, id),
    (p) => Deno.connect({ transport: "unix", path: p }),
  );
}

/** Where the supervisor sends what attached clients type. */
export interface AttachTarget {
  /** Bytes for the container's stdin or pty. */
  write(data: Uint8Array<ArrayBuffer>): Promise<void>;
  /** A client's window size (pty only). */
  resize?(size: WindowSize): void;
  /** A client's input ended (`start -ai`). */
  closeInput?(): void;
}

class Client {
  #queue: Promise<void> = Promise.resolve();
  #backlog = 0;
  closed = false;

  constructor(readonly conn: Deno.UnixConn) {}

  send(frame: Uint8Array): void {
    if (this.closed) return;
    if (this.#backlog + frame.length > MAX_BACKLOG) {
      this.close();
      return;
    }
    this.#backlog += frame.length;
    this.#queue = this.#queue.then(async () => {
      if (this.closed) return;
      try {
        let off = 0;
        while (off < frame.length) off += await this.conn.write(frame.subarray(off));
      } catch {
        this.close();
      } finally {
        this.#backlog -= frame.length;
      }
    });
  }

  /** Resolves when everything queued so far was written (or the client is gone). */
  flushed(): Promise<void> {
    return this.#queue;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.conn.close();
    } catch { /* already closed */ }
  }
}

/** The supervisor's end of the attach socket. */
export class AttachServer {
  #clients = new Set<Client>();
  #target?: AttachTarget;
  #pending: Uint8Array<ArrayBuffer>[] = [];
  #pendingBytes = 0;
  #pendingClose = false;
  #lastSize?: WindowSize;
  #arrivals: (() => void)[] = [];
  #closed = false;
  #accepting: Promise<void>;

  private constructor(
    readonly path: string,
    readonly listener: Deno.UnixListener,
    private readonly dirFd: number | undefined,
  ) {
    this.#accepting = this.#accept();
  }

  /**
   * Listens on `path` (a stale socket there is replaced), reachable by its owner only. Long paths
   * are bound through a directory fd held until {@link close}.
   */
  static listen(path: string): AttachServer {
    let dirFd: number | undefined;
    let bindPath = path;
    if (new TextEncoder().encode(path).length > SUN_PATH_MAX) {
      const slash = path.lastIndexOf("/");
      dirFd = openat(AT_FDCWD, path.slice(0, slash) || "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
      bindPath = `/proc/self/fd/${dirFd}/${path.slice(slash + 1)}`;
    }
    try {
      try {
        Deno.removeSync(bindPath);
      } catch { /* none there */ }
      const listener = Deno.listen({ transport: "unix", path: bindPath });
      Deno.chmodSync(bindPath, 0o600);
      return new AttachServer(path, listener, dirFd);
    } catch (err) {
      if (dirFd !== undefined) closeFd(dirFd);
      throw err;
    }
  }

  /** Number of attached clients. */
  get clients(): number {
    return this.#clients.size;
  }

  async #accept(): Promise<void> {
    for (;;) {
      let conn: Deno.UnixConn;
      try {
        conn = await this.listener.accept();
      } catch {
        return; // closed
      }
      const client = new Client(conn);
      this.#clients.add(client);
      this.#serve(client).finally(() => {
        client.close();
        this.#clients.delete(client);
      });
    }
  }

  async #serve(client: Client): Promise<void> {
    const decoder = new FrameDecoder();
    const buf = new Uint8Array(65536);
    for (;;) {
      let n: number | null;
      try {
        n = await client.conn.read(buf);
      } catch {
        return;
      }
      if (n === null) return;
      let frames: Frame[];
      try {
        frames = decoder.push(buf.subarray(0, n));
      } catch {
        return; // not one of ours: drop it
      }
      for (const f of frames) await this.#handle(f);
    }
  }

  async #handle(f: Frame): Promise<void> {
    const t = this.#target;
    switch (f.type) {
      case FRAME.stdin: {
        const data = f.payload.slice();
        if (!t) {
          if (this.#pendingBytes + data.length <= MAX_PENDING_INPUT) {
            this.#pending.push(data);
            this.#pendingBytes += data.length;
          }
          return;
        }
        await t.write(data).catch(() => {});
        return;
      }
      case FRAME.resize: {
        const size = decodeResize(f.payload);
        if (size && size.rows > 0 && size.cols > 0) {
          this.#lastSize = size;
          try {
            t?.resize?.(size);
          } catch { /* the pty is gone */ }
        }
        return;
      }
      case FRAME.ready:
        for (const r of this.#arrivals.splice(0)) r();
        return;
      case FRAME.closeStdin:
        if (t) t.closeInput?.();
        else this.#pendingClose = true;
        return;
    }
  }

  /** The window size a client sent last: the size a pty starts with. */
  get lastSize(): WindowSize | undefined {
    return this.#lastSize;
  }

  /**
   * Resolves true once a client has said it is ready (attached, its window size sent), false
   * after `timeoutMs` without one (a `start -a` that died must not hold the container forever).
   */
  waitForClient(timeoutMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#arrivals = this.#arrivals.filter((r) => r !== arrived);
        resolve(false);
      }, timeoutMs);
      const arrived = () => {
        clearTimeout(timer);
        resolve(true);
      };
      this.#arrivals.push(arrived);
    });
  }

  /** Routes client input to the running process (undefined: none runs). */
  async setTarget(target: AttachTarget | undefined): Promise<void> {
    this.#target = target;
    if (!target) return;
    const pending = this.#pending.splice(0);
    this.#pendingBytes = 0;
    if (this.#lastSize && target.resize) {
      try {
        target.resize(this.#lastSize);
      } catch { /* the pty is gone */ }
    }
    for (const data of pending) await target.write(data).catch(() => {});
    if (this.#pendingClose) {
      this.#pendingClose = false;
      target.closeInput?.();
    }
  }

  /** Copies a chunk of the container's output to every client. */
  broadcast(stream: 1 | 2, chunk: Uint8Array): void {
    if (this.#clients.size === 0 || chunk.length === 0) return;
    const frame = encodeFrame(stream, chunk);
    for (const c of this.#clients) c.send(frame);
  }

  /** Tells every client the process ended with `code`, then disconnects them. */
  async endRun(code: number): Promise<void> {
    this.#target = undefined;
    const frame = exitFrame(code);
    const clients = [...this.#clients];
    for (const c of clients) c.send(frame);
    await Promise.all(clients.map((c) => c.flushed()));
    for (const c of clients) c.close();
  }

  /** Stops listening, removes the socket and disconnects everyone. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.listener.close(); // also unlinks the socket file
    } catch { /* closed */ }
    await this.#accepting;
    for (const c of this.#clients) c.close();
    if (this.dirFd !== undefined) closeFd(this.dirFd);
  }
}

/**
 * The supervisor's server for container `id`; undefined (no attach, the container runs) if it
 * cannot listen, which is told to `warn`.
 */
export function openAttachServer(
  root: string,
  id: string,
  warn: (message: string) => void = () => {},
): AttachServer | undefined {
  try {
    return AttachServer.listen(attachSocketPath(root, id));
  } catch (err) {
    warn(`tsbox: attach socket of ${id.slice(0, 12)}: ${(err as Error).message}`);
    return undefined;
  }
}

/** How long a supervisor waits for the `start -a` that asked it to. */
const ATTACH_FIRST_TIMEOUT_MS = 10_000;

/**
 * Before a start: when `start -a` left its marker, waits until it has attached, so it sees the
 * process's output from the first byte (the marker is used once).
 */
export async function awaitAttachFirst(
  server: AttachServer | undefined,
  root: string,
  id: string,
): Promise<void> {
  if (!server) return;
  try {
    Deno.removeSync(attachFirstPath(root, id));
  } catch {
    return; // no marker
  }
  await server.waitForClient(ATTACH_FIRST_TIMEOUT_MS);
}

/** A writer `pumpToLog` can tee to. */
export interface TeeWriter {
  write(p: Uint8Array): Promise<number>;
}

/**
 * A tee for `pumpToLog`: each chunk goes to every attached client and, when given, to `user`
 * (the foreground terminal), which stops being written once it fails.
 */
export function attachTee(
  server: AttachServer | undefined,
  stream: 1 | 2,
  user?: TeeWriter,
): TeeWriter | undefined {
  if (!server) return user;
  let userOk = user !== undefined;
  return {
    async write(p: Uint8Array): Promise<number> {
      server.broadcast(stream, p);
      if (userOk) {
        try {
          let off = 0;
          while (off < p.length) off += await user!.write(p.subarray(off));
        } catch {
          userOk = false;
        }
      }
      return p.length;
    },
  };
}

/** Client input for a `-t` container: typed into its pty master; sizes set on the pty. */
export function ptyTarget(master: number): AttachTarget {
  return {
    write: (data) => writeAllAsync(master, data),
    resize: (size) => setWindowSize(master, size),
  };
}

/** Client input for a detached `-i` container without a pty: its stdin pipe's write end. */
export class StdinPipe implements AttachTarget {
  #writes: Promise<void> = Promise.resolve();
  #closed = false;

  /** `fd` is the pipe's write end, owned from now on. */
  constructor(readonly fd: number) {}

  write(data: Uint8Array<ArrayBuffer>): Promise<void> {
    if (this.#closed) return Promise.resolve();
    // In order, one at a time; a write blocked on a full pipe fails with EPIPE once PID 1 ends.
    this.#writes = this.#writes.then(() => this.#closed ? undefined : writeAllAsync(this.fd, data))
      .catch(() => {});
    return this.#writes;
  }

  closeInput(): void {
    void this.end();
  }

  /** Closes the write end once pending writes are done. */
  async end(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#writes;
    closeFd(this.fd);
  }
}
