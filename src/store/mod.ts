/**
 * The local image store under one root directory: blobs, unpacked layers and the state
 * database that records images, tags and digests.
 *
 * @module
 */
import { join } from "../path.ts";
import type { ImageConfig } from "../../registry/manifest.ts";
import { parseReference } from "../../registry/reference.ts";
import { TsboxError } from "../errors.ts";
import { BlobStore } from "./blobs.ts";
import { Database } from "./db.ts";
import { digestHex } from "./digest_format.ts";
import { LayerStore } from "./layers.ts";
import { sweepAbandoned } from "./sweep.ts";
import { linkNames } from "./unrecorded.ts";

export { BlobStore } from "./blobs.ts";
export { LayerStore } from "./layers.ts";
export { DigestMismatchError, InvalidDigestError } from "./digest_format.ts";
export { DatabaseDamagedError, DatabaseError } from "./db.ts";
export { registerSweeper, type Sweeper } from "./sweep.ts";

/** One layer of an image as the store keeps it. */
export interface LayerRecord {
  /** sha256 of the uncompressed tar. */
  readonly diffId: string;
  /** Name of its link under {@link Store.linkDir}. */
  readonly shortId: string;
  /** Absolute path of the unpacked directory. */
  readonly dir: string;
  /** Uncompressed size in bytes. */
  readonly size: number;
  /** The compressed blob the manifest names. */
  readonly blobDigest: string;
  /** The blob's media type (gives its compression). */
  readonly mediaType: string;
  /** The blob's size in bytes. */
  readonly blobSize: number;
}

/** An image in the store. */
export interface ImageRecord {
  /** `sha256:<hex>` of the config blob: docker's image id. */
  readonly id: string;
  /** Full references tagging it, e.g. `docker.io/library/busybox:latest`. */
  readonly tags: readonly string[];
  /** `repository@digest` of the manifests or indexes it was pulled by. */
  readonly digests: readonly string[];
  /** The parsed image config. */
  readonly config: ImageConfig;
  /** The config JSON as stored (its sha256 is the id). */
  readonly configJson: string;
  /** The platform-specific manifest's digest and media type. */
  readonly manifestDigest: string;
  readonly manifestMediaType: string;
  /** Layers, bottom first. */
  readonly layers: readonly LayerRecord[];
  /** Sum of the uncompressed layer sizes. */
  readonly size: number;
  /** config.created, if any. */
  readonly created?: string;
}

/** One platform's image of an image index a multi-platform build recorded. */
export interface IndexEntry {
  /** `os/architecture[/variant]`. */
  readonly platform: string;
  readonly imageId: string;
}

/** What {@link Store.addImage} needs to record a verified, unpacked image. */
export interface NewImage {
  readonly id: string;
  readonly configJson: string;
  readonly manifestDigest: string;
  readonly manifestMediaType: string;
  readonly layers: readonly Omit<LayerRecord, "dir">[];
  /** A full reference to tag it with (`docker.io/library/busybox:latest`), if any. */
  readonly tag?: string;
  /** `repository` + `digest` it was pulled by, if any. */
  readonly repoDigest?: { repository: string; digest: string };
}

interface ImageRow {
  id: string;
  config: string;
  manifest_digest: string;
  manifest_media_type: string;
  created: string | null;
}

interface LayerRow {
  diff_id: string;
  short_id: string;
  size: number;
  blob_digest: string;
  media_type: string;
  blob_size: number;
}

const ID_PREFIX = /^(sha256:)?[a-f0-9]{1,64}$/;

/** See {@link Store.addOpenHook}. */
const openHooks: ((store: Store) => Promise<void>)[] = [];
/** The stores of this process that are open, for hooks registered after they were opened. */
const openStores = new Set<Store>();

/** The store under one root. Open with {@link Store.open}. */
export class Store {
  /** Blob files. */
  readonly blobs: BlobStore;
  /** Unpacked layer directories. */
  readonly layers: LayerStore;
  /** Directory holding short symlinks `l/<shortId>` -> layer dirs (overlay's cwd). */
  readonly linkDir: string;

