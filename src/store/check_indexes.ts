/**
 * `system check` of the image indexes a multi-platform build, load or tag recorded: an index
 * must name images the store has, and its name must be tagged to one of them (the variant
 * `run NAME` starts). tsbox writes an index, its tag and its images in one transaction and the
 * database cascades an image's removal to its index rows, so a break here means a database
 * changed behind tsbox's back (or a bug). Repair drops the broken index; the name's tag and the
 * images stay (the variants then show as dangling `<none>` images that `image prune` removes).
 *
 * @module
 */
import type { Database } from "./db.ts";

/** One image index that breaks the rules, with why. */
export interface BrokenIndex {
  /** The index's name (a full reference). */
  readonly name: string;
  /** What is wrong, in words. */
  readonly detail: string;
}

/** The broken image indexes of `db`, by name. */
export function brokenIndexes(db: Database): BrokenIndex[] {
  const broken = new Map<string, string>();
  for (
    const r of db.all<{ name: string; image_id: string }>(
      `SELECT x.name, x.image_id FROM image_indexes x
       WHERE NOT EXISTS (SELECT 1 FROM images i WHERE i.id = x.image_id) ORDER BY x.name`,
    )
  ) {
    broken.set(r.name, `names the image ${r.image_id}, which the store does not have`);
  }
  for (
    const r of db.all<{ name: string; tagged: string | null }>(
      `SELECT DISTINCT x.name, t.image_id AS tagged FROM image_indexes x
       LEFT JOIN tags t ON t.name = x.name
       WHERE t.image_id IS NULL OR NOT EXISTS
         (SELECT 1 FROM image_indexes y WHERE y.name = x.name AND y.image_id = t.image_id)
       ORDER BY x.name`,
    )
  ) {
    if (broken.has(r.name)) continue;
    broken.set(
      r.name,
      r.tagged === null
        ? "its name is tagged to no image"
        : `its name is tagged to ${r.tagged}, which is none of its platforms' images`,
    );
  }
  return [...broken].sort(([x], [y]) => x < y ? -1 : x > y ? 1 : 0)
    .map(([name, detail]) => ({ name, detail }));
}

/** Drops the index recorded under `name` (its tag and images stay). */
export function dropIndex(db: Database, name: string): void {
  db.run("DELETE FROM image_indexes WHERE name = ?", name);
}
