/**
 * `run`'s flags as the CLI hands them over (strings, as docker spells them), and the typed
 * resource limits and mounts they name. The run itself (create, supervise, attach) is
 * src/container/run.ts; the spec they become is spec.ts's.
 *
 * @module
 */
import type { ResourceLimits } from "../runtime/cgroups.ts";
import type { SecurityFlags } from "./security_flags.ts";
import {
  type MountFlag,
  parseBytes,
  parseCpus,
  parseInteger,
  parseMountFlag,
  parseTmpfs,
  parseVolume,
} from "./flag_values.ts";

/** The flags of `run` as the CLI hands them over (security flags: security.ts). */
export interface RunFlags extends SecurityFlags {
  rm?: boolean;
  name?: string;
  hostname?: string;
  env?: string[];
  envFile?: string[];
  workdir?: string;
  user?: string;
  entrypoint?: string;
  network: string;
  /** `--ip`, `--network-alias`, `--dns`, `--dns-search`, `--dns-option`, `--add-host`. */
  ip?: string;
  /** `--ip6`: an IPv6 address on a user network with IPv6. */
  ip6?: string;
  networkAlias?: string[];
  dns?: string[];
  dnsSearch?: string[];
  dnsOption?: string[];
  addHost?: string[];
  memory?: string;
  memorySwap?: string;
  cpus?: string;
  cpuShares?: string;
  pidsLimit?: string;
  interactive?: boolean;
  tty?: boolean;
  volume?: string[];
  mount?: string[];
  tmpfs?: string[];
  readOnly?: boolean;
  /** `-d`. */
  detach?: boolean;
  /** `--restart no|on-failure[:N]|always|unless-stopped`. */
  restart?: string;
  /** `--stop-signal`. */
  stopSignal?: string;
  /** `--stop-timeout` seconds. */
  stopTimeout?: string;
  /** `-p` values (the port proxy reads them from the container's config). */
  publish?: string[];
  /** `-P`. */
  publishAll?: boolean;
  /** `--expose` values. */
  expose?: string[];
  /** `--label K[=V]` values. */
  label?: string[];
  /** `--label-file` paths. */
  labelFile?: string[];
  /** `--init`: a small init as PID 1 (src/container/init.ts). */
  init?: boolean;
  /** `--pull always|missing|never`. */
  pull?: string;
  /** `--platform os/arch[/variant]`. */
  platform?: string;
  /** `--cidfile`: write the container's id to this file at create. */
  cidfile?: string;
  /** `--group-add` values: group names or gids. */
  groupAdd?: string[];
  /** `--shm-size`: size of /dev/shm. */
  shmSize?: string;
  /** `--sysctl KEY=VALUE` values. */
  sysctl?: string[];
  /** `--log-opt KEY=VALUE` values (json-file: max-size, max-file). */
  logOpt?: string[];
  /** The command line, canonical (cli/create_line.ts): kept for `generate systemd --new`. */
  createCommand?: string[];
}

/** The resource limits named by the flags. */
export function limitsFrom(f: RunFlags): ResourceLimits {
  return {
    memory: f.memory !== undefined ? parseBytes(f.memory, "--memory") : undefined,
    memorySwap: f.memorySwap !== undefined
      ? parseBytes(f.memorySwap, "--memory-swap", true)
      : undefined,
    cpus: f.cpus !== undefined ? parseCpus(f.cpus) : undefined,
    cpuShares: f.cpuShares !== undefined ? parseInteger(f.cpuShares, "--cpu-shares") : undefined,
    pidsLimit: f.pidsLimit !== undefined ? parseInteger(f.pidsLimit, "--pids-limit") : undefined,
  };
}

/** The user's mounts, in flag order (-v, then --mount, then --tmpfs); volumes still by name. */
export function mountsFrom(f: RunFlags): MountFlag[] {
  return [
    ...(f.volume ?? []).map(parseVolume),
    ...(f.mount ?? []).map(parseMountFlag),
    ...(f.tmpfs ?? []).map(parseTmpfs),
  ];
}
