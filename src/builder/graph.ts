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
 * A name for which `external` is true (a `--build-context`) is no stage, even when a stage has it.
 */
export function stageDependencies(
  df: Dockerfile,
  stage: Stage,
  lookup: Lookup,
  external: (name: string) => boolean = () => false,
): number[] {
  const deps = new Set<number>();
  const add = (name: string | undefined) => {
    if (!name || external(name.toLowerCase())) return;
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
  external?: (name: string) => boolean,
): { stage: Stage; deps: number[] }[] {
  const needed = new Map<number, number[]>();
  const todo = [target];
  while (todo.length > 0) {
    const i = todo.pop()!;
    if (needed.has(i)) continue;
    const deps = stageDependencies(df, df.stages[i], lookup, external);
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

/** A stage as the scheduler hands it to be built. */
export interface ScheduledStage {
  readonly stage: Stage;
  /** Step number of its FROM (1-based, over every stage the build runs). */
  readonly firstStep: number;
}

/**
 * Runs a build's stages as a graph: the target's needed stages are numbered in Dockerfile
 * order and started at once, each waiting (without a job slot) for the stages it needs, then
 * building in a slot. A stage named only at run time (a name no global ARG could expand) is
 * started when first asked for. When one fails, the others stop before their next step
 * ({@link failed}) and {@link run} settles them all before it rejects, so nothing still runs
 * in the build's directory afterwards.
 */
export class StageScheduler<T> {
  readonly #results = new Map<number, Promise<T>>();
  readonly #firstSteps = new Map<number, number>();
  readonly #slots: JobSlots;
  #nextStep = 1;
  /** Steps of the planned stages. */
  total = 0;
  /** Whether more than one stage runs (their output is then told apart). */
  concurrent = false;
  /** Set once a stage failed. */
  failed = false;

  constructor(
    private readonly df: Dockerfile,
    jobs: number,
    private readonly build: (s: ScheduledStage) => Promise<T>,
    /** Names that are not stages though a stage may have them (`--build-context`). */
    private readonly external?: (name: string) => boolean,
  ) {
    this.#slots = new JobSlots(jobs);
  }

  /** Builds `target` and what it needs; `lookup` expands stage names (global ARGs). */
  async run(target: number, lookup: Lookup): Promise<T> {
    const plan = neededStages(this.df, target, lookup, this.external);
    for (const { stage } of plan) {
      this.#firstSteps.set(stage.index, this.#nextStep);
      this.#nextStep += 1 + stage.instructions.length;
    }
    this.total = this.#nextStep - 1;
    this.concurrent = plan.length > 1;
    for (const { stage, deps } of plan) this.#start(stage, deps);
    try {
      return await this.result(target);
    } catch (err) {
      this.failed = true;
      await Promise.allSettled(this.#results.values());
      throw err;
    }
  }

  /** A stage's result, starting it if nothing has. */
  result(index: number): Promise<T> {
    return this.#results.get(index) ?? this.#start(this.df.stages[index], []);
  }

  /** From inside a stage: waits for another stage's result without holding a job slot. */
  waitFor(index: number): Promise<T> {
    return this.#slots.suspend(this.result(index));
  }

  #start(stage: Stage, deps: readonly number[]): Promise<T> {
    let firstStep = this.#firstSteps.get(stage.index);
    if (firstStep === undefined) {
      firstStep = this.#nextStep;
      this.#nextStep += 1 + stage.instructions.length;
    }
    const scheduled = { stage, firstStep };
    const result = (async () => {
      // Dependencies are waited for before a job slot is taken, so waiting holds no slot.
      await Promise.all(deps.map((d) => this.result(d)));
      return await this.#slots.run(() => this.build(scheduled));
    })();
    this.#results.set(stage.index, result);
    // Failures reach whoever awaits the stage; this only keeps them from being "unhandled".
    result.catch(() => {});
    return result;
  }
}
