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
import { ownedTempPrefix } from "./owner.ts";
import { holdPublishLock } from "./publish_lock.ts";

/** A layer being unpacked into a private temp dir: `publish()` or `discard()` it. */
export interface PendingLayer {
  /** The temp directory to unpack into. */
  readonly dir: string;
  /** Moves the verified directory into place (keeping an existing one) and links its short id. */
  publish(shortId: string): Promise<void>;
  /**
   * Removes the temp dir (nothing after publish) and lets go of the publish lock this writer
   * held (publish_lock.ts): call it always, after the record of what was published.
   */
  discard(): Promise<void>;
}

/** The layer directories of a store. */
export class LayerStore {
  readonly #dir: string;
  readonly #root: string;
  /** Directory of the short links, the cwd for overlay mounts. */
  readonly linkDir: string;

  constructor(root: string) {
    this.#root = root;
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

  /** The directory of the layer dirs, also where the store's other temp entries are made. */
  get tempDir(): string {
    return this.#dir;
  }

  /**
   * Creates a temp dir to unpack the layer `diffId` into, named after this process (see
   * owner.ts) so that the next tsbox removes it if this one is killed.
   */
  async begin(diffId: string): Promise<PendingLayer> {
    const target = this.dir(diffId);
    // Layers keep images' setuid files and device nodes: no other host user may reach them.
    await Deno.mkdir(this.#dir, { recursive: true, mode: 0o700 });
    await Deno.mkdir(this.linkDir, { recursive: true, mode: 0o700 });
    // publish() may keep an unrecorded layer dir it finds: no sweep removes one until discard().
    const release = await holdPublishLock(this.#root);
    let temp: string;
    try {
      temp = await Deno.makeTempDir({ dir: this.#dir, prefix: ownedTempPrefix() });
      // The layer's root directory is the container's "/": 0755 like every distribution's root.
      await Deno.chmod(temp, 0o755);
    } catch (err) {
      release();
      throw err;
    }
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
        try {
          if (!published) await removeTree(temp);
        } finally {
          release();
        }
      },
    };
  }

  /**
   * Makes the short link `l/<shortId>` point at a layer. The link is made under a temp name and
   * renamed over any existing one, so concurrent pulls publishing the same layer each succeed
   * and the link is never missing in between.
   */
  async link(diffId: string, shortId: string): Promise<void> {
    const link = join(this.linkDir, shortId);
    const target = join("..", "layers", digestHex(diffId));
    const temp = join(this.#dir, `${ownedTempPrefix()}link-${shortId}-${randomSuffix()}`);
    await Deno.mkdir(this.linkDir, { recursive: true, mode: 0o700 });
    await Deno.symlink(target, temp);
    try {
      await Deno.rename(temp, link);
    } catch (err) {
      await Deno.remove(temp).catch(() => {});
      throw err;
    }
  }

  /**
   * Removes the links in `l/` that point at one of the layers of `recorded` under another name
   * than its recorded short id: links of pulls that lost the race to record the layer, or that
   * were killed after publishing it. Once a layer is recorded its short id never changes, so
   * such links are used by nothing. `recorded` maps diffIDs to their recorded short ids.
   */
  dropStrayLinksSync(recorded: ReadonlyMap<string, string>): void {
    const keep = new Map<string, string>();
    for (const [diffId, shortId] of recorded) {
      keep.set(join("..", "layers", digestHex(diffId)), shortId);
    }
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(this.linkDir)];
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return;
      throw err;
    }
    for (const e of entries) {
      if (!e.isSymlink) continue;
      const link = join(this.linkDir, e.name);
      try {
        const shortId = keep.get(Deno.readLinkSync(link));
        if (shortId !== undefined && shortId !== e.name) Deno.removeSync(link);
      } catch (err) {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
      }
    }
  }

  /** Removes a layer's directory and its short link. */
  async remove(diffId: string, shortId: string): Promise<void> {
    await Deno.remove(join(this.linkDir, shortId)).catch(() => {});
    await removeTree(this.dir(diffId));
  }
}

function randomSuffix(): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(4)),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
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
