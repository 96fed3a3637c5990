/**
 * Resource limits checked as docker's daemon checks them (moby's
 * verifyPlatformContainerResources), before anything of the container exists: the kernel must
 * never be the first to see a value it refuses, and a value docker reads as "no limit" (0) must
 * not be written as a limit of zero. Pure: the host's CPU count comes in as an argument.
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import type { ResourceLimits } from "../runtime/cgroups.ts";

/** A limit docker would refuse; the message is docker's where docker has one. */
export class LimitError extends UsageError {
  constructor(message: string) {
    super(message);
    this.name = "LimitError";
  }
}

/** docker's floor for `--memory` (linuxMinMemory). */
export const MIN_MEMORY = 6 * 1024 * 1024;

/**
 * The largest byte count tsbox passes to the kernel: docker keeps limits in an int64, and above
 * it the kernel's parser (memparse) wraps around silently. Anything from here down to the
 * kernel's own ceiling (PAGE_COUNTER_MAX pages) is clamped there, which means "unlimited".
 */
export const MAX_LIMIT_BYTES = 2 ** 63 - 1;

/** cgroup v1 clamps cpu.shares to this range; v2's weight conversion needs it explicitly. */
const MIN_SHARES = 2;
const MAX_SHARES = 262144;

/** docker's --cpus floor: a quota of 1 ms per 100 ms period, the least CFS takes. */
const MIN_CPUS = 0.01;

function tooLarge(flag: string, bytes: number): LimitError {
  return new LimitError(
    `invalid value for ${flag}: ${bytes} bytes is more than the largest limit the kernel takes (${MAX_LIMIT_BYTES} bytes)`,
  );
}

/**
 * Checks limits parsed from `run`'s flags and returns what should be written: 0 (and, for
 * `--pids-limit`, any negative value) becomes "no limit" as in docker; refused values throw
 * {@link LimitError} with docker's message. `hostCpus` is called only when `--cpus` is set.
 */
export function checkLimits(l: ResourceLimits, hostCpus: () => number): ResourceLimits {
  const memory = l.memory === 0 ? undefined : l.memory;
  let memorySwap = l.memorySwap === 0 ? undefined : l.memorySwap;
  if (memory !== undefined && memory < MIN_MEMORY) {
    throw new LimitError("Minimum memory limit allowed is 6MB");
  }
  if (memory !== undefined && memory > MAX_LIMIT_BYTES) throw tooLarge("--memory", memory);
  if (memorySwap !== undefined && memorySwap > MAX_LIMIT_BYTES) {
    throw tooLarge("--memory-swap", memorySwap);
  }
  if (memory !== undefined && memorySwap !== undefined && memorySwap > 0 && memorySwap < memory) {
    throw new LimitError("Minimum memoryswap limit should be larger than memory limit, see usage");
  }
  if (memory === undefined && memorySwap !== undefined && memorySwap > 0) {
    throw new LimitError(
      "You should always set the Memory limit when using Memoryswap limit, see usage",
    );
  }
  if (memory === undefined) memorySwap = undefined; // -1 alone changes nothing
  // docker's default swap allowance: as much swap as memory (memory+swap = twice the memory).
  if (memory !== undefined && memorySwap === undefined) {
    memorySwap = Math.min(memory * 2, MAX_LIMIT_BYTES);
  }

  const cpus = l.cpus === 0 ? undefined : l.cpus;
  if (cpus !== undefined) {
    const n = hostCpus();
    if (cpus < MIN_CPUS || cpus > n) {
      throw new LimitError(
        `range of CPUs is from 0.01 to ${n}.00, as there are only ${n} CPUs available`,
      );
    }
  }

  let cpuShares = l.cpuShares === 0 ? undefined : l.cpuShares;
  if (cpuShares !== undefined && cpuShares < 0) {
    throw new LimitError(`invalid value ${cpuShares} for --cpu-shares: must not be negative`);
  }
  if (cpuShares !== undefined) cpuShares = Math.min(Math.max(cpuShares, MIN_SHARES), MAX_SHARES);

  // docker: "Both 0 and -1 are accepted as unlimited, and historically any negative value".
  const pidsLimit = l.pidsLimit !== undefined && l.pidsLimit > 0 ? l.pidsLimit : undefined;

  return {
    ...l,
    memory,
    memorySwap,
    cpus,
    cpuShares,
    pidsLimit,
  };
}

/**
 * The CPUs this process may run on, docker's sysinfo.NumCPU. Deno's figure comes from
 * sched_getaffinity (Rust's available_parallelism, which also honours a CPU quota on tsbox's
 * own cgroup: stricter than docker only where tsbox itself is capped).
 */
export function hostCpuCount(): number {
  return navigator.hardwareConcurrency;
}