  private constructor(readonly root: string, readonly db: Database) {
    this.blobs = new BlobStore(root);
    this.layers = new LayerStore(root);
    this.linkDir = this.layers.linkDir;
  }

  /**
   * Registers work that every store gets before use: a store opened later before it is
   * returned, one open now at once (a module loaded after the store was opened awaits this at
   * its top level). For a module that needs something prepared for a synchronous path
   * (container/network_release.ts).
   */
  static async addOpenHook(hook: (store: Store) => Promise<void>): Promise<void> {
    openHooks.push(hook);
    for (const store of openStores) await hook(store);
  }

  /**
   * Opens the store at `root`, creating it if needed (0700: it is root's alone, or the
   * rootless user's), tightens a store an older tsbox left open to other users, and removes
   * what killed tsbox processes left behind ({@link Store.sweepAbandoned}) unless `sweep` is
   * false (for a process whose starting command has just swept, like a supervisor). Throws
   * DatabaseDamagedError for a database file that is not a whole database.
   */
  static async open(
    root: string,
    options: { sweep?: boolean; warn?: (message: string) => void } = {},
  ): Promise<Store> {
    try {
      await Deno.mkdir(root, { recursive: true, mode: 0o700 });
    } catch (err) {
      // Typically a plain user's default root under a HOME that is missing or read-only.
      const why = err instanceof Deno.errors.PermissionDenied
        ? "permission denied"
        : (err as Error).message;
      throw new TsboxError(
        `cannot create the state directory ${root}: ${why} (choose one with --root DIR or TSBOX_ROOT)`,
        { cause: err },
      );
    }
    await tightenRoot(root);
    const layers = new LayerStore(root);
    const store = new Store(
      root,
      Database.open(join(root, "tsbox.db"), {
        tempDir: layers.tempDir,
      }),
    );
    try {
      // Overlay mounts run with the link dir as cwd, also a build's first step FROM scratch,
      // which has no layer yet: the dir exists from the start.
      await Deno.mkdir(store.linkDir, { recursive: true, mode: 0o700 });
    } catch (err) {
      store.close();
      throw err;
    }
    if (options.sweep !== false) {
      try {
        await store.sweepAbandoned();
      } catch (err) {
        // Leftovers cost space, not correctness: say so and go on with the command.
        options.warn?.(
          `WARN: removing abandoned temp files under ${root}: ${(err as Error).message}`,
        );
      }
    }
    for (const hook of openHooks) {
      try {
        await hook(store);
      } catch (err) {
        store.close();
        throw err;
      }
    }
    openStores.add(store);
    return store;
  }

  /**
   * Removes temp files and directories whose owner process is gone (killed pulls, loads,
   * builds) and whatever registered sweepers clean (see sweep.ts). Returns the paths removed.
   */
  sweepAbandoned(): Promise<string[]> {
    return sweepAbandoned(this.root, this.db);
  }

  /** Closes the database. */
  close(): void {
    openStores.delete(this);
    this.db.close();
  }

  /** Whether a layer is recorded and its directory exists. */
  async hasLayer(diffId: string): Promise<boolean> {
    const row = this.db.get("SELECT 1 AS x FROM layers WHERE diff_id = ?", diffId);
    return row !== undefined && await this.layers.exists(diffId);
  }

  /** The short id recorded for a layer, if any. */
  layerShortId(diffId: string): string | undefined {
    return this.db.get<{ short_id: string }>(
      "SELECT short_id FROM layers WHERE diff_id = ?",
      diffId,
    )?.short_id;
  }

