/**
 * `--cidfile F`: the container's id written to F at create, as docker does. F is claimed
 * (created exclusively) before the container exists, so two runs cannot share it, and removed
 * again when the create fails.
 *
 * @module
 */
import { TsboxError } from "../errors.ts";

/** A claimed id file. */
export interface CidFile {
  /** Writes the id; the file is complete once this resolves. */
  write(id: string): Promise<void>;
  /** Removes the file (the create failed). */
  remove(): Promise<void>;
}

/** Claims `path`; docker's message when it already exists. */
export async function claimCidFile(path: string): Promise<CidFile> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { write: true, createNew: true, mode: 0o644 });
  } catch (err) {
    if (err instanceof Deno.errors.AlreadyExists) {
      throw new TsboxError(
        `Container ID file found, make sure the other container isn't running or delete ${path}`,
      );
    }
    throw new TsboxError(
      `failed to create the container ID file: ${
        (err as Error).message.replace(/ \(os error \d+\).*$/, "")
      }: ${path}`,
    );
  }
  return {
    async write(id) {
      try {
        const bytes = new TextEncoder().encode(id);
        let off = 0;
        while (off < bytes.length) off += await file.write(bytes.subarray(off));
      } finally {
        file.close();
      }
    },
    async remove() {
      try {
        file.close();
      } catch { /* written and closed already */ }
      await Deno.remove(path).catch(() => {});
    },
  };
}
