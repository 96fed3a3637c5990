/**
 * Layers and blobs published but not yet recorded. A pull or load publishes its layer
 * directories, short links and blobs first and records the image after; killed in between, it
 * would leave them in the store with no row naming them, so nothing would ever remove them.
 * Before publishing, it writes a *claim* `layers/.pub-<pid>-<start>-<hex>` listing what it is
 * about to publish, and removes the claim once the image is recorded. A claim whose owner
 * process is gone marks leftovers: {@link sweepDeadClaims} removes what it lists that no row
 * references, while no live process publishes (see publish_lock.ts), and then the claim.
 *
 * The claims sit in the `layers` directory that the store's sweep reads anyway, so finding
 * them costs nothing more on the start path of `run`.
 *
 * @module
 */
import { join } from "../path.ts";
import type { Database } from "./db.ts";
import { digestHex } from "./digest_format.ts";
import { removeTree } from "./layers.ts";
import { ownedTempPrefix } from "./owner.ts";
import { processAlive } from "../container/proc.ts";
import { whileNobodyPublishes } from "./publish_lock.ts";

/** Prefix of a claim's name. */
export const CLAIM_PREFIX = ".pub-";
/**
 * Characters of a link name: 64 bits of the diffID, so no layer can be made to collide with
 * another's, and 17 bytes per layer in overlay's one-page option string (200+ layers).
 */
const SHORT_ID_LENGTH = 16;
const CLAIM = /^\.pub-(\d+)-(\d+)-[0-9a-f]+$/;

/** What a claim lists. */
export interface ClaimContent {
  /** DiffIDs of layers (their short links are found by name: see {@link linkNames}). */
  readonly layers: readonly string[];
  /** Blob digests (layers, config, manifest). */
  readonly blobs: readonly string[];
}

/** A written claim: {@link Claim.release} it once the image is recorded. */
export interface Claim {
  /** The claim file. */
  readonly path: string;
  /** Removes the claim: what it listed is recorded now. */
  release(): Promise<void>;
}

/**
 * Writes a claim in `layersDir` for what this process is about to publish. Write it before the
 * first rename into place, release it after the record is written; on failure keep it (the
 * next command after this process's exit removes what stays unrecorded).
 */
export async function writeClaim(layersDir: string, content: ClaimContent): Promise<Claim> {
  const tag = ownedTempPrefix().slice(".tmp-".length, -1); // <pid>-<start>
  const hex = Array.from(
    crypto.getRandomValues(new Uint8Array(6)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
  const path = join(layersDir, `${CLAIM_PREFIX}${tag}-${hex}`);
  await Deno.mkdir(layersDir, { recursive: true, mode: 0o700 });
  // A claim cut short by a kill before it was whole preceded every publish: it lists nothing
  // that exists, and is removed as unreadable.
  await Deno.writeTextFile(path, JSON.stringify(content), { createNew: true, mode: 0o600 });
  return {
    path,
    release: async () => {
      await Deno.remove(path).catch((err) => {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
      });
    },
  };
}

/** Whether the claim `name` (a base name in the layers directory) belongs to a dead process. */
export function isDeadClaim(name: string): boolean {
  const m = CLAIM.exec(name);
  return m !== null && !processAlive(Number(m[1]), Number(m[2]));
}

/** Whether a blob is referenced by an image row or a build cache entry. */
export function blobReferenced(db: Database, digest: string): boolean {
  return db.get(
    `SELECT 1 AS x FROM images WHERE id = ?1 OR manifest_digest = ?1
     UNION ALL SELECT 1 FROM image_layers WHERE blob_digest = ?1
     UNION ALL SELECT 1 FROM build_cache WHERE instr(state, ?1) > 0
     LIMIT 1`,
    digest,
  ) !== undefined;
}

/**
 * Removes what the dead claims `names` (base names in `<root>/layers`) list and no row
 * references, then the claims; does nothing while any process publishes into the store.
 * Returns the paths removed (claims included).
 */
export async function sweepDeadClaims(
  root: string,
  db: Database,
  names: readonly string[],
): Promise<string[]> {
  if (names.length === 0) return [];
  return await whileNobodyPublishes(root, async () => {
    const removed: string[] = [];
    for (const name of names) removed.push(...await sweepClaim(root, db, name));
    return removed;
  }) ?? [];
}

async function sweepClaim(root: string, db: Database, name: string): Promise<string[]> {
  const layersDir = join(root, "layers");
  const path = join(layersDir, name);
  let content: ClaimContent | undefined;
  try {
    content = parseClaim(await Deno.readTextFile(path));
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return []; // another sweeper's
    if (!(err instanceof SyntaxError)) throw err;
  }
  const removed: string[] = [];
  for (const diffId of content?.layers ?? []) {
    const hex = digestHex(diffId);
    const recorded = db.get<{ short_id: string }>(
      "SELECT short_id FROM layers WHERE diff_id = ?",
      diffId,
    );
    // The claim's owner may have linked the layer under any name it could be given; the
    // recorded name stays, and so does a link of that name to another layer.
    for (const name of linkNames(hex)) {
      const link = join(root, "l", name);
      if (recorded?.short_id !== name && pointsAt(link, hex)) {
        await Deno.remove(link).catch(notFoundOk);
        removed.push(link);
      }
    }
    if (recorded) continue;
    // Renamed to a temp name of this process before the (long) removal: killed half-way, the
    // next sweep finishes it, and no half-removed tree is ever found under the layer's name.
    const dir = join(layersDir, hex);
    const claimed = join(layersDir, `${ownedTempPrefix()}unrecorded-${hex}`);
    try {
      await Deno.rename(dir, claimed);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) continue;
      throw err;
    }
    await removeTree(claimed);
    removed.push(dir);
  }
  for (const digest of content?.blobs ?? []) {
    if (blobReferenced(db, digest)) continue;
    const blob = join(root, "blobs", "sha256", digestHex(digest));
    try {
      await Deno.remove(blob);
      removed.push(blob);
    } catch (err) {
      notFoundOk(err);
    }
  }
  await Deno.remove(path).catch(notFoundOk);
  removed.push(path);
  return removed;
}

function parseClaim(text: string): ClaimContent {
  const raw = JSON.parse(text) as Partial<ClaimContent>;
  const digest = /^sha256:[0-9a-f]{64}$/;
  const layers = (Array.isArray(raw.layers) ? raw.layers : []).filter((l) =>
    typeof l === "string" && digest.test(l)
  );
  const blobs = (Array.isArray(raw.blobs) ? raw.blobs : []).filter((b) =>
    typeof b === "string" && digest.test(b)
  );
  return { layers, blobs };
}

/**
 * The names a link to the layer `hex` can have, in Store.shortIdFor's order of preference:
 * the 16-hex windows of its digest.
 */
export function linkNames(hex: string): string[] {
  const names: string[] = [];
  for (let at = 0; at + SHORT_ID_LENGTH <= hex.length; at += SHORT_ID_LENGTH) {
    names.push(hex.slice(at, at + SHORT_ID_LENGTH));
  }
  return names;
}

/** Whether `link` is a symlink to the layer directory named `hex`. */
function pointsAt(link: string, hex: string): boolean {
  try {
    const target = Deno.readLinkSync(link);
    return target.slice(target.lastIndexOf("/") + 1) === hex;
  } catch {
    return false;
  }
}

function notFoundOk(err: unknown): void {
  if (!(err instanceof Deno.errors.NotFound)) throw err;
}
