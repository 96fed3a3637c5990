/**
 * What the volume commands do, loaded only when one of them runs. Output and messages follow
 * docker's.
 *
 * @module
 */
import { TsboxError, UsageError } from "../errors.ts";
import { Store } from "../store/mod.ts";
import {
  ANONYMOUS_LABEL,
  createVolume,
  listVolumes,
  pruneVolumes,
  removeVolume,
  requireVolume,
  type Volume,
} from "../container/volumes.ts";
import { humanSize, table } from "./format.ts";
import type { GlobalOptions } from "./globals.ts";

async function withStore<T>(g: GlobalOptions, fn: (store: Store) => Promise<T> | T): Promise<T> {
  const store = await Store.open(g.root);
  try {
    return await fn(store);
  } finally {
    store.close();
  }
}

function parseLabels(values: readonly string[] = []): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const v of values) {
    const i = v.indexOf("=");
    if (i === 0) throw new UsageError(`invalid label '${v}': empty name`);
    if (i < 0) labels[v] = "";
    else labels[v.slice(0, i)] = v.slice(i + 1);
  }
  return labels;
}

/** `volume create [NAME]`: prints the name (also when the volume already existed). */
export async function volumeCreateCommand(
  g: GlobalOptions,
  name: string | undefined,
  opts: { driver?: string; label?: string[] },
): Promise<void> {
  if (opts.driver !== undefined && opts.driver !== "local") {
    throw new UsageError(`volume driver "${opts.driver}" is not supported (only local)`);
  }
  const labels = parseLabels(opts.label);
  await withStore(g, (store) => {
    console.log(createVolume(store, { name, labels }).volume.name);
  });
}

/** `volume ls [-q]`. */
export async function volumeLsCommand(g: GlobalOptions, opts: { quiet?: boolean }): Promise<void> {
  await withStore(g, (store) => {
    const volumes = listVolumes(store);
    if (opts.quiet) {
      for (const v of volumes) console.log(v.name);
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
    Options: null,
    Scope: "local",
  };
}

/** `volume inspect NAME...`: a JSON array; exit code 1 if one is missing. */
export async function volumeInspectCommand(g: GlobalOptions, names: string[]): Promise<number> {
  return await withStore(g, (store) => {
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
    console.log(JSON.stringify(found, null, 4));
    return code;
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
