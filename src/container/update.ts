/**
 * `update`: changes a container's resource limits (and restart policy) as `docker update`
 * does. The new limits are checked as at `run`, written into the cgroup of a running or paused
 * container at once, and recorded, so that every later start applies them too.
 *
 * @module
 */
import { TsboxError, UsageError } from "../errors.ts";
import { CgroupV1, type ResourceLimits } from "../runtime/cgroups.ts";
import { parseBytes, parseCpus, parseInteger } from "./flag_values.ts";
import type { Store } from "../store/mod.ts";
import { cgroupOwner, containerCgroup } from "./cgroup.ts";
import { rewriteResources } from "./bundle.ts";
import { parseRestart } from "./create_options.ts";
import { noticePolicy } from "./policy_notice.ts";
import {
  type ExtraLimitFlags,
  type HostResources,
  hostResources,
  withExtraLimits,
} from "./extra_limits.ts";
import { checkLimits, hostCpuCount, LimitError } from "./limits.ts";
import { type ContainerRecord, reconcile, type RunConfig } from "./state.ts";

/** `update`'s flags as the command line hands them over. */
export interface UpdateFlags extends ExtraLimitFlags {
  memory?: string;
  memorySwap?: string;
  cpus?: string;
  cpuShares?: string;
  pidsLimit?: string;
  restart?: string;
}

const LIMIT_FLAGS: (keyof UpdateFlags)[] = [
  "memory",
  "memorySwap",
  "cpus",
  "cpuShares",
  "pidsLimit",
  "cpusetCpus",
  "cpusetMems",
  "cpuQuota",
  "cpuPeriod",
  "memoryReservation",
  "kernelMemory",
  "blkioWeight",
];

/** Whether any flag was given (docker refuses an update that changes nothing). */
export function assertSomeFlag(flags: UpdateFlags): void {
  if ([...LIMIT_FLAGS, "restart" as const].every((k) => flags[k] === undefined)) {
    throw new UsageError("You must provide one or more flags when using this command.");
  }
}

/**
 * The container's limits after the update: the given flags over the recorded limits, checked
 * as at `run` (with docker's update-only refusals), and which of them changed.
 */
export function updatedLimits(
  old: ResourceLimits,
  flags: UpdateFlags,
  host: HostResources,
  warn: (message: string) => void,
): { limits: ResourceLimits; changed: ResourceLimits } {
  const given: { -readonly [K in keyof ResourceLimits]: ResourceLimits[K] } = {};
  if (flags.memory !== undefined) given.memory = parseBytes(flags.memory, "--memory");
  if (flags.memorySwap !== undefined) {
    given.memorySwap = parseBytes(flags.memorySwap, "--memory-swap", true);
  }
  if (flags.cpus !== undefined) given.cpus = parseCpus(flags.cpus);
  if (flags.cpuShares !== undefined) {
    given.cpuShares = parseInteger(flags.cpuShares, "--cpu-shares");
  }
  if (flags.pidsLimit !== undefined) {
    given.pidsLimit = parseInteger(flags.pidsLimit, "--pids-limit");
  }
  if (
    given.memory !== undefined && given.memorySwap === undefined && old.memorySwap !== undefined &&
    old.memorySwap > 0 && given.memory > old.memorySwap
  ) {
    throw new LimitError(
      "Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time",
    );
  }
  if (given.cpus !== undefined && given.cpus !== 0 && old.cpuQuota !== undefined) {
    throw new LimitError(
      "Conflicting options: Nano CPUs cannot be updated as CPU Quota has already been set",
    );
  }
  if (given.cpus !== undefined && given.cpus !== 0 && old.cpuPeriod !== undefined) {
    throw new LimitError(
      "Conflicting options: Nano CPUs cannot be updated as CPU Period has already been set",
    );
  }
  const base = checkLimits({ ...old, ...given }, hostCpuCount);
  const limits = withExtraLimits(base, flags, host, warn);
  const changed: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(limits)) {
    if (JSON.stringify(v) !== JSON.stringify((old as Record<string, unknown>)[k])) changed[k] = v;
  }
  // The cgroup classes write memory and memory+swap together (in the order v1 needs).
  if ("memory" in changed || "memorySwap" in changed) {
    changed.memory = limits.memory;
    changed.memorySwap = limits.memorySwap;
  }
  // "No limit" is written too (pids.max "max"), where the record just drops the limit.
  if (given.pidsLimit !== undefined && limits.pidsLimit === undefined) changed.pidsLimit = 0;
  return { limits, changed: changed as ResourceLimits };
}

async function readNumber(path: string): Promise<number | undefined> {
  try {
    return Number((await Deno.readTextFile(path)).trim());
  } catch {
    return undefined;
  }
}

/**
 * Writes `changed` into the cgroup of running container `id`. On v1 the memory+swap limit
 * must never be below the memory limit, so when it grows it is written first.
 */
async function applyLive(c: ContainerRecord, changed: ResourceLimits): Promise<void> {
  const cg = containerCgroup(cgroupOwner(c));
  if (cg instanceof CgroupV1 && changed.memorySwap !== undefined) {
    const mem = cg.byController.get("memory");
    const current = mem ? await readNumber(`${mem}/memory.memsw.limit_in_bytes`) : undefined;
    if (mem && current !== undefined && changed.memorySwap > current) {
      await Deno.writeTextFile(`${mem}/memory.memsw.limit_in_bytes`, String(changed.memorySwap));
    }
  }
  await cg.apply(changed);
}

/** Records the new limits and restart policy in the container's row. */
function record(store: Store, id: string, change: Partial<RunConfig>): void {
  store.db.transaction(() => {
    const row = store.db.get<{ config: string }>("SELECT config FROM containers WHERE id = ?", id);
    if (!row) throw new TsboxError(`No such container: ${id}`);
    const config = { ...JSON.parse(row.config), ...change };
    store.db.run("UPDATE containers SET config = ? WHERE id = ?", JSON.stringify(config), id);
  });
}

/** Updates container `c` as `docker update` with `flags`. */
export async function updateContainer(
  store: Store,
  c: ContainerRecord,
  flags: UpdateFlags,
  warn: (message: string) => void,
): Promise<void> {
  const current = reconcile(store, c);
  const restart = flags.restart !== undefined ? parseRestart(flags.restart) : undefined;
  if (restart && restart.name !== "no" && current.config.autoRemove) {
    throw new TsboxError(
      "Restart policy cannot be updated because AutoRemove is enabled for the container",
    );
  }
  const { limits, changed } = updatedLimits(
    current.config.resources,
    flags,
    hostResources(),
    warn,
  );
  if (
    (current.state === "running" || current.state === "paused") && Object.keys(changed).length
  ) {
    await applyLive(current, changed);
  }
  // The bundle first: the next start runs its config.json, and a failed write leaves both old.
  await rewriteResources(store, current.id, { ...current.config, resources: limits });
  record(store, current.id, { resources: limits, ...(restart ? { restart } : {}) });
  // A running supervisor without a watcher sleeps until told (watch_policy.ts).
  if (restart && restart.name !== "no") noticePolicy(store.root, current.id);
}
