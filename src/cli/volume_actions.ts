/**
 * What the volume commands do, loaded only when one of them runs. Output and messages follow
 * docker's.
 *
 * @module
 */
import { TsboxError, UsageError } from "../errors.ts";
import type { Store } from "../store/mod.ts";
import {
  ANONYMOUS_LABEL,
  createVolume,
  listVolumes,
  pruneVolumes,
  removeVolume,
  requireVolume,
  type Volume,
  volumeUsers,
} from "../container/volumes.ts";
import { labelsColumn, parseLabel } from "../container/labels.ts";
import { boolFilter, matchesPattern, matchLabels, parseFilters } from "./filters.ts";
import { humanSize, table } from "./format.ts";
import { isDefaultTable, printInspect, printList } from "./formats.ts";
import { GO_TYPE, type Row } from "./template/values.ts";
import type { GlobalOptions } from "./globals.ts";
import {
  optionsView,
  parseVolumeOptions,
  readVolumeOptions,
  writeVolumeOptions,
} from "../container/volume_options.ts";
import { withStore } from "./with_store.ts";

/** `--label`s of `volume create`, checked as docker checks them. */
function parseLabels(values: readonly string[] = []): Record<string, string> {
  return Object.fromEntries(values.map(parseLabel));
}

/** `volume create [NAME]`: prints the name (also when the volume already existed). */
export async function volumeCreateCommand(
  g: GlobalOptions,
  name: string | undefined,
  opts: { driver?: string; label?: string[]; opt?: string[] },
): Promise<void> {
  if (opts.driver !== undefined && opts.driver !== "local") {
    throw new UsageError(`volume driver "${opts.driver}" is not supported (only local)`);
  }
  const labels = parseLabels(opts.label);
  const options = parseVolumeOptions(opts.opt ?? []);
  await withStore(g, (store) => {
    const { volume, created } = createVolume(store, { name, labels });
    // Mounted with them when a container first uses it (volume_options.ts).
    if (created && options) writeVolumeOptions(volume.mountpoint, options);
    console.log(volume.name);
  });
}

/** docker's header for each field of a `volume ls` row. */
const VOLUME_HEADERS: Record<string, string> = {
  Name: "VOLUME NAME",
  Driver: "DRIVER",
  Scope: "SCOPE",
  Mountpoint: "MOUNTPOINT",
  Labels: "LABELS",
  Links: "LINKS",
  Size: "SIZE",
  Group: "GROUP",
  Availability: "AVAILABILITY",
  Status: "STATUS",
};

/** A `volume ls --format` row: docker's volumeContext. */
function volumeRow(v: Volume): Row {
  const labels = labelsOf(v);
  return {
    [GO_TYPE]: "*formatter.volumeContext",
    Availability: () => "N/A",
    Driver: () => "local",
    Group: () => "N/A",
    Labels: () => labelsColumn(labels),
    Links: () => "N/A",
    Mountpoint: () => v.mountpoint,
    Name: () => v.name,
    Scope: () => "local",
    Size: () => "N/A",
    Status: () => "N/A",
    Label: (name: unknown) => labels[String(name)] ?? "",
  };
}

/** The labels docker shows for `v`: an anonymous volume carries docker's anonymous label. */
function labelsOf(v: Volume): Record<string, string> {
  return v.anonymous ? { [ANONYMOUS_LABEL]: "", ...v.labels } : { ...v.labels };
}

/** The keys `volume ls --filter` takes (docker's volume service). */
const VOLUME_FILTER_KEYS = ["dangling", "driver", "label", "label!", "name"];

/**
 * `volume ls --filter`: `name=` (docker's regexp match), `driver=` (`local`), `label=`/`label!=`,
 * `dangling=` (no container names the volume).
 */
export function volumeFilter(store: Store, values: readonly string[]): (v: Volume) => boolean {
  const filters = parseFilters(values, VOLUME_FILTER_KEYS);
  const dangling = boolFilter(filters, "dangling");
  const any = (key: string, test: (value: string) => boolean) =>
    !filters.has(key) || filters.get(key)!.some(test);
  return (v) =>
    any("name", (p) => matchesPattern(p, v.name)) &&
    any("driver", (d) => d === "local") &&
    matchLabels(filters, labelsOf(v)) &&
    (dangling === undefined || dangling === (volumeUsers(store, v.name).length === 0));
}

