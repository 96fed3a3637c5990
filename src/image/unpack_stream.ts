/**
 * One layer's uncompressed stream into its directory, as pull does it both on its own thread
 * and in a worker (unpack_worker.ts).
 *
 * @module
 */
import { unpackLayer } from "./unpack.ts";

/**
 * Unpacks a tar stream and then reads whatever the unpacker left after the end-of-archive
 * marker, so that the diffID is computed over the whole uncompressed blob. `reserve` is asked
 * before anything is written (see UnpackOptions.reserve).
 */
export async function unpackAll(
  tar: ReadableStream<Uint8Array>,
  dir: string,
  reserve: (bytes: number, inodes: number) => void,
): Promise<void> {
  const reader = tar.getReader();
  const view = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { done, value } = await reader.read();
      if (done) controller.close();
      else controller.enqueue(value);
    },
  });
  try {
    // Not root: no chown, no device nodes, and overlay's markers as `userxattr` reads them.
    await unpackLayer(view, dir, { rootless: Deno.uid() !== 0, reserve });
  } catch (err) {
    // Stop the download feeding us, which would otherwise wait for a reader forever.
    await reader.cancel(err).catch(() => {});
    throw err;
  }
  while (!(await reader.read()).done) { /* trailing padding */ }
}
