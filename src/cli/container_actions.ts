/**
 * What the container commands do, loaded only when one of them runs.
 *
 * @module
 */
import { TsboxError } from "../errors.ts";
import type { RunFlags } from "../runtime/run.ts";
import { Store } from "../store/mod.ts";
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
import { portsColumn } from "../net/publish.ts";
import {
  type ContainerRecord,
  getContainer,
  isActive,
  listContainers,
  reconcile,
  requireContainer,
} from "../container/state.ts";
import { ago, humanDuration, humanSize, table } from "./format.ts";
import type { GlobalOptions } from "./globals.ts";

async function withStore<T>(g: GlobalOptions, fn: (store: Store) => Promise<T>): Promise<T> {
  const store = await Store.open(g.root);
  try {
    return await fn(store);
  } finally {
    store.close();
  }
}

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
    const c = await createFromFlags(store, image, command, flags as RunFlags, g);
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
      return await attached(store, c.id, c.config.autoRemove);
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
  opts: { time?: string; signal?: string },
): Promise<number> {
  return each(g, names, async (store, c, name) => {
    if (opts.signal) {
      c = { ...c, config: { ...c.config, stopSignal: parseSignal(opts.signal) } };
    }
    await stopContainer(store, c, opts.time !== undefined ? Number(opts.time) : undefined);
    console.log(name);
  });
}

/** `restart`. */
export function restartCommand(
  g: GlobalOptions,
  names: string[],
  opts: { time?: string },
): Promise<number> {
  return each(g, names, async (store, c, name) => {
    await restartContainer(store, c, opts.time !== undefined ? Number(opts.time) : undefined);
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

/** docker's STATUS column. */
export function statusText(c: ContainerRecord, now = Date.now()): string {
  switch (c.state) {
    case "running":
      return `Up ${humanDuration(now - (c.startedAt ?? now))}`;
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

function commandText(c: ContainerRecord, trunc: boolean): string {
  let text = c.config.argv.join(" ");
  if (trunc && text.length > 20) text = `${text.slice(0, 19)}…`;
  return `"${text}"`;
}

function matches(c: ContainerRecord, filters: string[]): boolean {
  const byKey = new Map<string, string[]>();
  for (const f of filters) {
    const i = f.indexOf("=");
    if (i < 0) throw new TsboxError(`bad format of filter (expected name=value): ${f}`);
    const key = f.slice(0, i);
    if (!["status", "name", "id"].includes(key)) throw new TsboxError(`invalid filter '${key}'`);
    byKey.set(key, [...(byKey.get(key) ?? []), f.slice(i + 1)]);
  }
  // Values of one key are alternatives; different keys must all match.
  for (const [key, values] of byKey) {
    const ok = values.some((v) =>
      key === "status"
        ? c.state === v
        : key === "name"
        ? new RegExp(v).test(c.name)
        : c.id.startsWith(v)
    );
    if (!ok) return false;
  }
  return true;
}

/** `ps`. */
export async function psCommand(
  g: GlobalOptions,
  opts: {
    all?: boolean;
    quiet?: boolean;
    trunc?: boolean;
    filter?: string[];
    format?: "table" | "json";
  },
): Promise<void> {
  await withStore(g, (store) => {
    const trunc = opts.trunc !== false;
    const filters = opts.filter ?? [];
    const all = opts.all || filters.some((f) => f.startsWith("status="));
    const list = listContainers(store).filter((c) =>
      (all || c.state === "running" || c.state === "paused" || c.state === "restarting") &&
      matches(c, filters)
    );
    const id = (c: ContainerRecord) => trunc ? c.id.slice(0, 12) : c.id;
    if (opts.quiet) {
      for (const c of list) console.log(id(c));
    } else if (opts.format === "json") {
      for (const c of list) {
        console.log(JSON.stringify({
          Command: commandText(c, trunc),
          CreatedAt: new Date(c.createdAt).toISOString(),
          ID: id(c),
          Image: c.imageName,
          Names: c.name,
          Ports: portsColumn(store, c),
          RunningFor: ago(c.createdAt),
          State: c.state,
          Status: statusText(c),
        }));
      }
    } else {
      console.log(table(
        ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"],
        list.map((c) => [
          id(c),
          c.imageName,
          commandText(c, trunc),
          ago(c.createdAt),
          statusText(c),
          portsColumn(store, c),
          c.name,
        ]),
      ));
    }
    return Promise.resolve();
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

/** `container inspect`: a JSON array. */
export async function inspectCommand(g: GlobalOptions, names: string[]): Promise<number> {
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
    console.log(JSON.stringify(out, null, 4));
    return failed;
  });
}

/** `top`. */
export async function topCommand(g: GlobalOptions, name: string): Promise<void> {
  await withStore(g, async (store) => {
    const c = requireContainer(store, name);
    if (!isActive(c.state)) throw new TsboxError(`container ${c.name} is not running`);
    const { containerProcesses } = await import("../container/stats.ts");
    const procs = await containerProcesses(c.id);
    console.log(table(
      ["UID", "PID", "PPID", "STIME", "TIME", "CMD"],
      procs.map((p) => [String(p.uid), String(p.pid), String(p.ppid), p.stime, p.time, p.cmd]),
    ));
  });
}

/** `stats --no-stream`. */
export async function statsCommand(
  g: GlobalOptions,
  names: string[],
  opts: { format?: "table" | "json" },
): Promise<void> {
  await withStore(g, async (store) => {
    const list = names.length > 0
      ? names.map((n) => requireContainer(store, n))
      : listContainers(store).filter((c) => isActive(c.state));
    const { sampleStats } = await import("../container/stats.ts");
    const rows = await Promise.all(list.map(async (c) => ({ c, s: await sampleStats(c.id) })));
    if (opts.format === "json") {
      for (const { c, s } of rows) {
        console.log(JSON.stringify({
          ID: c.id.slice(0, 12),
          Name: c.name,
          CPUPerc: `${s.cpuPercent.toFixed(2)}%`,
          MemUsage: `${humanSize(s.memoryUsage)} / ${humanSize(s.memoryLimit)}`,
          MemUsageBytes: s.memoryUsage,
          MemLimitBytes: s.memoryLimit,
          MemPerc: `${s.memoryPercent.toFixed(2)}%`,
          PIDs: String(s.pids),
        }));
      }
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
export async function cpCommand(g: GlobalOptions, src: string, dest: string): Promise<void> {
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
    const { copyFromContainer, copyToContainer } = await import("../container/copy.ts");
    if (from) await copyFromContainer(store, requireContainer(store, from.name), from.path, dest);
    else await copyToContainer(store, requireContainer(store, to!.name), src, to!.path);
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
export { commandText };
