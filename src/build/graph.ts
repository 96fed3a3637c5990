/**
 * The stage graph of a build, as BuildKit solves it: a stage depends on the earlier stages its
 * `FROM`, `COPY --from` and `RUN --mount from=` name, and only the stages the target reaches
 * through those edges are built; a stage nothing needs is never run (so an unused stage that
 * would fail does not fail the build). Independent stages run at the same time, at most `jobs`
 * at once ({@link JobSlots}).
 *
 * @module
 */
import type { Dockerfile, Instruction, Stage } from "./dockerfile.ts";
import { parseMountFlag } from "./run_mounts.ts";
import type { Lookup } from "./words.ts";
import { processWord, processWords } from "./words.ts";

/**
 * The stage `name` refers to among the stages before `before` (by `AS` name or index, as
 * docker resolves `FROM`/`--from`); undefined for an image name.
 */
export function findStage(df: Dockerfile, name: string, before: number): Stage | undefined {
  const n = name.toLowerCase();
  return df.stages.find((s) => s.index < before && (s.name === n || String(s.index) === n));
}

/** The names an instruction takes files from: `COPY --from=X`, `RUN --mount=...,from=X`. */
function namedSources(ins: Instruction, lookup: Lookup, escape: string): string[] {
  const out: string[] = [];
  for (const f of ins.flags) {
    if (f.name === "from" && (ins.keyword === "COPY" || ins.keyword === "ADD")) {
      out.push(processWord(f.value, lookup, { escape }));
    } else if (f.name === "mount" && ins.keyword === "RUN") {
      try {
        const m = parseMountFlag(processWord(f.value, lookup, { escape }));
        if ((m.type === "bind" || m.type === "cache") && m.from !== undefined) out.push(m.from);
      } catch {
        // A malformed --mount fails its own step when (and if) the stage runs.
      }
    }
  }
  return out;
}

/**
 * Indices of the stages `stage` needs directly. `lookup` expands variables in the names (the
 * build's global ARGs; a name that only a stage's own ARG gives is found when the step runs).
 */
export function stageDependencies(df: Dockerfile, stage: Stage, lookup: Lookup): number[] {
  const deps = new Set<number>();
  const add = (name: string | undefined) => {
    if (!name) return;
    const s = findStage(df, name, stage.index);
    if (s) deps.add(s.index);
  };
  try {
    add(processWords(stage.from.args, lookup, { escape: df.escape })[0]);
  } catch { /* the FROM fails with its own message when the stage runs */ }
  for (const ins of stage.instructions) {
    try {
      for (const name of namedSources(ins, lookup, df.escape)) add(name);
    } catch { /* likewise: expansion errors belong to the step */ }
  }
  return [...deps].sort((a, b) => a - b);
}

/** The stages the target needs (itself included), in Dockerfile order, with their dependencies. */
export function neededStages(
  df: Dockerfile,
  target: number,
  lookup: Lookup,
): { stage: Stage; deps: number[] }[] {
  const needed = new Map<number, number[]>();
  const todo = [target];
  while (todo.length > 0) {
    const i = todo.pop()!;
    if (needed.has(i)) continue;
    const deps = stageDependencies(df, df.stages[i], lookup);
    needed.set(i, deps);
    todo.push(...deps);
  }
  return [...needed.keys()].sort((a, b) => a - b).map((i) => ({
    stage: df.stages[i],
    deps: needed.get(i)!,
  }));
}

/**
 * At most `n` holders at once (`--jobs`). A stage holds a slot while it works and gives it back
 * while it waits for another stage ({@link JobSlots.suspend}), so waiting never starves the
 * stage it waits for.
 */
export class JobSlots {
  #free: number;
  readonly #waiting: (() => void)[] = [];

  constructor(n: number) {
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`jobs must be at least 1, not ${n}`);
    this.#free = n;
  }

  /** Waits for a free slot and takes it. */
  async acquire(): Promise<void> {
    if (this.#free > 0) {
      this.#free--;
      return;
    }
    await new Promise<void>((resolve) => this.#waiting.push(resolve));
  }

  /** Gives a slot back (to the longest waiter, if any). */
  release(): void {
    const next = this.#waiting.shift();
    if (next) next();
    else this.#free++;
  }

  /** Runs `fn` holding a slot. */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    await this.acquire();
    try {
      return await fn();
    } finally {
      this.release();
    }
  }

  /** From inside {@link run}: waits for `p` without holding the slot, then takes one again. */
  async suspend<T>(p: Promise<T>): Promise<T> {
    this.release();
    try {
      return await p;
    } finally {
      await this.acquire();
    }
  }
}
