/**
 * What the container commands do, loaded only when one of them runs.
 *
 * @module
 */
import { TsboxError, UsageError } from "../errors.ts";
import type { RunFlags } from "../container/flags.ts";
import type { Store } from "../store/mod.ts";
import { createFromFlags } from "../container/create.ts";
import { inspectContainer } from "../container/inspect.ts";
import {
  killContainer,
  pauseContainer,
  removeContainer,
  restartContainer,
  startDetached,
  stopContainer,
  unpauseContainer,
  waitContainer,
} from "../container/lifecycle.ts";
import { followLogs, type LogEntry, parseTimeFilter, readLogs } from "../container/logs.ts";
import { logPath } from "../container/paths.ts";
import { parseSignal } from "../container/signals.ts";
import {
  type ContainerRecord,
  getContainer,
  isActive,
  listContainers,
  reconcile,
  requireContainer,
} from "../container/state.ts";
import { humanSize, table } from "./format.ts";
import { isDefaultTable, printInspect, printList } from "./formats.ts";
import type { GlobalOptions } from "./globals.ts";
import { GO_TYPE, type Row } from "./template/values.ts";
import { withStore } from "./with_store.ts";

export { commandText, psCommand, statusText } from "./ps_action.ts";

/** Runs `fn` for each name as docker does: errors printed, exit code 1 if any failed. */
async function each(
  g: GlobalOptions,
  names: string[],
  fn: (store: Store, c: ContainerRecord, name: string) => Promise<void>,
): Promise<number> {
  return await withStore(g, async (store) => {
    let failed = 0;
    for (const name of names) {
      try {
        await fn(store, requireContainer(store, name), name);
      } catch (err) {
        if (!(err instanceof TsboxError)) throw err;
        console.error(`Error response from daemon: ${err.message}`);
        failed = 1;
      }
    }
    return failed;
  });
}

/** `create`: prints the new container's id. */
export async function createCommand(
  g: GlobalOptions,
  image: string,
  command: string[],
  flags: unknown,
): Promise<void> {
  await withStore(g, async (store) => {
    const c = await createFromFlags(store, image, command, flags as RunFlags, {
      ...g,
      notice: (line) => console.error(line),
    });
    console.log(c.id);
  });
}

/** `start`: detached (prints the names), or `-a` attached (exit code of the container). */
export async function startCommand(
  g: GlobalOptions,
  names: string[],
  opts: { attach?: boolean; interactive?: boolean },
): Promise<number> {
  if (opts.attach) {
    if (names.length !== 1) throw new TsboxError("you cannot start and attach multiple containers");
    return await withStore(g, async (store) => {
      const c = requireContainer(store, names[0]);
      if (isActive(c.state)) throw new TsboxError(`container ${c.name} is already running`);
      const { attached } = await import("../container/run.ts");
      return await attached(store, c.id, c.config.autoRemove, undefined, (m) => console.error(m));
    });
  }
  return await each(g, names, async (store, c, name) => {
    await startDetached(store, c);
    console.log(name);
  });
}

/** `stop`. */
export function stopCommand(
  g: GlobalOptions,
  names: string[],
  opts: { timeout?: string; time?: string; signal?: string },
): Promise<number> {
  const signal = opts.signal ? parseSignal(opts.signal) : undefined;
  const seconds = waitSeconds(opts);
  return each(g, names, async (store, c, name) => {
    await stopContainer(store, c, seconds, signal);
    console.log(name);
  });
}

/**
 * `stop`'s and `restart`'s wait: `-t/--timeout` (docker 23+) or the older `--time`, which
 * docker still takes; undefined leaves the container's own stop timeout.
 */
function waitSeconds(opts: { timeout?: string; time?: string }): number | undefined {
  const text = opts.timeout ?? opts.time;
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isInteger(n)) {
    throw new UsageError(`invalid argument "${text}" for "-t, --timeout" flag: not an integer`);
  }
  return n;
}

/** `restart`. */
export function restartCommand(
  g: GlobalOptions,
  names: string[],
  opts: { timeout?: string; time?: string },
): Promise<number> {
  const seconds = waitSeconds(opts);
  return each(g, names, async (store, c, name) => {
    await restartContainer(store, c, seconds);
    console.log(name);
  });
}

/** `kill`. */
export function killCommand(
  g: GlobalOptions,
  names: string[],
  opts: { signal: string },
): Promise<number> {
  const signal = parseSignal(opts.signal);
  return each(g, names, async (store, c, name) => {
    await killContainer(store, c, signal);
    console.log(name);
  });
}

/** `pause` / `unpause`. */
export function pauseCommand(g: GlobalOptions, names: string[], pause: boolean): Promise<number> {
  return each(g, names, async (store, c, name) => {
    await (pause ? pauseContainer(store, c) : unpauseContainer(store, c));
    console.log(name);
  });
}

