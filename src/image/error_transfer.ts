/**
 * Errors across a worker boundary with their class kept. Structured clone keeps only a plain
 * Error's message, but pull decides by class (DiskFullError stops the download at once) and by
 * fields (`code` of ENOSPC through the `cause` chain, a LayerError's `entry`), and tells the user
 * the message as the unpacker wrote it. So an error is sent as its class name, message, own
 * fields and cause, and made again on the other side with the same prototype, without running a
 * constructor (which would reword the message).
 *
 * @module
 */
import { SyscallError } from "../../ffi/errors.ts";
import { TsboxError } from "../errors.ts";
import { DigestMismatchError } from "../store/digest_format.ts";
import { DiskFullError } from "../store/space.ts";
import { TarFormatError } from "./tar.ts";
import { LayerError, UnsafeLayerError } from "./unpack.ts";

/** The classes kept; anything else comes back as the nearest built-in (or Error). */
const CLASSES: Record<string, { prototype: object }> = {
  UnsafeLayerError,
  LayerError,
  TarFormatError,
  DiskFullError,
  DigestMismatchError,
  SyscallError,
  TsboxError,
  TypeError,
  RangeError,
  Error,
};

/** An error as it crosses (structured-clonable). */
export interface SentError {
  readonly cls: string;
  readonly name: string;
  readonly message: string;
  readonly stack?: string;
  readonly fields: Record<string, unknown>;
  readonly cause?: SentError | { readonly value: unknown };
}

/** `err` for postMessage. */
export function sendError(err: unknown, depth = 0): SentError {
  if (!(err instanceof Error)) {
    return { cls: "Error", name: "Error", message: String(err), fields: {} };
  }
  const cls = Object.keys(CLASSES).find((k) => err instanceof (CLASSES[k] as typeof Error))!;
  const fields: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(err)) {
    if (k === "cause" || k === "message" || k === "name" || k === "stack") continue;
    try {
      fields[k] = structuredClone(v);
    } catch { /* not clonable: left out */ }
  }
  const cause = err.cause === undefined
    ? undefined
    : err.cause instanceof Error && depth < 8
    ? sendError(err.cause, depth + 1)
    : { value: String(err.cause) };
  return { cls, name: err.name, message: err.message, stack: err.stack, fields, cause };
}

/** The error {@link sendError} sent, as an instance of its class again. */
export function receiveError(sent: SentError): Error {
  const err = Object.create(CLASSES[sent.cls]?.prototype ?? Error.prototype) as Error;
  Object.assign(err, sent.fields);
  for (const [k, v] of [["message", sent.message], ["name", sent.name], ["stack", sent.stack]]) {
    Object.defineProperty(err, k as string, { value: v, writable: true, configurable: true });
  }
  if (sent.cause !== undefined) {
    const cause = "cls" in sent.cause ? receiveError(sent.cause) : sent.cause.value;
    Object.defineProperty(err, "cause", { value: cause, writable: true, configurable: true });
  }
  return err;
}