  /**
   * The name of a layer's link under {@link linkDir}: the recorded one, else the first 16-hex
   * window of the diffID that no other layer holds (recorded, or linked but not yet recorded).
   * The one place that names links: it gives the same answer for a layer on every call until the
   * layer is recorded, so the link a pull, load or build creates is the one its record names,
   * and a layer removed and added again gets its old name back. Taken names are skipped rather
   * than shared, so a hostile layer whose diffID starts like another's cannot take over its link.
   */
  shortIdFor(diffId: string): string {
    const recorded = this.layerShortId(diffId);
    if (recorded) return recorded;
    const hex = digestHex(diffId);
    for (const candidate of linkNames(hex)) {
      if (this.#shortIdFree(candidate, hex)) return candidate;
    }
    throw new TsboxError(
      `no free link name for layer ${diffId}: every window of its digest is taken in ${this.linkDir}`,
    );
  }

  /** Whether `shortId` is unused, or already names the layer `hex` (its record or its link). */
  #shortIdFree(shortId: string, hex: string): boolean {
    const owner = this.db.get<{ diff_id: string }>(
      "SELECT diff_id FROM layers WHERE short_id = ?",
      shortId,
    );
    if (owner) return digestHex(owner.diff_id) === hex;
    try {
      // Layer dirs are named by their hex, whatever form (relative or not) the link takes.
      const target = Deno.readLinkSync(join(this.linkDir, shortId));
      return target.slice(target.lastIndexOf("/") + 1) === hex;
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return true;
      throw err;
    }
  }

  /** Records an image whose layers are all published, with its tag and digest, in one transaction. */
  addImage(image: NewImage): ImageRecord {
    this.db.transaction(() => {
      const config = JSON.parse(image.configJson) as ImageConfig;
      this.db.run(
        `INSERT INTO images (id, config, manifest_digest, manifest_media_type, created, added_at)
         VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET manifest_digest = excluded.manifest_digest,
           manifest_media_type = excluded.manifest_media_type`,
        image.id,
        image.configJson,
        image.manifestDigest,
        image.manifestMediaType,
        config.created ?? null,
        Date.now(),
      );
      this.db.run("DELETE FROM image_layers WHERE image_id = ?", image.id);
      image.layers.forEach((l, i) => {
        // A concurrent pull may have recorded the layer already: its row and link stay valid.
        this.db.run(
          "INSERT OR IGNORE INTO layers (diff_id, short_id, size) VALUES (?, ?, ?)",
          l.diffId,
          l.shortId,
          l.size,
        );
        this.db.run(
          `INSERT INTO image_layers (image_id, position, diff_id, blob_digest, media_type, blob_size)
           VALUES (?, ?, ?, ?, ?, ?)`,
          image.id,
          i,
          l.diffId,
          l.blobDigest,
          l.mediaType,
          l.blobSize,
        );
      });
      if (image.tag) this.#setTag(image.tag, image.id);
      if (image.repoDigest) {
        this.db.run(
          `INSERT OR REPLACE INTO repo_digests (repository, digest, image_id) VALUES (?, ?, ?)`,
          image.repoDigest.repository,
          image.repoDigest.digest,
          image.id,
        );
      }
    });
    const record = this.getImage(image.id)!;
    // Links to these layers under other names than the recorded ones (a concurrent pull that
    // recorded a layer first, a killed one that had published it) would stay for ever.
    this.layers.dropStrayLinksSync(new Map(record.layers.map((l) => [l.diffId, l.shortId])));
    return record;
  }

