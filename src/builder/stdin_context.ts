/**
 * What `docker build -` takes on stdin: a tar archive of the context (plain, gzip or zstd), or
 * a Dockerfile alone with an empty context. As docker, the first bytes decide: an archive's
 * magic number (or tar's `ustar` at byte 257) makes it a context, anything else is a
 * Dockerfile. A context archive is unpacked like a layer (every entry resolved inside the
 * target, nothing written outside it).
 *
 * @module
 */
import type { Compression } from "../../registry/manifest.ts";
import { TsboxError } from "../errors.ts";
import { decompressor } from "../image/decompress.ts";
import { unpackLayer } from "../image/unpack.ts";
import { isRootless } from "../runtime/rootless.ts";

/** stdin held a context archive that could not be read (names the cause). */
export class ContextArchiveError extends TsboxError {
  constructor(detail: string, options?: ErrorOptions) {
    super(`the build context on stdin: ${detail}`, options);
    this.name = "ContextArchiveError";
  }
}

/** What stdin held. */
export type StdinInput =
  | { readonly kind: "dockerfile"; readonly text: string }
  | { readonly kind: "archive"; readonly stream: ReadableStream<Uint8Array> };

/** The kind of archive the first bytes announce, or undefined for none. */
export function archiveKind(head: Uint8Array): Compression | "bzip2" | "xz" | undefined {
  const starts = (...bytes: number[]) => bytes.every((b, i) => head[i] === b);
  if (starts(0x1f, 0x8b)) return "gzip";
  if (starts(0x28, 0xb5, 0x2f, 0xfd)) return "zstd";
  if (starts(0x42, 0x5a, 0x68)) return "bzip2";
  if (starts(0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00)) return "xz";
  if (head.length >= 262 && new TextDecoder().decode(head.subarray(257, 262)) === "ustar") {
    return "none";
  }
  return undefined;
}

/**
 * Reads up to `n` bytes from the start of `stream`; returns them and a stream that yields
 * every byte of the original, those first.
 */
export async function peek(
  stream: ReadableStream<Uint8Array>,
  n: number,
): Promise<{ head: Uint8Array; stream: ReadableStream<Uint8Array> }> {
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  let done = false;
  while (size < n) {
    const r = await reader.read();
    if (r.done) {
      done = true;
      break;
    }
    chunks.push(r.value);
    size += r.value.length;
  }
  const head = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    head.set(c, at);
    at += c.length;
  }
  let first = true;
  const rest = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (first) {
        first = false;
        if (head.length > 0) controller.enqueue(head);
        if (done) controller.close();
        return;
      }
      const r = await reader.read();
      if (r.done) controller.close();
      else controller.enqueue(r.value);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
  return { head: head.subarray(0, Math.min(n, head.length)), stream: rest };
}

/** Tells a context archive from a Dockerfile on stdin (`build -`). */
export async function classifyStdin(stream: ReadableStream<Uint8Array>): Promise<StdinInput> {
  const { head, stream: all } = await peek(stream, 512);
  if (archiveKind(head) !== undefined) return { kind: "archive", stream: all };
  return { kind: "dockerfile", text: await new Response(all).text() };
}

/** Unpacks a context archive (plain tar, gzip or zstd) into `dir`, an empty directory. */
export async function unpackContextArchive(
  stream: ReadableStream<Uint8Array>,
  dir: string,
): Promise<void> {
  const { head, stream: all } = await peek(stream, 512);
  const kind = archiveKind(head);
  if (kind === "bzip2" || kind === "xz") {
    await all.cancel().catch(() => {});
    throw new ContextArchiveError(`${kind} archives are not supported; use a plain or gzip tar`);
  }
  if (kind === undefined) {
    await all.cancel().catch(() => {});
    throw new ContextArchiveError("not a tar archive");
  }
  try {
    await unpackLayer(all.pipeThrough(decompressor(kind)), dir, { rootless: isRootless() });
  } catch (err) {
    throw new ContextArchiveError((err as Error).message, { cause: err });
  }
}
