/**
 * What `system df`, `system prune`, `image prune` and `builder prune` do, loaded only when one
 * of them runs. Output, prompts and figures follow docker's (sizes with docker's
 * `units.HumanSize`, 4 significant digits).
 *
 * @module
 */
import type { Store } from "../store/mod.ts";
import { waitForQuietStore } from "../store/activity.ts";
import { whileNobodyPublishes } from "../store/publish_lock.ts";
import { TsboxError } from "../errors.ts";
import { containerUsingImage } from "../container/state.ts";
import { familiar, type RemoveAction } from "../image/images.ts";
import { pruneImages } from "../image/prune.ts";
import { pruneBuildCache } from "../builder/cache_prune.ts";
import { diskUsageReport, type UsageSummary } from "../housekeeping/df.ts";
import { systemPrune } from "../housekeeping/system_prune.ts";
import { parseReference } from "../../registry/reference.ts";
import { ago, humanSize, table } from "./format.ts";
import type { GlobalOptions } from "./globals.ts";
import { confirm } from "./volume_actions.ts";
import { commandText, statusText } from "./container_actions.ts";
import { withStore } from "./with_store.ts";
import { isDefaultTable, printList } from "./formats.ts";
import { GO_TYPE, type Row } from "./template/values.ts";

const size = (bytes: number) => humanSize(bytes, 4);

/** docker's tabwriter gives every column but the last at least 10 characters with its gap. */
function dockerTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const pad = (cells: readonly string[]) =>
    cells.map((c, i) => (i < cells.length - 1 ? c.padEnd(7) : c));
  return table(pad(header), rows.map(pad));
}

/**
 * Opens the store once no pull, load or build runs in it (they may need what a prune frees), and
 * prunes holding the publish lock exclusive, so that no pull publishes or records meanwhile (a
 * pull of layers the store already has leaves no temp file for the first look to see).
 */