/** `rm`. */
export function rmCommand(
  g: GlobalOptions,
  names: string[],
  opts: { force?: boolean; volumes?: boolean },
): Promise<number> {
  return each(g, names, async (store, c, name) => {
    await removeContainer(store, c, opts.force ?? false, opts.volumes ?? false);
    console.log(name);
  });
}

/** `wait`: prints each exit code. */
export function waitCommand(g: GlobalOptions, names: string[]): Promise<number> {
  return each(g, names, async (store, c) => {
    console.log(await waitContainer(store, c));
  });
}

/** `container prune`. */
export async function pruneCommand(g: GlobalOptions): Promise<void> {
  await withStore(g, async (store) => {
    // Loaded here: the measuring prune is not needed by the other container commands.
    const { pruneContainersMeasured } = await import("../housekeeping/system_prune.ts");
    const { removed, bytes } = await pruneContainersMeasured(store);
    if (removed.length > 0) console.log(`Deleted Containers:\n${removed.join("\n")}\n`);
    console.log(`Total reclaimed space: ${humanSize(bytes, 4)}`);
  });
}

/** `logs`: stdout entries to stdout, stderr entries to stderr. */
export async function logsCommand(
  g: GlobalOptions,
  name: string,
  opts: { follow?: boolean; tail?: string; timestamps?: boolean; since?: string; until?: string },
): Promise<void> {
  await withStore(g, async (store) => {
    const c = requireContainer(store, name);
    if (c.config.log?.driver === "none") {
      const { LogReadError } = await import("../container/log_opts.ts");
      throw new LogReadError();
    }
    const filter = {
      tail: opts.tail === undefined || opts.tail === "all" ? undefined : Number(opts.tail),
      since: opts.since ? parseTimeFilter(opts.since) : undefined,
      until: opts.until ? parseTimeFilter(opts.until) : undefined,
    };
    const encoder = new TextEncoder();
    const emit = (e: LogEntry) => {
      const text = opts.timestamps ? `${e.time} ${e.log}` : e.log;
      (e.stream === "stderr" ? Deno.stderr : Deno.stdout).writeSync(encoder.encode(text));
    };
    const path = logPath(store.root, c.id);
    if (!opts.follow) {
      for (const e of await readLogs(path, filter)) emit(e);
      return;
    }
    const done = () => {
      const row = getContainer(store, c.id);
      return !row || !isActive(reconcile(store, row).state);
    };
    for await (const e of followLogs(path, filter, done)) emit(e);
  });
}

/** `container inspect [-f FORMAT]`: a JSON array, or each container through the template. */
export async function inspectCommand(
  g: GlobalOptions,
  names: string[],
  opts: { format?: string } = {},
): Promise<number> {
  return await withStore(g, async (store) => {
    const out: unknown[] = [];
    let failed = 0;
    for (const name of names) {
      try {
        out.push(await inspectContainer(store, requireContainer(store, name)));
      } catch (err) {
        if (!(err instanceof TsboxError)) throw err;
        console.error(`Error: ${err.message}`);
        failed = 1;
      }
    }
    return Math.max(failed, await printInspect(opts.format, out));
  });
}

/** `top`. */
export async function topCommand(
  g: GlobalOptions,
  name: string,
  psArgs: string[] = [],
): Promise<void> {
  await withStore(g, async (store) => {
    const c = requireContainer(store, name);
    if (!isActive(c.state)) throw new TsboxError(`container ${c.name} is not running`);
    // ps's options as docker's top takes them (src/container/top.ts).
    const top = await import("../container/top.ts");
    const columns = top.topColumns(psArgs);
    const { cgroupOwner, containerCgroup } = await import("../container/cgroup.ts");
    const boot = top.bootTimeMs();
    const procs = (await containerCgroup(cgroupOwner(c)).pids()).sort((a, b) => a - b)
      .map((pid) => top.readProc(pid, boot))
      .filter((p) => p !== undefined);
    const { titles, rows } = top.topRows(procs, columns, top.hostTopContext());
    console.log(table(titles, rows));
  });
}

/** docker's header for each field of a `stats` row. */
const STATS_HEADERS: Record<string, string> = {
  Container: "CONTAINER",
  Name: "NAME",
  ID: "CONTAINER ID",
  CPUPerc: "CPU %",
  MemUsage: "MEM USAGE / LIMIT",
  MemPerc: "MEM %",
  NetIO: "NET I/O",
  BlockIO: "BLOCK I/O",
  PIDs: "PIDS",
};

