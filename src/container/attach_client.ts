/**
 * The client end of a container's attach socket (`attach`, `start -a`): the container's output
 * to the user's stdout/stderr, the user's input to the container (raw terminal with a pty,
 * window size now and on SIGWINCH), docker's detach keys, and the exit code the supervisor
 * reports when the process ends.
 *
 * The user's input is read with poll(2) on a worker thread next to a wake-up pipe, as in
 * runtime/tty.ts: a pending read(2) on the terminal could not be cancelled and would swallow the
 * next keystroke typed after tsbox has ended.
 *
 * @module
 */
import { closeFd, pipe } from "../../ffi/process.ts";
import { POLL, poll, readSome, writeAllAsync, writeNow } from "../../ffi/terminal.ts";
import { isTerminal } from "../../ffi/terminal.ts";
import { TsboxError } from "../errors.ts";
import { enterRaw, filterDetach, userWindowSize } from "../runtime/tty.ts";
import { decodeExit, encodeFrame, FRAME, FrameDecoder, resizeFrame } from "./attach.ts";

/** How an attach session ended. */
export type AttachEnd =
  | { readonly kind: "exited"; readonly exitCode: number }
  | { readonly kind: "detached" }
  | { readonly kind: "closed" };

/** Options of {@link attachSession}. */
export interface AttachSessionOptions {
  /** The container has a pty: raw user terminal, window sizes. */
  readonly tty: boolean;
  /** Send the user's input. */
  readonly stdin: boolean;
  /** Detach on this sequence (docker's ctrl-p ctrl-q by default at the CLI). */
  readonly detachKeys?: Uint8Array;
  /** Close the container's stdin when the user's ends (`start -ai`, docker's StdinOnce). */
  readonly closeStdin?: boolean;
  /** Fds of the user's side (defaults 0, 1, 2). */
  readonly input?: number;
  readonly output?: number;
  readonly errorOutput?: number;
}

/** docker's `--detach-keys` syntax could not be read. */
export class DetachKeysError extends TsboxError {
  constructor(spec: string) {
    super(`Invalid detach keys (${spec}) provided`);
    this.name = "DetachKeysError";
  }
}

/** ctrl- combinations with a symbol: their control codes. */
const CTRL_SYMBOLS: Readonly<Record<string, number>> = {
  "@": 0x00,
  "[": 0x1b,
  "\\": 0x1c,
  "]": 0x1d,
  "^": 0x1e,
  "_": 0x1f,
};

/**
 * Parses docker's `--detach-keys`: comma-separated keys, each one character or `ctrl-X` with X
 * one of a-z, @, [, \, ], ^, _.
 */
export function parseDetachKeys(spec: string): Uint8Array {
  const out: number[] = [];
  for (const key of spec.split(",")) {
    const k = key.trim().toLowerCase();
    if (k.length === 1) {
      out.push(key.trim().charCodeAt(0));
      continue;
    }
    const m = /^ctrl-(.)$/.exec(k);
    if (!m) throw new DetachKeysError(spec);
    const c = m[1];
    if (c >= "a" && c <= "z") out.push(c.charCodeAt(0) - 0x60);
    else if (c in CTRL_SYMBOLS) out.push(CTRL_SYMBOLS[c]);
    else throw new DetachKeysError(spec);
  }
  if (out.length === 0 || out.some((b) => b > 0x7f)) throw new DetachKeysError(spec);
  return new Uint8Array(out);
}

async function writeConn(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await conn.write(data.subarray(off));
}

/** Runs an attach session on `conn` until the process ends, the user detaches, or it closes. */
export async function attachSession(
  conn: Deno.Conn,
  o: AttachSessionOptions,
): Promise<AttachEnd> {
  const input = o.input ?? 0;
  const output = o.output ?? 1;
  const errorOutput = o.errorOutput ?? 2;
  const [wakeR, wakeW] = pipe();
  const restoreRaw = o.tty && o.stdin && isTerminal(input) ? enterRaw(input) : undefined;
  let sendQueue: Promise<void> = Promise.resolve();
  const send = (frame: Uint8Array) => {
    sendQueue = sendQueue.then(() => writeConn(conn, frame)).catch(() => {});
    return sendQueue;
  };
  const sizeFrom = [input, output];
  const sendSize = () => {
    const size = userWindowSize(sizeFrom);
    if (size) void send(resizeFrame(size));
  };
  if (o.tty) {
    sendSize();
    Deno.addSignalListener("SIGWINCH", sendSize);
  }
  void send(encodeFrame(FRAME.ready));
  let detach!: () => void;
  const detached = new Promise<AttachEnd>((r) => detach = () => r({ kind: "detached" }));
  let inputStopped = false;

  const outputDone = (async (): Promise<AttachEnd> => {
    const decoder = new FrameDecoder();
    const buf = new Uint8Array(65536);
    for (;;) {
      let n: number | null;
      try {
        n = await conn.read(buf);
      } catch {
        return { kind: "closed" };
      }
      if (n === null) return { kind: "closed" };
      for (const f of decoder.push(buf.subarray(0, n))) {
        if (f.type === FRAME.stdout || f.type === FRAME.stderr) {
          const to = f.type === FRAME.stdout ? output : errorOutput;
          await writeAllAsync(to, f.payload.slice()).catch(() => {});
        } else if (f.type === FRAME.exit) {
          return { kind: "exited", exitCode: decodeExit(f.payload) ?? 0 };
        }
      }
    }
  })().catch((): AttachEnd => ({ kind: "closed" }));

  const inputDone = o.stdin
    ? (async () => {
      const held: number[] = [];
      for (;;) {
        const [rev, wake] = await poll([input, wakeR], POLL.IN, -1);
        if (wake || inputStopped || rev & POLL.NVAL) return;
        if (!(rev & (POLL.IN | POLL.HUP | POLL.ERR))) continue;
        const chunk = readSome(input);
        if (chunk === undefined) continue;
        if (chunk.length === 0) {
          if (o.closeStdin) await send(encodeFrame(FRAME.closeStdin));
          return;
        }
        let data: Uint8Array = chunk;
        if (o.detachKeys && o.detachKeys.length > 0) {
          const f = filterDetach(chunk, o.detachKeys, held);
          if (f.send.length > 0) await send(encodeFrame(FRAME.stdin, f.send));
          if (f.detached) {
            detach();
            return;
          }
          continue;
        }
        data = chunk.slice();
        await send(encodeFrame(FRAME.stdin, data));
      }
    })().catch(() => {/* the user's input is gone */})
    : Promise.resolve();

  try {
    return await Promise.race([outputDone, detached]);
  } finally {
    inputStopped = true;
    try {
      writeNow(wakeW, new Uint8Array([1]));
    } catch { /* already woken */ }
    await inputDone;
    await sendQueue;
    if (o.tty) Deno.removeSignalListener("SIGWINCH", sendSize);
    restoreRaw?.();
    try {
      conn.close();
    } catch { /* closed by the peer */ }
    await outputDone;
    closeFd(wakeR);
    closeFd(wakeW);
  }
}