function whenQuiet<T>(g: GlobalOptions, fn: (store: Store) => Promise<T>): Promise<T> {
  return withStore(g, async (store) => {
    const deadline = Date.now() + 60_000;
    for (;;) {
      await waitForQuietStore(store.root, {
        onWait: (what) => console.error(`waiting for ${what.join(", ")} to finish`),
      });
      const done = await whileNobodyPublishes(store.root, async () => ({ value: await fn(store) }));
      if (done) return done.value;
      if (Date.now() > deadline) {
        throw new TsboxError(
          `${store.root}: another tsbox process keeps publishing into the store`,
        );
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  });
}

/** docker's "Deleted Images:" block, or "" when nothing was removed. */
function imagesBlock(actions: readonly RemoveAction[]): string {
  if (actions.length === 0) return "";
  const lines = actions.map((a) =>
    "untagged" in a ? `untagged: ${a.untagged}` : `deleted: ${a.deleted}`
  );
  return `Deleted Images:\n${lines.join("\n")}\n`;
}

function block(title: string, items: readonly string[]): string {
  return items.length === 0 ? "" : `${title}\n${items.join("\n")}\n`;
}

/** Prints the non-empty blocks (each followed by a blank line, as docker) and the total. */
function printReport(blocks: readonly string[], bytes: number): void {
  for (const b of blocks) if (b !== "") console.log(b);
  console.log(`Total reclaimed space: ${size(bytes)}`);
}

/** `image prune [-a] [-f]`; returns the exit code (1 when the prompt was declined). */
export async function imagePruneCommand(
  g: GlobalOptions,
  opts: { all?: boolean; force?: boolean },
): Promise<number> {
  if (!opts.force) {
    const warning = opts.all
      ? "WARNING! This will remove all images without at least one container associated to them."
      : "WARNING! This will remove all dangling images.";
    if (!await confirm(`${warning}\nAre you sure you want to continue?`)) return 1;
  }
  return await whenQuiet(g, async (store) => {
    const report = await pruneImages(store, {
      all: opts.all,
      inUse: (id) => containerUsingImage(store, id),
    });
    printReport([imagesBlock(report.actions)], report.bytes);
    return 0;
  });
}

/** `builder prune [-a] [-f]`. */
export async function builderPruneCommand(
  g: GlobalOptions,
  opts: { all?: boolean; force?: boolean },
): Promise<number> {
  if (!opts.force) {
    const what = opts.all ? "all build cache" : "all dangling build cache";
    if (!await confirm(`WARNING! This will remove ${what}. Are you sure you want to continue?`)) {
      return 1;
    }
  }
  return await whenQuiet(g, async (store) => {
    const report = await pruneBuildCache(store, { all: opts.all });
    printReport([block("Deleted build cache objects:", report.removed)], report.bytes);
    return 0;
  });
}

/** docker's `system prune` warning for the options given. */
export function systemPruneWarning(opts: { all?: boolean; volumes?: boolean }): string {
  const items = [
    "all stopped containers",
    ...(opts.volumes ? ["all anonymous volumes not used by at least one container"] : []),
    opts.all
      ? "all images without at least one container associated to them"
      : "all dangling images",
    opts.all ? "all build cache" : "unused build cache",
  ];
  return `WARNING! This will remove:\n${items.map((i) => `  - ${i}\n`).join("")}\n` +
    "Are you sure you want to continue?";
}

/** `system prune [-a] [--volumes] [-f]`. */
export async function systemPruneCommand(
  g: GlobalOptions,
  opts: { all?: boolean; volumes?: boolean; force?: boolean },
): Promise<number> {
  if (!opts.force && !await confirm(systemPruneWarning(opts))) return 1;
  return await whenQuiet(g, async (store) => {
    const r = await systemPrune(store, { all: opts.all, volumes: opts.volumes });
    printReport([
      block("Deleted Containers:", r.containers.removed),
      block("Deleted Volumes:", r.volumes?.removed ?? []),
      imagesBlock(r.images.actions),
      block("Deleted build cache objects:", r.buildCache.removed),
    ], r.bytes);
    return 0;
  });
}

function reclaimable(s: UsageSummary, percent: boolean): string {
  if (!percent || s.size <= 0) return size(s.reclaimable);
  return `${size(s.reclaimable)} (${Math.floor((s.reclaimable * 100) / s.size)}%)`;
}

/** docker's header for each field of a `system df` row. */
const DF_HEADERS: Record<string, string> = {
  Type: "TYPE",
  TotalCount: "TOTAL",
  Active: "ACTIVE",
  Size: "SIZE",
  Reclaimable: "RECLAIMABLE",
};

/** `system df [-v] [--format F]`. */
export async function systemDfCommand(
  g: GlobalOptions,
  opts: { verbose?: boolean; format?: string },
) {
  await withStore(g, async (store) => {
    const r = diskUsageReport(store);
    if (!opts.verbose && !isDefaultTable(opts.format)) {
      // docker's summary rows (formatter.diskUsage*Context), one per kind.
      const kinds: [string, UsageSummary, boolean][] = [
        ["Images", r.summary.images, true],
        ["Containers", r.summary.containers, true],
        ["Local Volumes", r.summary.volumes, true],
        ["Build Cache", r.summary.buildCache, false],
      ];
      const rows = kinds.map(([type, s, percent]): Row => ({
        [GO_TYPE]: "*formatter.diskUsageContext",
        Type: () => type,
        TotalCount: () => String(s.total),
        Active: () => String(s.active),
        Size: () => size(s.size),
        Reclaimable: () => reclaimable(s, percent),
      }));
      await printList(opts.format!, rows, DF_HEADERS);
      return;
    }
    if (!opts.verbose) {
      const row = (type: string, s: UsageSummary, percent: boolean) => [
        type,
        String(s.total),
        String(s.active),
        size(s.size),
        reclaimable(s, percent),
      ];
      console.log(dockerTable(["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"], [
        row("Images", r.summary.images, true),
        row("Containers", r.summary.containers, true),
        row("Local Volumes", r.summary.volumes, true),
        row("Build Cache", r.summary.buildCache, false),
      ]));
      return;
    }
    const imageRows: string[][] = [];
    for (const u of r.images) {
      const cells = [
        u.image.id.slice(7, 19),
        ago(u.image.created),
        humanSize(u.size),
        humanSize(u.sharedSize),
        humanSize(u.size - u.sharedSize),
        String(u.containers),
      ];
      if (u.image.tags.length === 0) imageRows.push(["<none>", "<none>", ...cells]);
      for (const t of u.image.tags) {
        imageRows.push([
          familiar(t).replace(/:[^:/]*$/, ""),
          parseReference(t).tag ?? "<none>",
          ...cells,
        ]);
      }
    }
    console.log("Images space usage:\n");
    console.log(dockerTable([
      "REPOSITORY",
      "TAG",
      "IMAGE ID",
      "CREATED",
      "SIZE",
      "SHARED SIZE",
      "UNIQUE SIZE",
      "CONTAINERS",
    ], imageRows));
    console.log("\nContainers space usage:\n");
    console.log(dockerTable(
      ["CONTAINER ID", "IMAGE", "COMMAND", "LOCAL VOLUMES", "SIZE", "CREATED", "STATUS", "NAMES"],
      r.containers.map((u) => [
        u.container.id.slice(0, 12),
        u.container.imageName,
        commandText(u.container, true),
        String(u.volumes),
        size(u.sizeRw),
        ago(u.container.createdAt),
        statusText(u.container),
        u.container.name,
      ]),
    ));
    console.log("\nLocal Volumes space usage:\n");
    console.log(dockerTable(
      ["VOLUME NAME", "LINKS", "SIZE"],
      r.volumes.map((u) => [u.volume.name, String(u.links), size(u.size)]),
    ));
    console.log(`\nBuild cache usage: ${size(r.buildCache.size)}\n`);
    console.log(dockerTable(
      ["CACHE ID", "CACHE TYPE", "SIZE", "CREATED", "LAST USED", "USAGE", "SHARED"],
      r.buildCache.entries.map((e) => [
        e.id.slice(0, 12),
        "regular",
        size(e.size),
        ago(e.createdAt),
        // Hits are not recorded: when and how often an entry served a build is unknown.
        "N/A",
        "N/A",
        String(e.shared),
      ]),
    ));
  });
}
