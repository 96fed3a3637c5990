/**
 * The attach protocol's frames: docker's stdcopy header (stream byte, three zero bytes, big
 * endian u32 length) followed by the payload, with types beyond docker's for control messages
 * (window size, end of input, exit code, ready). Used by the supervisor's attach server
 * (attach.ts) and the clients (attach_client.ts).
 *
 * @module
 */
import type { WindowSize } from "../../ffi/terminal.ts";

/** Frame types. 0-2 are docker's stdcopy streams. */
export const FRAME = {
  /** Client to supervisor: bytes for the container's stdin (or pty). */
  stdin: 0,
  /** Supervisor to client: the container's stdout (all output with a pty). */
  stdout: 1,
  /** Supervisor to client: the container's stderr. */
  stderr: 2,
  /** Client to supervisor: the user's window size (rows, cols as big endian u16). */
  resize: 3,
  /** Client to supervisor: the user's input ended; close the container's stdin (`start -ai`). */
  closeStdin: 4,
  /** Supervisor to client: the container's process ended with this code (big endian i32). */
  exit: 5,
  /** Client to supervisor: attached, initial window size sent (a `start -a` start may go on). */
  ready: 6,
} as const;

/** One decoded frame. */
export interface Frame {
  readonly type: number;
  readonly payload: Uint8Array;
}

const HEADER = 8;
/** Larger frames are a protocol error (output is sent in reads of at most 64 KiB). */
const MAX_FRAME = 1 << 20;

/** Encodes one frame. */
export function encodeFrame(type: number, payload: Uint8Array = new Uint8Array(0)): Uint8Array {
  const out = new Uint8Array(HEADER + payload.length);
  out[0] = type;
  new DataView(out.buffer).setUint32(4, payload.length, false);
  out.set(payload, HEADER);
  return out;
}

/** A resize frame. */
export function resizeFrame(size: WindowSize): Uint8Array {
  const p = new Uint8Array(4);
  const v = new DataView(p.buffer);
  v.setUint16(0, size.rows, false);
  v.setUint16(2, size.cols, false);
  return encodeFrame(FRAME.resize, p);
}

/** An exit frame. */
export function exitFrame(code: number): Uint8Array {
  const p = new Uint8Array(4);
  new DataView(p.buffer).setInt32(0, code, false);
  return encodeFrame(FRAME.exit, p);
}

/** The window size a resize frame carries. */
export function decodeResize(payload: Uint8Array): WindowSize | undefined {
  if (payload.length !== 4) return undefined;
  const v = new DataView(payload.buffer, payload.byteOffset, 4);
  return { rows: v.getUint16(0, false), cols: v.getUint16(2, false) };
}

/** The code an exit frame carries. */
export function decodeExit(payload: Uint8Array): number | undefined {
  if (payload.length !== 4) return undefined;
  return new DataView(payload.buffer, payload.byteOffset, 4).getInt32(0, false);
}

/** A peer sent something that is not a frame. */
export class FrameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "FrameError";
  }
}

/** Splits a byte stream into frames, whatever the chunk boundaries. */
export class FrameDecoder {
  #buf = new Uint8Array(0);

  /** Adds `chunk` and returns every frame now complete. */
  push(chunk: Uint8Array): Frame[] {
    const joined = new Uint8Array(this.#buf.length + chunk.length);
    joined.set(this.#buf);
    joined.set(chunk, this.#buf.length);
    const frames: Frame[] = [];
    let off = 0;
    while (joined.length - off >= HEADER) {
      const len = new DataView(joined.buffer, off + 4, 4).getUint32(0, false);
      if (len > MAX_FRAME) throw new FrameError(`attach frame of ${len} bytes`);
      if (joined.length - off < HEADER + len) break;
      frames.push({ type: joined[off], payload: joined.slice(off + HEADER, off + HEADER + len) });
      off += HEADER + len;
    }
    this.#buf = joined.slice(off);
    return frames;
  }
}