/** `volume ls [-q] [-f FILTER] [--format F]`. */
export async function volumeLsCommand(
  g: GlobalOptions,
  opts: { quiet?: boolean; format?: string; filter?: string[] },
): Promise<void> {
  await withStore(g, async (store) => {
    const keep = volumeFilter(store, opts.filter ?? []);
    const volumes = listVolumes(store).filter(keep);
    if (opts.quiet) {
      for (const v of volumes) console.log(v.name);
      return;
    }
    if (!isDefaultTable(opts.format)) {
      await printList(opts.format!, volumes.map(volumeRow), VOLUME_HEADERS);
      return;
    }
    console.log(table(["DRIVER", "VOLUME NAME"], volumes.map((v) => ["local", v.name])));
  });
}

/** docker's `volume inspect` object. */
export function inspectVolume(v: Volume): Record<string, unknown> {
  const labels = v.anonymous ? { [ANONYMOUS_LABEL]: "", ...v.labels } : v.labels;
  return {
    CreatedAt: new Date(v.createdAt).toISOString().replace(/\.\d+Z$/, "Z"),
    Driver: "local",
    Labels: Object.keys(labels).length > 0 ? labels : null,
    Mountpoint: v.mountpoint,
    Name: v.name,
    Options: optionsView(readVolumeOptions(v.mountpoint)),
    Scope: "local",
  };
}

/** `volume inspect [-f FORMAT] NAME...`: a JSON array; exit code 1 if one is missing. */
export async function volumeInspectCommand(
  g: GlobalOptions,
  names: string[],
  opts: { format?: string } = {},
): Promise<number> {
  return await withStore(g, async (store) => {
    const found: Record<string, unknown>[] = [];
    let code = 0;
    for (const name of names) {
      try {
        found.push(inspectVolume(requireVolume(store, name)));
      } catch (err) {
        if (!(err instanceof TsboxError)) throw err;
        console.error(`Error: ${err.message}`);
        code = 1;
      }
    }
    return Math.max(code, await printInspect(opts.format, found));
  });
}

/** `volume rm [-f] NAME...`: prints each name removed; exit code 1 if one was refused. */
export async function volumeRmCommand(
  g: GlobalOptions,
  names: string[],
  opts: { force?: boolean },
): Promise<number> {
  return await withStore(g, async (store) => {
    let code = 0;
    for (const name of names) {
      try {
        await removeVolume(store, name, { force: opts.force });
        console.log(name);
      } catch (err) {
        if (!(err instanceof TsboxError)) throw err;
        console.error(`Error response from daemon: ${err.message}`);
        code = 1;
      }
    }
    return code;
  });
}

/** Asks on stdout, reads one line of stdin (prompt() says nothing when stdin is not a tty). */
export async function confirm(question: string): Promise<boolean> {
  await Deno.stdout.write(new TextEncoder().encode(`${question} [y/N] `));
  const buf = new Uint8Array(256);
  let line = "";
  for (;;) {
    const n = await Deno.stdin.read(buf);
    if (n === null) break;
    line += new TextDecoder().decode(buf.subarray(0, n));
    if (line.includes("\n")) break;
  }
  if (!line.includes("\n")) console.log();
  return /^y(es)?$/i.test(line.split("\n")[0].trim());
}

/** `volume prune [-a] [-f]`. */
export async function volumePruneCommand(
  g: GlobalOptions,
  opts: { all?: boolean; force?: boolean },
): Promise<number> {
  if (!opts.force) {
    const what = opts.all ? "all local volumes" : "anonymous local volumes";
    const ok = await confirm(
      `WARNING! This will remove ${what} not used by at least one container.\nAre you sure you want to continue?`,
    );
    if (!ok) return 1;
  }
  return await withStore(g, async (store) => {
    const { removed, bytes } = await pruneVolumes(store, { all: opts.all });
    if (removed.length > 0) console.log(`Deleted Volumes:\n${removed.join("\n")}\n`);
    console.log(`Total reclaimed space: ${humanSize(bytes)}`);
    return 0;
  });
}
