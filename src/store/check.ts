/**
 * `system check`: what the store holds on disk that its database does not know, and what the
 * database records that is gone from disk. Leftovers (layer directories, short links and blobs
 * no row references, layer rows nothing uses, container directories without a row, the spool
 * directories of older tsbox loads) can be removed; records whose files are gone are only reported (`pull` the image again, `rm` the
 * container).
 *
 * Layers, links and blobs are judged only while no tsbox process publishes into the store
 * (publish_lock.ts): a pull between its publish and its record holds exactly such unrecorded
 * things, and they are its own. Container directories need no lock: a container's row is
 * written before its directory is made and deleted only after the directory is gone.
 *
 * @module
 */
import { join } from "../path.ts";
import type { Database } from "./db.ts";
import { brokenIndexes, dropIndex } from "./check_indexes.ts";
import { removeTree } from "./layers.ts";
import { ownedTempPrefix } from "./owner.ts";
import { whileNobodyPublishes } from "./publish_lock.ts";

/** What kind of problem a {@link Finding} is. */
export type FindingKind =
  | "unrecorded layer"
  | "unused layer"
  | "missing layer"
  | "stray link"
  | "unreferenced blob"
  | "container without record"
  | "container without files"
  | "old temp dir"
  | "broken image index";

/** One problem found. */
export interface Finding {
  readonly kind: FindingKind;
  /** The file or directory concerned. */
  readonly path: string;
  /** What is wrong, in words. */
  readonly detail: string;
  /** Whether `repair` removes it (records of missing files stay). */
  readonly removable: boolean;
  /** Set once it was removed. */
  repaired?: boolean;
  /** Why it could not be removed. */
  error?: string;
}

/** What {@link checkStore} returns. */
export interface CheckReport {
  readonly findings: Finding[];
  /** Layers, links and blobs were not judged because a tsbox process publishes right now. */
  readonly busy: boolean;
}

/** Options of {@link checkStore}. */
export interface CheckOptions {
  /** Remove the leftovers found. */
  readonly repair?: boolean;
  /**
   * Removes a container's directory (unmounting what is mounted in it and removing its
   * cgroups first); given by the caller, so that the store does not load the runtime.
   */
  readonly removeContainerDir?: (id: string, dir: string) => Promise<void>;
}

const HEX64 = /^[0-9a-f]{64}$/;

/** Checks (and with `repair`, cleans) the store at `root` against its database `db`. */
export async function checkStore(
  root: string,
  db: Database,
  options: CheckOptions = {},
): Promise<CheckReport> {
  const findings: Finding[] = [];
  const judged = await whileNobodyPublishes(root, async () => {
    findings.push(...await checkLayersAndBlobs(root, db, options.repair ?? false));
    return true;
  });
  for (const b of brokenIndexes(db)) {
    findings.push(
      await fix(options.repair ?? false, {
        kind: "broken image index",
        path: join(root, "tsbox.db"),
        detail: `image index ${b.name}: ${b.detail}`,
        removable: true,
      }, () => Promise.resolve(dropIndex(db, b.name))),
    );
  }
  findings.push(...await checkContainers(root, db, options));
  findings.push(...await checkOldTemps(root, options.repair ?? false));
  return { findings, busy: judged === undefined };
}

/** How old a temp dir without an owner in its name must be to be surely abandoned. */
const UNOWNED_GRACE_MS = 24 * 3600_000;

/**
 * `<root>/tmp/load-*`: where tsbox's `load` spooled archives before its temp dirs named their
 * owner. Nothing says whether one is in use; one a day old is surely abandoned.
 */
async function checkOldTemps(root: string, repair: boolean): Promise<Finding[]> {
  const findings: Finding[] = [];
  const dir = join(root, "tmp");
  for (const e of entries(dir)) {
    if (!e.name.startsWith("load-")) continue;
    const path = join(dir, e.name);
    const mtime = (await Deno.lstat(path).catch(() => undefined))?.mtime?.getTime() ?? 0;
    const old = Date.now() - mtime > UNOWNED_GRACE_MS;
    findings.push(
      await fix(repair, {
        kind: "old temp dir",
        path,
        detail: old
          ? "an archive spooled by the load of an older tsbox, a day old or more"
          : "an archive spooled by the load of an older tsbox (kept while less than a day old)",
        removable: old,
      }, () => removeTree(path)),
    );
  }
  return findings;
}

/** Names in `dir`, with whether each is a symlink; none when `dir` does not exist. */
function entries(dir: string): Deno.DirEntry[] {
  try {
    return [...Deno.readDirSync(dir)];
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return [];
    throw err;
  }
}

/** What rows reference: layers (by diffID) and blobs (by digest). */
function references(db: Database): { layers: Set<string>; blobs: Set<string> } {
  const layers = new Set<string>();
  const blobs = new Set<string>();
  for (
    const r of db.all<{ id: string; m: string }>("SELECT id, manifest_digest AS m FROM images")
  ) {
    blobs.add(r.id).add(r.m);
  }
  for (
    const r of db.all<{ d: string; b: string }>(
      "SELECT diff_id AS d, blob_digest AS b FROM image_layers",
    )
  ) {
    layers.add(r.d);
    blobs.add(r.b);
  }
  // A build cache entry keeps its layers and their blobs for the next build.
  for (const r of db.all<{ state: string }>("SELECT state FROM build_cache")) {
    try {
      const state = JSON.parse(r.state) as { layers?: { diffId?: string; blobDigest?: string }[] };
      for (const l of state.layers ?? []) {
        if (l.diffId) layers.add(l.diffId);
        if (l.blobDigest) blobs.add(l.blobDigest);
      }
    } catch { /* a damaged entry keeps nothing */ }
  }
  // A container names its image's layers by short id: those stay while it exists.
  for (const r of db.all<{ config: string }>("SELECT config FROM containers")) {
    try {
      const config = JSON.parse(r.config) as { layers?: string[] };
      for (const shortId of config.layers ?? []) {
        const row = db.get<{ d: string }>(
          "SELECT diff_id AS d FROM layers WHERE short_id = ?",
          shortId,
        );
        if (row) layers.add(row.d);
      }
    } catch { /* a damaged row keeps nothing */ }
  }
  return { layers, blobs };
}

