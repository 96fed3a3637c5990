/**
 * What the image commands do, loaded only when one of them runs.
 *
 * @module
 */
import { familiarRepository, parseReference } from "../../registry/reference.ts";
import { familiar, removeImage, tagImage } from "../image/images.ts";
import { loadRegistriesConf, qualifyName } from "../../registry/registries_conf.ts";
import { containerUsingImage } from "../container/state.ts";
import { Store } from "../store/mod.ts";
import { ago, goTime, humanSize, table } from "./format.ts";
import { isDefaultTable, printList } from "./formats.ts";
import { GO_TYPE, type Row as FormatRow } from "./template/values.ts";
import type { GlobalOptions } from "./globals.ts";
import { PullProgress } from "./progress.ts";
import { imageFilter } from "./image_filters.ts";

export { inspectCommand } from "./inspect_action.ts";

/** Opens the store of the global options. */
export function openStore(g: GlobalOptions): Promise<Store> {
  return Store.open(g.root);
}

/** `pull`. */
export async function pullCommand(
  g: GlobalOptions,
  name: string,
  opts: { quiet?: boolean; platform?: string },
): Promise<void> {
  const store = await openStore(g);
  try {
    const registries = await loadRegistriesConf();
    const ref = parseReference(qualifyName(registries, name));
    const out = (s: string) => console.log(s);
    if (!opts.quiet) {
      if (!/[:@][^/]*$/.test(name)) out(`Using default tag: ${ref.tag}`);
      out(`${ref.digest ?? ref.tag}: Pulling from ${familiarRepository(ref)}`);
    }
    const progress = opts.quiet ? undefined : new PullProgress();
    // Loaded here: the registry client (node:path, node:buffer) is no cost of `inspect`.
    const { pullImage } = await import("../image/pull.ts");
    const result = await pullImage(store, name, {
      platform: opts.platform,
      insecure: g.insecureRegistries,
      registries,
      onProgress: progress ? (e) => progress.event(e) : undefined,
    });
    progress?.finish();
    if (!opts.quiet) {
      out(`Digest: ${result.digest}`);
      out(
        result.upToDate
          ? `Status: Image is up to date for ${ref.familiar()}`
          : `Status: Downloaded newer image for ${ref.familiar()}`,
      );
    }
    out(ref.toString());
  } finally {
    store.close();
  }
}

interface ImagesOptions {
  quiet?: boolean;
  all?: boolean;
  filter?: string[];
  digests?: boolean;
  trunc?: boolean;
  format?: string;
}

/** docker's header for each field of an `images` row. */
const IMAGE_HEADERS: Record<string, string> = {
  ID: "IMAGE ID",
  Repository: "REPOSITORY",
  Tag: "TAG",
  Digest: "DIGEST",
  CreatedSince: "CREATED",
  CreatedAt: "CREATED AT",
  Size: "SIZE",
  Containers: "CONTAINERS",
  VirtualSize: "SIZE",
  SharedSize: "SHARED SIZE",
  UniqueSize: "UNIQUE SIZE",
};

/** `images`. */
export async function imagesCommand(
  g: GlobalOptions,
  repository: string | undefined,
  opts: ImagesOptions,
): Promise<void> {
  const store = await openStore(g);
  try {
    // Checked before anything is listed, as docker's daemon checks them.
    const filters = imageFilter(store, opts.filter ?? []);
    const filter = repository ? parseReference(repository) : undefined;
    const filterHasTag = repository ? /:[^/]*$/.test(repository) : false;
    type Row = {
      repo: string;
      tag: string;
      digest: string;
      id: string;
      created?: string;
      size: number;
    };
    const rows: Row[] = [];
    for (const image of store.listImages()) {
      if (!filters.keepImage(image)) continue;
      // A multi-platform build's other variants are listed once, under the index's name (the
      // host variant's row), as docker with the containerd store and podman list a manifest
      // list; `-a` shows them.
      if (!opts.all && image.tags.length === 0 && store.inIndex(image.id)) continue;
      const digestOf = (repo: string) =>
        image.digests.find((d) => d.startsWith(`${repo}@`))?.split("@")[1] ?? "<none>";
      const base = { id: image.id, created: image.created, size: image.size };
      if (image.tags.length === 0) {
        if (!filter && !filters.byReference) {
          rows.push({ ...base, repo: "<none>", tag: "<none>", digest: "<none>" });
        }
        continue;
      }
      for (const full of image.tags) {
        const ref = parseReference(full);
        if (
          filter &&
          (ref.repository !== filter.repository || (filterHasTag && ref.tag !== filter.tag))
        ) {
          continue;
        }
        if (!filters.keepTag(familiar(full))) continue;
        const repo = familiar(full).replace(/:[^:/]*$/, "");
        rows.push({ ...base, repo, tag: ref.tag ?? "<none>", digest: digestOf(ref.repository) });
      }
    }
    const id = (full: string) => opts.trunc === false ? full : full.slice(7, 19);
    if (opts.quiet) {
      const seen = new Set<string>();
      for (const r of rows) {
        if (!seen.has(r.id)) console.log(id(r.id));
        seen.add(r.id);
      }
      return;
    }
    if (!isDefaultTable(opts.format)) {
      let format = opts.format!;
      // docker adds the digest column to a table format when --digests asks for it.
      if (format.startsWith("table") && opts.digests && !format.includes("{{.Digest}}")) {
        format += "\t{{.Digest}}";
      }
      await printList(
        format,
        rows.map((r): FormatRow => ({
          [GO_TYPE]: "*formatter.imageContext",
          Containers: () => "N/A",
          CreatedAt: () => goTime(r.created),
          CreatedSince: () => ago(r.created),
          Digest: () => r.digest,
          ID: () => id(r.id),
          Repository: () => r.repo,
          SharedSize: () => "N/A",
          Size: () => humanSize(r.size),
          Tag: () => r.tag,
          UniqueSize: () => "N/A",
          VirtualSize: () => humanSize(r.size),
        })),
        IMAGE_HEADERS,
      );
      return;
    }
    const header = [
      "REPOSITORY",
      "TAG",
      ...(opts.digests ? ["DIGEST"] : []),
      "IMAGE ID",
      "CREATED",
      "SIZE",
    ];
    console.log(table(
      header,
      rows.map((r) => [
        r.repo,
        r.tag,
        ...(opts.digests ? [r.digest] : []),
        id(r.id),
        ago(r.created),
        humanSize(r.size),
      ]),
    ));
  } finally {
    store.close();
  }
}

/** `tag`. */
export async function tagCommand(g: GlobalOptions, source: string, target: string): Promise<void> {
  const store = await openStore(g);
  try {
    tagImage(store, source, target);
  } finally {
    store.close();
  }
}

/** `rmi`: removes each image; returns 1 if any failed, like docker. */
export async function rmiCommand(
  g: GlobalOptions,
  names: string[],
  opts: { force?: boolean },
): Promise<number> {
  const store = await openStore(g);
  let code = 0;
  try {
    for (const name of names) {
      try {
        for (
          const a of await removeImage(store, name, {
            force: opts.force,
            inUse: (id) => containerUsingImage(store, id),
          })
        ) {
          console.log("untagged" in a ? `Untagged: ${a.untagged}` : `Deleted: ${a.deleted}`);
        }
      } catch (err) {
        console.error(`Error response from tsbox: ${(err as Error).message}`);
        code = 1;
      }
    }
  } finally {
    store.close();
  }
  return code;
}
