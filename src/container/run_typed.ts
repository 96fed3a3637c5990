/**
 * `run` for scripts (mod.ts): typed options (sizes in bytes, durations in milliseconds, ports
 * and mounts as objects) instead of docker's flag strings. They are written as the flags they
 * stand for, so that a script's run goes through exactly the checks, defaults and messages of
 * `tsbox run` (create_options.ts) and the same code after them.
 *
 * @module
 */
import type { RunFlags } from "./flags.ts";
import type { HealthFlags } from "./health.ts";

/** A port published on the host (`-p`). */
export interface PortMapping {
  /** The container's port. */
  readonly container: number;
  /** The host's port; a free one when absent. */
  readonly host?: number;
  /** The host address to listen on; all when absent. */
  readonly hostIp?: string;
  readonly protocol?: "tcp" | "udp";
}

/** A host directory or named volume mounted into the container (`-v`). */
export interface VolumeMount {
  /** An absolute host path, or a volume name. */
  readonly source: string;
  /** Absolute path in the container. */
  readonly target: string;
  readonly readOnly?: boolean;
}

/** A tmpfs mounted into the container (`--tmpfs`). */
export interface TmpfsMount {
  readonly target: string;
  /** Size in bytes; the kernel's default when absent. */
  readonly size?: number;
}

/** A container's health check (`--health-*`). */
export interface HealthCheck {
  /** Run by the shell in the container; healthy when it exits 0. */
  readonly command: string;
  readonly intervalMs?: number;
  readonly timeoutMs?: number;
  readonly retries?: number;
  readonly startPeriodMs?: number;
}

/** What {@link runFlagsOf} maps to `run`'s flags. */
export interface RunOptions {
  /** The command (the image's CMD when absent). */
  readonly command?: readonly string[];
  readonly name?: string;
  /** Return once the container runs (`-d`); otherwise once it ended, with its exit code. */
  readonly detach?: boolean;
  /** Remove the container when it ends (`--rm`). */
  readonly remove?: boolean;
  readonly env?: Readonly<Record<string, string>>;
  readonly workdir?: string;
  /** `uid[:gid]` or `name[:group]`. */
  readonly user?: string;
  readonly entrypoint?: string;
  readonly hostname?: string;
  /** `default` (a bridge as root), `none`, `host`, `container:NAME` or a network's name. */
  readonly network?: string;
  readonly publish?: readonly PortMapping[];
  readonly volumes?: readonly VolumeMount[];
  readonly tmpfs?: readonly TmpfsMount[];
  readonly readOnly?: boolean;
  /** Bytes. */
  readonly memory?: number;
  /** Bytes of memory plus swap; -1 for unlimited. */
  readonly memorySwap?: number;
  readonly cpus?: number;
  readonly cpuShares?: number;
  readonly pidsLimit?: number;
  /** Capability names with or without `CAP_`, or `ALL`. */
  readonly capAdd?: readonly string[];
  readonly capDrop?: readonly string[];
  readonly privileged?: boolean;
  readonly noNewPrivileges?: boolean;
  readonly labels?: Readonly<Record<string, string>>;
  readonly restart?: "no" | "always" | "unless-stopped" | "on-failure" | `on-failure:${number}`;
  /** `--init`: a small init as PID 1. */
  readonly init?: boolean;
  readonly stopSignal?: string;
  readonly stopTimeoutSec?: number;
  readonly health?: HealthCheck;
  /** `missing` (default), `always` or `never`. */
  readonly pull?: "missing" | "always" | "never";
}

const bytes = (n: number) => String(Math.floor(n));
const ms = (n: number) => `${Math.floor(n)}ms`;

/** `run`'s flags for `o`, as the command line would spell them. */
export function runFlagsOf(o: RunOptions): RunFlags & HealthFlags {
  const f: RunFlags & HealthFlags = { network: o.network ?? "default" };
  if (o.name !== undefined) f.name = o.name;
  if (o.detach) f.detach = true;
  if (o.remove) f.rm = true;
  if (o.env) f.env = Object.entries(o.env).map(([k, v]) => `${k}=${v}`);
  if (o.workdir !== undefined) f.workdir = o.workdir;
  if (o.user !== undefined) f.user = o.user;
  if (o.entrypoint !== undefined) f.entrypoint = o.entrypoint;
  if (o.hostname !== undefined) f.hostname = o.hostname;
  if (o.publish) {
    f.publish = o.publish.map((p) => {
      const host = p.hostIp !== undefined
        ? `${p.hostIp.includes(":") ? `[${p.hostIp}]` : p.hostIp}:${p.host ?? ""}:`
        : p.host !== undefined
        ? `${p.host}:`
        : "";
      return `${host}${p.container}${p.protocol ? `/${p.protocol}` : ""}`;
    });
  }
  if (o.volumes) {
    f.volume = o.volumes.map((v) => `${v.source}:${v.target}${v.readOnly ? ":ro" : ""}`);
  }
  if (o.tmpfs) {
    f.tmpfs = o.tmpfs.map((t) => t.size === undefined ? t.target : `${t.target}:size=${t.size}`);
  }
  if (o.readOnly) f.readOnly = true;
  if (o.memory !== undefined) f.memory = bytes(o.memory);
  if (o.memorySwap !== undefined) f.memorySwap = o.memorySwap < 0 ? "-1" : bytes(o.memorySwap);
  if (o.cpus !== undefined) f.cpus = String(o.cpus);
  if (o.cpuShares !== undefined) f.cpuShares = String(o.cpuShares);
  if (o.pidsLimit !== undefined) f.pidsLimit = String(o.pidsLimit);
  if (o.capAdd) f.capAdd = [...o.capAdd];
  if (o.capDrop) f.capDrop = [...o.capDrop];
  if (o.privileged) f.privileged = true;
  if (o.noNewPrivileges) f.securityOpt = ["no-new-privileges"];
  if (o.labels) f.label = Object.entries(o.labels).map(([k, v]) => `${k}=${v}`);
  if (o.restart !== undefined) f.restart = o.restart;
  if (o.init) f.init = true;
  if (o.stopSignal !== undefined) f.stopSignal = o.stopSignal;
  if (o.stopTimeoutSec !== undefined) f.stopTimeout = String(o.stopTimeoutSec);
  if (o.pull !== undefined) f.pull = o.pull;
  const h = o.health;
  if (h) {
    f.healthCmd = h.command;
    if (h.intervalMs !== undefined) f.healthInterval = ms(h.intervalMs);
    if (h.timeoutMs !== undefined) f.healthTimeout = ms(h.timeoutMs);
    if (h.retries !== undefined) f.healthRetries = String(h.retries);
    if (h.startPeriodMs !== undefined) f.healthStartPeriod = ms(h.startPeriodMs);
  }
  return f;
}