  #setTag(name: string, imageId: string): void {
    // A tag that moves is no longer the index a multi-platform build recorded under it.
    this.db.run("DELETE FROM image_indexes WHERE name = ?", name);
    this.db.run(
      "INSERT INTO tags (name, image_id) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET image_id = excluded.image_id",
      name,
      imageId,
    );
  }

  /** Points the full reference `name` at an image. */
  tag(imageId: string, name: string): void {
    this.db.transaction(() => this.#setTag(name, imageId));
  }

  /** Removes one tag (and the image index recorded under it); returns whether it existed. */
  untag(name: string): boolean {
    return this.db.transaction(() => {
      this.db.run("DELETE FROM image_indexes WHERE name = ?", name);
      return this.db.run("DELETE FROM tags WHERE name = ?", name).changes > 0;
    });
  }

  /**
   * Records `name` as an image index of `entries` (one image per platform, in index order) and
   * tags `name` to the image `tagged` (one of them: the host's, which `run NAME` starts).
   */
  setIndex(name: string, entries: readonly IndexEntry[], tagged: string): void {
    this.db.transaction(() => {
      this.#setTag(name, tagged);
      entries.forEach((e, i) =>
        this.db.run(
          "INSERT INTO image_indexes (name, platform, position, image_id) VALUES (?, ?, ?, ?)",
          name,
          e.platform,
          i,
          e.imageId,
        )
      );
    });
  }

  /** The image index recorded under the full reference `name`, in order; empty if none. */
  indexOf(name: string): IndexEntry[] {
    return this.db.all<{ platform: string; image_id: string }>(
      "SELECT platform, image_id FROM image_indexes WHERE name = ? ORDER BY position",
      name,
    ).map((r) => ({ platform: r.platform, imageId: r.image_id }));
  }

  /** Whether an image index lists the image (so it is not dangling without a tag). */
  inIndex(imageId: string): boolean {
    return this.db.get("SELECT 1 AS x FROM image_indexes WHERE image_id = ?", imageId) !==
      undefined;
  }

  /**
   * The images that share an image index with `imageId` (itself included when it is in one):
   * every variant of every index listing it, and the image each index's name is tagged to.
   * Removal treats them as one unit (image/prune.ts), so that no index loses a platform
   * while its name or another variant stays.
   */
  indexGroup(imageId: string): string[] {
    return this.db.all<{ id: string }>(
      `SELECT image_id AS id FROM image_indexes WHERE name IN
         (SELECT name FROM image_indexes WHERE image_id = ?1)
       UNION
       SELECT image_id AS id FROM tags WHERE name IN
         (SELECT name FROM image_indexes WHERE image_id = ?1)
       ORDER BY id`,
      imageId,
    ).map((r) => r.id);
  }

  /** The names of the image indexes that list the image. */
  indexesOf(imageId: string): string[] {
    return this.db.all<{ name: string }>(
      "SELECT DISTINCT name FROM image_indexes WHERE image_id = ? ORDER BY name",
      imageId,
    ).map((r) => r.name);
  }

  /** The image a repository digest was pulled by, if the store has it. */
  imageByRepoDigest(repository: string, digest: string): ImageRecord | undefined {
    const row = this.db.get<{ image_id: string }>(
      "SELECT image_id FROM repo_digests WHERE repository = ? AND digest = ?",
      repository,
      digest,
    );
    return row ? this.getImage(row.image_id) : undefined;
  }

  /** An image by full id. */
  getImage(id: string): ImageRecord | undefined {
    const row = this.db.get<ImageRow>(
      "SELECT id, config, manifest_digest, manifest_media_type, created FROM images WHERE id = ?",
      id,
    );
    return row ? this.#record(row) : undefined;
  }

  /**
   * An image by name (`busybox`, `host:5000/app:tag`, `app@sha256:...`), full id `sha256:...`,
   * or unique id prefix, looked up in docker's order: reference first, then id.
   */
  findImage(nameOrId: string): ImageRecord | undefined {
    let ref;
    try {
      ref = parseReference(nameOrId);
    } catch {
      ref = undefined;
    }
    if (ref) {
      if (ref.digest) {
        const byDigest = this.imageByRepoDigest(ref.repository, ref.digest);
        if (byDigest) return byDigest;
      } else {
        const row = this.db.get<{ image_id: string }>(
          "SELECT image_id FROM tags WHERE name = ?",
          ref.toString(),
        );
        if (row) return this.getImage(row.image_id);
      }
    }
    if (ID_PREFIX.test(nameOrId)) {
      const hex = nameOrId.replace(/^sha256:/, "");
      const rows = this.db.all<{ id: string }>(
        "SELECT id FROM images WHERE id >= ? AND id < ? LIMIT 2",
        `sha256:${hex}`,
        `sha256:${hex}g`,
      );
      if (rows.length === 1) return this.getImage(rows[0].id);
    }
    return undefined;
  }

  /** Every image, newest first. */
  listImages(): ImageRecord[] {
    return this.db.all<ImageRow>(
      "SELECT id, config, manifest_digest, manifest_media_type, created FROM images ORDER BY added_at DESC",
    ).map((row) => this.#record(row));
  }

  /**
   * Deletes an image record and returns the layers and blobs no other image uses any more, for
   * the caller to remove from disk.
   */
  deleteImage(id: string): { layers: { diffId: string; shortId: string }[]; blobs: string[] } {
    return this.db.transaction(() => {
      const mine = this.db.all<LayerRow>(
        `SELECT il.diff_id, l.short_id, l.size, il.blob_digest, il.media_type, il.blob_size
         FROM image_layers il JOIN layers l ON l.diff_id = il.diff_id WHERE il.image_id = ?`,
        id,
      );
      const manifest = this.db.get<{ d: string }>(
        "SELECT manifest_digest AS d FROM images WHERE id = ?",
        id,
      );
      const blobs = new Set<string>([id, ...(manifest ? [manifest.d] : [])]);
      this.db.run(
        "DELETE FROM image_indexes WHERE name IN (SELECT name FROM tags WHERE image_id = ?)",
        id,
      );
      this.db.run("DELETE FROM tags WHERE image_id = ?", id);
      this.db.run("DELETE FROM images WHERE id = ?", id);
      const layers: { diffId: string; shortId: string }[] = [];
      for (const l of mine) {
        const used = this.db.get("SELECT 1 AS x FROM image_layers WHERE diff_id = ?", l.diff_id);
        if (!used && !layers.some((x) => x.diffId === l.diff_id)) {
          this.db.run("DELETE FROM layers WHERE diff_id = ?", l.diff_id);
          layers.push({ diffId: l.diff_id, shortId: l.short_id });
        }
        const blobUsed = this.db.get(
          "SELECT 1 AS x FROM image_layers WHERE blob_digest = ?",
          l.blob_digest,
        );
        if (!blobUsed) blobs.add(l.blob_digest);
      }
      return { layers, blobs: [...blobs] };
    });
  }

  /** Tags of an image (full references). */
  tagsOf(id: string): string[] {
    return this.db.all<{ name: string }>(
      "SELECT name FROM tags WHERE image_id = ? ORDER BY name",
      id,
    ).map((r) => r.name);
  }

  #record(row: ImageRow): ImageRecord {
    const layers = this.db.all<LayerRow>(
      `SELECT il.diff_id, l.short_id, l.size, il.blob_digest, il.media_type, il.blob_size
       FROM image_layers il JOIN layers l ON l.diff_id = il.diff_id
       WHERE il.image_id = ? ORDER BY il.position`,
      row.id,
    ).map((l): LayerRecord => ({
      diffId: l.diff_id,
      shortId: l.short_id,
      dir: this.layers.dir(l.diff_id),
      size: l.size,
      blobDigest: l.blob_digest,
      mediaType: l.media_type,
      blobSize: l.blob_size,
    }));
    const digests = this.db.all<{ repository: string; digest: string }>(
      "SELECT repository, digest FROM repo_digests WHERE image_id = ? ORDER BY repository",
      row.id,
    ).map((d) => `${d.repository}@${d.digest}`);
    return {
      id: row.id,
      tags: this.tagsOf(row.id),
      digests,
      config: JSON.parse(row.config) as ImageConfig,
      configJson: row.config,
      manifestDigest: row.manifest_digest,
      manifestMediaType: row.manifest_media_type,
      layers,
      size: layers.reduce((sum, l) => sum + l.size, 0),
      created: row.created ?? undefined,
    };
  }
}

/**
 * Gives an existing store the modes a new one gets: an older tsbox made the root and its
 * `layers`, `l` and `blobs` dirs 0711, which let any host user run a setuid file of a layer.
 * Only the owner's own store is changed; a 0700 root (the usual case) costs one stat.
 */
async function tightenRoot(root: string): Promise<void> {
  const info = await Deno.stat(root);
  if (((info.mode ?? 0) & 0o077) === 0 || info.uid !== Deno.uid()) return;
  for (const dir of ["layers", "l", "blobs", join("blobs", "sha256"), "containers"]) {
    try {
      const sub = await Deno.lstat(join(root, dir));
      if (sub.isDirectory && ((sub.mode ?? 0) & 0o077) !== 0) {
        await Deno.chmod(join(root, dir), 0o700);
      }
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
  }
  await Deno.chmod(root, 0o700);
}
