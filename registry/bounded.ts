/**
 * Reading a response body with a cap: what a registry sends is hostile input, and a body that
 * never ends must not grow the process's memory. The cap is enforced while reading, chunk by
 * chunk, never after buffering.
 *
 * @module
 */

/**
 * Reads `stream` to its end and returns its bytes, or `null` as soon as it has sent more than
 * `max` bytes (the stream is then cancelled and nothing more is read or kept).
 */
export async function readBounded(
  stream: ReadableStream<Uint8Array>,
  max: number,
): Promise<Uint8Array | null> {
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > max) {
        await reader.cancel("body over its size limit").catch(() => {});
        return null;
      }
      chunks.push(value);
    }
  } finally {
    reader.releaseLock();
  }
  const out = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.byteLength;
  }
  return out;
}
