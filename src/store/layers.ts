/**
 * Unpacked layer directories under `<root>/layers/<hex of diffID>`, each shared by every image
 * that has the layer, and the short links `<root>/l/<shortId>` that keep overlay's lowerdir
 * option (one page at most) short enough for images of hundreds of layers.
 *
 * A layer directory appears under its final name only after its content was verified against
 * the diffID, so whatever is found there can be trusted.
 *
 * @module
 */
import { join } from "../path.ts";
import { digestHex } from "./digest_format.ts";

/** A layer being unpacked into a private temp dir: `publish()` or `discard()` it. */
export interface PendingLayer {
  /** The temp directory to unpack into. */
  readonly dir: string;
  /** Moves the verified directory into place (keeping an existing one) and links its short id. */
  publish(shortId: string): Promise<void>;
  /** Removes the temp dir (a no-op after publish). */
  discard(): Promise<void>;
}

/** The layer directories of a store. */
export class LayerStore {
  readonly #dir: string;
  /** Directory of the short links, the cwd for overlay mounts. */
  readonly linkDir: string;

  constructor(root: string) {
    this.#dir = join(root, "layers");
    this.linkDir = join(root, "l");
  }

  /** The directory of a layer (whether or not it exists). */
  dir(diffId: string): string {
    return join(this.#dir, digestHex(diffId));
  }

  /** Whether the layer directory exists. */
  async exists(diffId: string): Promise<boolean> {
    try {
      return (await Deno.lstat(this.dir(diffId))).isDirectory;
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return false;
      throw err;
    }
  }

  /** Creates a temp dir to unpack the layer `diffId` into. */
  async begin(diffId: string): Promise<PendingLayer> {
    const target = this.dir(diffId);
    await Deno.mkdir(this.#dir, { recursive: true, mode: 0o711 });
    await Deno.mkdir(this.linkDir, { recursive: true, mode: 0o711 });
    const temp = await Deno.makeTempDir({ dir: this.#dir, prefix: ".tmp-" });
    // The layer's root directory is the container's "/": 0755 like every distribution's root.
    await Deno.chmod(temp, 0o755);
    let published = false;
    return {
      dir: temp,
      publish: async (shortId: string) => {
        try {
          await Deno.rename(temp, target);
        } catch (err) {
          // Another pull published the same verified layer first: keep theirs.
          if (!(await this.exists(diffId))) throw err;
          await removeTree(temp);
        }
        published = true;
        await this.link(diffId, shortId);
      },
      discard: async () => {
        if (!published) await removeTree(temp);
      },
    };
  }

  /** (Re)creates the short link of a layer. */
  async link(diffId: string, shortId: string): Promise<void> {
    const link = join(this.linkDir, shortId);
    await Deno.remove(link).catch(() => {});
    await Deno.symlink(join("..", "layers", digestHex(diffId)), link);
  }

  /** Removes a layer's directory and its short link. */
  async remove(diffId: string, shortId: string): Promise<void> {
    await Deno.remove(join(this.linkDir, shortId)).catch(() => {});
    await removeTree(this.dir(diffId));
  }

  /** Removes temp dirs left by interrupted pulls. */
  async sweep(): Promise<void> {
    try {
      for await (const e of Deno.readDir(this.#dir)) {
        if (e.name.startsWith(".tmp-")) {
          const path = join(this.#dir, e.name);
          const age = Date.now() - ((await Deno.lstat(path)).mtime?.getTime() ?? 0);
          if (age > 24 * 3600_000) await removeTree(path);
        }
      }
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
  }
}

/** Removes a directory tree without following symlinks; a missing tree is fine. */
export async function removeTree(path: string): Promise<void> {
  try {
    await Deno.remove(path, { recursive: true });
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return;
    if (err instanceof Deno.errors.PermissionDenied) {
      // Directories a layer made unwritable (mode 0555) block removal of their entries.
      await makeWritable(path);
      await Deno.remove(path, { recursive: true });
      return;
    }
    throw err;
  }
}

async function makeWritable(path: string): Promise<void> {
  const info = await Deno.lstat(path);
  if (!info.isDirectory) return;
  await Deno.chmod(path, 0o700);
  for await (const e of Deno.readDir(path)) {
    if (e.isDirectory) await makeWritable(join(path, e.name));
  }
}
