/**
 * The smaller `run`/`create` flags that only travel from the command line to the runtime:
 * `--init`, `--group-add`, `--shm-size`, `--sysctl` and `--log-opt` (and `--stop-timeout`'s
 * value). Parsed and checked here at create (exit 125 before anything exists), kept in the
 * container's record, and handed to the runtime at every start.
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import type { ContainerSpec, NetworkMode } from "../runtime/container.ts";
import { DEFAULT_SHM_SIZE, parseBytes } from "../runtime/options.ts";
import type { RunFlags } from "../runtime/run.ts";
import { findInitBinary } from "./init.ts";
import { parseLogOpts } from "./log_opts.ts";
import type { RunConfig } from "./state.ts";
import { parseSysctls } from "./sysctl.ts";

/** The record fields these flags fill. */
export type RunOptions = Pick<RunConfig, "init" | "groupAdd" | "shmSize" | "sysctls" | "log">;

/** Parses the flags into record fields; absent flags leave their fields out. */
export function runOptionsFrom(flags: RunFlags, network: NetworkMode): RunOptions {
  const out: { -readonly [K in keyof RunOptions]: RunOptions[K] } = {};
  if (flags.init) out.init = findInitBinary();
  if (flags.groupAdd?.length) {
    for (const g of flags.groupAdd) {
      // Names are looked up in the image's /etc/group at start; a gid must fit in 32 bits.
      if (
        /^[0-9]+$/.test(g) ? Number(g) > 0xfffffffe : !/^[A-Za-z0-9_.][A-Za-z0-9_.-]*\$?$/.test(g)
      ) {
        throw new UsageError(`invalid value "${g}" for --group-add: expected a group name or gid`);
      }
    }
    out.groupAdd = flags.groupAdd;
  }
  if (flags.shmSize !== undefined) {
    const size = parseBytes(flags.shmSize, "--shm-size");
    // docker: 0 means its default; anything else must leave room for at least one page.
    if (size > 0 && size < 4096) {
      throw new UsageError(`invalid value "${flags.shmSize}" for --shm-size: below 4k`);
    }
    if (size > 0) out.shmSize = size;
  }
  if (flags.sysctl?.length) out.sysctls = parseSysctls(flags.sysctl, network);
  const log = parseLogOpts(flags.logOpt ?? [], (flags as { logDriver?: string }).logDriver);
  if (log) out.log = log;
  return out;
}

/** What the runtime needs of them at each start. */
export function specOptions(
  c: RunConfig,
): Pick<ContainerSpec, "init" | "groupAdd" | "shmSize" | "sysctls"> {
  return { init: c.init, groupAdd: c.groupAdd, shmSize: c.shmSize, sysctls: c.sysctls };
}

/** `inspect`'s HostConfig fields for these flags, named and shaped as docker's. */
export function inspectHostConfig(c: RunConfig): Record<string, unknown> {
  // Sorted by key, as docker's (Go's) JSON writes a map.
  const given = Object.entries(c.log?.given ?? {}).sort(([a], [b]) => a < b ? -1 : 1);
  const logConfig = Object.fromEntries(given);
  return {
    Init: c.init !== undefined,
    GroupAdd: c.groupAdd ?? null,
    ShmSize: c.shmSize ?? DEFAULT_SHM_SIZE,
    Sysctls: c.sysctls ? Object.fromEntries(c.sysctls) : undefined,
    LogConfig: { Type: c.log?.driver ?? "json-file", Config: logConfig },
  };
}

/** `--stop-timeout`: whole seconds; -1 waits for ever, as docker. */
export function parseStopTimeout(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^-?[0-9]+$/.test(value.trim()) || Number(value) < -1) {
    throw new UsageError(
      `invalid argument "${value}" for "--stop-timeout" flag: expected whole seconds (-1: no limit)`,
    );
  }
  return Number(value);
}
