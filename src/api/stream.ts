/**
 * Docker's raw streams: the stdcopy framing of logs and attach without a tty (stream byte,
 * three zero bytes, big-endian u32 length, payload), and the bridge between a hijacked API
 * connection and a container supervisor's attach socket (src/container/attach.ts), whose frames
 * are the same stdcopy header with tsbox's control types beside.
 *
 * @module
 */
import {
  attachFirstPath,
  connectAttach,
  decodeExit,
  encodeFrame,
  FRAME,
  FrameDecoder,
} from "../container/attach.ts";
import { getContainer, isActive, reconcile } from "../container/state.ts";
import type { Store } from "../store/mod.ts";
import type { ApiConn, Hijacked } from "./http.ts";

/** One stdcopy frame of `stream` (1 stdout, 2 stderr). */
export function stdFrame(stream: 1 | 2, payload: Uint8Array): Uint8Array {
  return encodeFrame(stream, payload);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function writeAll(conn: ApiConn, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await conn.write(data.subarray(off));
}

/** What a client attaches to. */
export interface AttachOptions {
  readonly stdin: boolean;
  readonly stdout: boolean;
  readonly stderr: boolean;
  /** The container has a pty: output goes unframed, as docker sends it. */
  readonly tty: boolean;
  /** Called with the exit code the supervisor reports at the end of the run. */
  readonly onExit?: (code: number) => void;
}

/**
 * Connects to the supervisor of container `id`. A container not started yet leaves the
 * `attach-first` marker, so that its supervisor waits for this client before the process runs
 * (docker's `run` attaches before it starts, and must see the first byte), and waits for it.
 * Undefined when the container ended or went away without a supervisor to reach.
 */
export async function reachSupervisor(
  store: Store,
  id: string,
): Promise<Deno.UnixConn | undefined> {
  const first = getContainer(store, id);
  if (!first) return undefined;
  const waiting = !isActive(reconcile(store, first).state);
  if (waiting) await Deno.writeTextFile(attachFirstPath(store.root, id), "").catch(() => {});
  let sawActive = !waiting;
  for (let delay = 10;; delay = Math.min(delay * 2, 100)) {
    const conn = await connectAttach(store.root, id).catch(() => undefined);
    if (conn) return conn;
    const row = getContainer(store, id);
    if (!row) return undefined;
    const state = reconcile(store, row).state;
    if (isActive(state)) sawActive = true;
    // Ran and ended without us: nothing left to attach to.
    else if (sawActive || state === "exited" && !waiting) return undefined;
    await sleep(delay);
  }
}

/**
 * Bridges hijacked connection `h` and container `id`'s supervisor until the run ends (the
 * client's connection is closed then, which is how docker's client learns of it) or the client
 * goes away (its attach ends; the container goes on).
 */
export async function bridgeAttach(
  store: Store,
  id: string,
  h: Hijacked,
  o: AttachOptions,
): Promise<void> {
  const sup = await reachSupervisor(store, id);
  if (!sup) {
    h.conn.close();
    return;
  }
  let closed = false;
  const closeBoth = () => {
    if (closed) return;
    closed = true;
    for (const c of [sup, h.conn]) {
      try {
        c.close();
      } catch { /* already closed */ }
    }
  };
  let sendQueue: Promise<void> = Promise.resolve();
  const send = (frame: Uint8Array) => {
    sendQueue = sendQueue.then(() => writeAll(sup, frame)).catch(() => {});
    return sendQueue;
  };
  void send(encodeFrame(FRAME.ready));

  const output = (async () => {
    const decoder = new FrameDecoder();
    const buf = new Uint8Array(65536);
    for (;;) {
      const n = await sup.read(buf);
      if (n === null) return;
      for (const f of decoder.push(buf.subarray(0, n))) {
        if (f.type === FRAME.exit) {
          o.onExit?.(decodeExit(f.payload) ?? 0);
          return;
        }
        if (f.type !== FRAME.stdout && f.type !== FRAME.stderr) continue;
        if (f.type === FRAME.stdout ? !o.stdout : !o.stderr) continue;
        await writeAll(h.conn, o.tty ? f.payload : encodeFrame(f.type, f.payload));
      }
    }
  })().catch(() => {});

  const input = o.stdin
    ? (async () => {
      if (h.early.length > 0) await send(encodeFrame(FRAME.stdin, h.early));
      const buf = new Uint8Array(65536);
      for (;;) {
        const n = await h.conn.read(buf);
        if (n === null) {
          // docker's StdinOnce: the client's end of input closes the container's stdin.
          await send(encodeFrame(FRAME.closeStdin));
          return;
        }
        await send(encodeFrame(FRAME.stdin, buf.slice(0, n)));
      }
    })().catch(() => {})
    : Promise.resolve();

  await output;
  await sendQueue;
  closeBoth();
  await input;
}
