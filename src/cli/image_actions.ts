/**
 * What the image commands do, loaded only when one of them runs.
 *
 * @module
 */
import { familiarRepository, parseReference } from "../../registry/reference.ts";
import { familiar, inspectImage, removeImage, tagImage } from "../image/images.ts";
import { pullImage } from "../image/pull.ts";
import { loadRegistriesConf, qualifyName } from "../../registry/registries_conf.ts";
import { containerUsingImage } from "../container/state.ts";
import { Store } from "../store/mod.ts";
import { ago, humanSize, table } from "./format.ts";
import type { GlobalOptions } from "./globals.ts";
import { PullProgress } from "./progress.ts";

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
  digests?: boolean;
  trunc?: boolean;
  format?: "table" | "json";
}

/** `images`. */
export async function imagesCommand(
  g: GlobalOptions,
  repository: string | undefined,
  opts: ImagesOptions,
): Promise<void> {
  const store = await openStore(g);
  try {
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
      const digestOf = (repo: string) =>
        image.digests.find((d) => d.startsWith(`${repo}@`))?.split("@")[1] ?? "<none>";
      const base = { id: image.id, created: image.created, size: image.size };
      if (image.tags.length === 0) {
        if (!filter) rows.push({ ...base, repo: "<none>", tag: "<none>", digest: "<none>" });
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
    if (opts.format === "json") {
      for (const r of rows) {
        console.log(JSON.stringify({
          Containers: "N/A",
          CreatedAt: r.created ?? "",
          CreatedSince: ago(r.created),
          Digest: r.digest,
          ID: id(r.id),
          Repository: r.repo,
          SharedSize: "N/A",
          Size: humanSize(r.size),
          Tag: r.tag,
          UniqueSize: "N/A",
          VirtualSize: humanSize(r.size),
        }));
      }
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

/**
 * `inspect`: containers first, then images, as docker looks names up; prints a JSON array of
 * what was found and returns 1 if any name was not.
 */
export async function inspectCommand(
  g: GlobalOptions,
  names: string[],
  only?: "image",
): Promise<number> {
  const store = await openStore(g);
  try {
    const { findContainer } = await import("../container/state.ts");
    const { inspectContainer } = await import("../container/inspect.ts");
    const found = [];
    let code = 0;
    for (const name of names) {
      const container = only === "image" ? undefined : findContainer(store, name);
      const image = container ? undefined : store.findImage(name);
      if (container) found.push(inspectContainer(store, container));
      else if (image) found.push(inspectImage(image));
      else {
        console.error(`Error: No such object: ${name}`);
        code = 1;
      }
    }
    console.log(JSON.stringify(found, null, 4));
    return code;
  } finally {
    store.close();
  }
}