/** `stats --no-stream`. */
export async function statsCommand(
  g: GlobalOptions,
  names: string[],
  opts: { format?: string },
): Promise<void> {
  await withStore(g, async (store) => {
    const list = names.length > 0
      ? names.map((n) => requireContainer(store, n))
      : listContainers(store).filter((c) => isActive(c.state));
    const { sampleStats } = await import("../container/stats.ts");
    const { cgroupOwner } = await import("../container/cgroup.ts");
    const rows = await Promise.all(
      list.map(async (c) => ({ c, s: await sampleStats(cgroupOwner(c)) })),
    );
    if (!isDefaultTable(opts.format)) {
      const statsRows = rows.map(({ c, s }, i): Row => ({
        [GO_TYPE]: "*container.statsContext",
        BlockIO: () => "--",
        CPUPerc: () => `${s.cpuPercent.toFixed(2)}%`,
        // The name or id as the user gave it, as docker's CONTAINER column.
        Container: () => names[i] ?? c.id.slice(0, 12),
        ID: () => c.id.slice(0, 12),
        MemPerc: () => `${s.memoryPercent.toFixed(2)}%`,
        MemUsage: () => `${humanSize(s.memoryUsage)} / ${humanSize(s.memoryLimit)}`,
        // Not docker's: the raw numbers, for scripts that compare them.
        MemUsageBytes: () => s.memoryUsage,
        MemLimitBytes: () => s.memoryLimit,
        Name: () => c.name,
        NetIO: () => "--",
        PIDs: () => String(s.pids),
      }));
      await printList(opts.format!, statsRows, STATS_HEADERS);
      return;
    }
    console.log(table(
      ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "PIDS"],
      rows.map(({ c, s }) => [
        c.id.slice(0, 12),
        c.name,
        `${s.cpuPercent.toFixed(2)}%`,
        `${humanSize(s.memoryUsage)} / ${humanSize(s.memoryLimit)}`,
        `${s.memoryPercent.toFixed(2)}%`,
        String(s.pids),
      ]),
    ));
  });
}

/** `cp SRC DEST`, one side being CONTAINER:PATH. */
export async function cpCommand(
  g: GlobalOptions,
  src: string,
  dest: string,
  opts: { archive?: boolean } = {},
): Promise<void> {
  const side = (s: string) => {
    const m = /^([a-zA-Z0-9][a-zA-Z0-9_.-]*):(.*)$/.exec(s);
    return m && !s.startsWith("/") && !s.startsWith(".") ? { name: m[1], path: m[2] } : undefined;
  };
  const from = side(src);
  const to = side(dest);
  if ((from === undefined) === (to === undefined)) {
    throw new TsboxError("copying between containers or between host paths is not supported");
  }
  await withStore(g, async (store) => {
    const copy = await import("../container/copy.ts");
    if (from) {
      const c = requireContainer(store, from.name);
      // `-` is a tar of the source on stdout, as docker's cp writes it.
      if (dest === "-") await copy.archiveFromContainer(store, c, from.path, Deno.stdout.writable);
      else await copy.copyFromContainer(store, c, from.path, dest);
      return;
    }
    const c = requireContainer(store, to!.name);
    // -a: what is copied in belongs to the container's user (docker's daemon does the same).
    const owner = opts.archive ? await copy.containerUserOwner(store, c) : undefined;
    const copyOpts = owner ? { owner: () => owner } : {};
    // `-` is a tar on stdin, extracted into the destination directory.
    if (src === "-") {
      await copy.extractToContainer(store, c, Deno.stdin.readable, to!.path, copyOpts);
    } else await copy.copyToContainer(store, c, src, to!.path, copyOpts);
  });
}

/** `export`. */
export async function exportCommand(
  g: GlobalOptions,
  name: string,
  opts: { output?: string },
): Promise<void> {
  await withStore(g, async (store) => {
    const c = requireContainer(store, name);
    if (!opts.output && Deno.stdout.isTerminal()) {
      throw new TsboxError("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    }
    const { exportContainer } = await import("../container/export.ts");
    const out = opts.output
      ? await Deno.open(opts.output, { write: true, create: true, truncate: true })
      : Deno.stdout;
    try {
      await exportContainer(store, c, out.writable);
    } finally {
      if (opts.output) {
        try {
          out.close();
        } catch { /* closed by the stream */ }
      }
    }
  });
}

/** `diff`. */
export async function diffCommand(g: GlobalOptions, name: string): Promise<void> {
  await withStore(g, async (store) => {
    const c = requireContainer(store, name);
    const { containerChanges } = await import("../container/diff.ts");
    for (const ch of await containerChanges(store, c)) console.log(`${ch.kind} ${ch.path}`);
  });
}

/** docker's COMMAND column (the quoted command, cut when `trunc`), also for `system df -v`. */