async function checkLayersAndBlobs(
  root: string,
  db: Database,
  repair: boolean,
): Promise<Finding[]> {
  const findings: Finding[] = [];
  const layersDir = join(root, "layers");
  const linkDir = join(root, "l");
  const blobDir = join(root, "blobs", "sha256");
  const recorded = new Map(
    db.all<{ d: string; s: string }>("SELECT diff_id AS d, short_id AS s FROM layers")
      .map((r) => [r.d.slice("sha256:".length), r.s]),
  );
  const refs = references(db);
  const onDisk = new Set(entries(layersDir).filter((e) => HEX64.test(e.name)).map((e) => e.name));

  for (const hex of onDisk) {
    const dir = join(layersDir, hex);
    if (!recorded.has(hex)) {
      findings.push(
        await fix(repair, {
          kind: "unrecorded layer",
          path: dir,
          detail: "a layer directory no database row records",
          removable: true,
        }, () => removeLayerDir(layersDir, hex)),
      );
    } else if (!refs.layers.has(`sha256:${hex}`)) {
      findings.push(
        await fix(repair, {
          kind: "unused layer",
          path: dir,
          detail: "recorded, but no image, build cache entry or container uses it",
          removable: true,
        }, async () => {
          db.run("DELETE FROM layers WHERE diff_id = ?", `sha256:${hex}`);
          recorded.delete(hex);
          await removeLayerDir(layersDir, hex);
        }),
      );
    }
  }
  for (const [hex, shortId] of recorded) {
    if (onDisk.has(hex)) continue;
    findings.push({
      kind: "missing layer",
      path: join(layersDir, hex),
      detail: `recorded (link ${shortId}) but its directory is gone: pull or load its image again`,
      removable: false,
    });
  }
  // After the layers: a link to a layer removed above is stray now.
  for (const e of entries(linkDir)) {
    const link = join(linkDir, e.name);
    let target: string;
    try {
      target = Deno.readLinkSync(link);
    } catch {
      continue; // not a link: not ours to judge
    }
    const hex = target.slice(target.lastIndexOf("/") + 1);
    // The target's form (relative or not) does not matter, as in Store.shortIdFor.
    if (recorded.get(hex) === e.name) continue;
    const why = !recorded.has(hex)
      ? `points at ${target}, which no row records`
      : `points at layer ${hex.slice(0, 12)}, which is recorded as ${recorded.get(hex)}`;
    findings.push(
      await fix(
        repair,
        { kind: "stray link", path: link, detail: why, removable: true },
        () => Deno.remove(link),
      ),
    );
  }
  for (const e of entries(blobDir)) {
    if (!HEX64.test(e.name) || refs.blobs.has(`sha256:${e.name}`)) continue;
    const path = join(blobDir, e.name);
    findings.push(
      await fix(repair, {
        kind: "unreferenced blob",
        path,
        detail: "no image, layer or build cache entry names it",
        removable: true,
      }, () => Deno.remove(path)),
    );
  }
  return findings;
}

/** Removes a layer directory, renamed to a temp name of this process first (see sweep.ts). */
async function removeLayerDir(layersDir: string, hex: string): Promise<void> {
  const claimed = join(layersDir, `${ownedTempPrefix()}check-${hex}`);
  await Deno.rename(join(layersDir, hex), claimed);
  await removeTree(claimed);
}

async function checkContainers(
  root: string,
  db: Database,
  options: CheckOptions,
): Promise<Finding[]> {
  const findings: Finding[] = [];
  const dir = join(root, "containers");
  const rows = new Set(db.all<{ id: string }>("SELECT id FROM containers").map((r) => r.id));
  const dirs = new Set(entries(dir).filter((e) => e.isDirectory).map((e) => e.name));
  for (const id of dirs) {
    if (rows.has(id) || !HEX64.test(id)) continue;
    const path = join(dir, id);
    const remove = options.removeContainerDir;
    findings.push(
      await fix(options.repair === true && remove !== undefined, {
        kind: "container without record",
        path,
        detail: "a container directory no database row records",
        removable: remove !== undefined,
      }, () => remove!(id, path)),
    );
  }
  for (const id of rows) {
    if (dirs.has(id)) continue;
    findings.push({
      kind: "container without files",
      path: join(dir, id),
      detail: `container ${id.slice(0, 12)} is recorded but its directory is gone: rm it`,
      removable: false,
    });
  }
  return findings;
}

/** Runs `remove` for `finding` when repairing, recording the outcome. */
async function fix(
  repair: boolean,
  finding: Finding,
  remove: () => Promise<void>,
): Promise<Finding> {
  if (!repair || !finding.removable) return finding;
  try {
    await remove();
    finding.repaired = true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) finding.repaired = true;
    else finding.error = (err as Error).message;
  }
  return finding;
}
