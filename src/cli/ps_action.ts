/**
 * `ps`: the one command users run most to look, so it loads only what the default table
 * needs (the store, the rows, the PORTS column); `--filter`, `--format` and `--size` load their
 * code when given (container_filters.ts, ps_format.ts). The rows come from state_read.ts,
 * which reconciles (loading state.ts) only when a row needs it.
 *
 * @module
 */
import { healthSuffix } from "../container/health.ts";
import type { ContainerRecord } from "../container/state.ts";
import { isActive } from "../container/state_rows.ts";
import { readContainers } from "../container/state_read.ts";
import { lazyImport } from "../lazy.ts";
import { portsColumn } from "../net/port_views.ts";
import type { ContainerFilter, ListOptions } from "./container_filters.ts";
import { ago, ellipsis, goQuote, humanDuration, table } from "./format.ts";
import { isDefaultTable } from "./formats.ts";
import type { GlobalOptions } from "./globals.ts";
import { withStore } from "./with_store.ts";

/** Loads module `path` of this directory when called (see src/lazy.ts). */
const load = <T>(path: string) => () => lazyImport<T>(new URL(path, import.meta.url));
const filters = load<typeof import("./container_filters.ts")>("./container_filters.ts");
const psFormat = load<typeof import("./ps_format.ts")>("./ps_format.ts");

/**
 * What {@link containerFilter} gives for no `--filter` at all: the running containers, or all
 * with `-a`, or the `-n` newest in any state, newest first (container_filters_test.ts checks
 * the two agree).
 */
export function unfiltered(options: ListOptions): ContainerFilter {
  const all = options.all === true;
  const limit = options.limit ?? 0;
  return {
    apply(newestFirst) {
      const out: ContainerRecord[] = [];
      for (const c of newestFirst) {
        if (!isActive(c.state) && !all && limit <= 0) continue;
        if (limit > 0 && out.length === limit) break;
        out.push(c);
      }
      return out;
    },
  };
}

/** docker's STATUS column. */
export function statusText(c: ContainerRecord, now = Date.now()): string {
  switch (c.state) {
    case "running":
      return `Up ${humanDuration(now - (c.startedAt ?? now))}${healthSuffix(c.health)}`;
    case "paused":
      return `Up ${humanDuration(now - (c.startedAt ?? now))} (Paused)`;
    case "restarting":
      return `Restarting (${c.exitCode ?? 0}) ${ago(c.finishedAt)}`;
    case "exited":
      return `Exited (${c.exitCode ?? 0}) ${ago(c.finishedAt)}`;
    default:
      return "Created";
  }
}

/** docker's COMMAND column: the command line, cut to 20 characters, Go-quoted. */
export function commandText(c: ContainerRecord, trunc: boolean): string {
  const text = c.config.argv.join(" ");
  return goQuote(trunc ? ellipsis(text, 20) : text);
}

/** docker's header for each field of a `ps` row (formatter.NewContainerContext). */
export const PS_HEADERS: Record<string, string> = {
  ID: "CONTAINER ID",
  Names: "NAMES",
  Image: "IMAGE",
  Command: "COMMAND",
  CreatedAt: "CREATED AT",
  RunningFor: "CREATED",
  Ports: "PORTS",
  State: "STATE",
  Status: "STATUS",
  Size: "SIZE",
  Labels: "LABELS",
  Mounts: "MOUNTS",
  LocalVolumes: "LOCAL VOLUMES",
  Networks: "NETWORKS",
};

/** `ps`. */
export async function psCommand(
  g: GlobalOptions,
  opts: {
    all?: boolean;
    quiet?: boolean;
    trunc?: boolean;
    filter?: string[];
    format?: string;
    last?: string;
    latest?: boolean;
    size?: boolean;
  },
): Promise<void> {
  await withStore(g, async (store) => {
    const trunc = opts.trunc !== false;
    const limit = opts.latest ? 1 : opts.last !== undefined ? Number(opts.last) : 0;
    // Checked before anything is listed, as docker's daemon checks them.
    const options = { all: opts.all, limit };
    const filter = opts.filter?.length
      ? (await filters()).containerFilter(store, opts.filter, options)
      : unfiltered(options);
    const list = filter.apply(await readContainers(store));
    const id = (c: ContainerRecord) => trunc ? c.id.slice(0, 12) : c.id;
    if (opts.quiet) {
      for (const c of list) console.log(id(c));
    } else if (!isDefaultTable(opts.format)) {
      const { psRow } = await psFormat();
      const { printList } = await import("./formats.ts");
      await printList(opts.format!, list.map((c) => psRow(store, c, trunc)), PS_HEADERS);
    } else {
      const sizeText = opts.size ? (await psFormat()).sizeText : undefined;
      console.log(table(
        [
          "CONTAINER ID",
          "IMAGE",
          "COMMAND",
          "CREATED",
          "STATUS",
          "PORTS",
          "NAMES",
          ...(opts.size ? ["SIZE"] : []),
        ],
        list.map((c) => [
          id(c),
          c.imageName,
          commandText(c, trunc),
          ago(c.createdAt),
          statusText(c),
          portsColumn(store, c),
          c.name,
          ...(sizeText ? [sizeText(store, c)] : []),
        ]),
      ));
    }
  });
}
