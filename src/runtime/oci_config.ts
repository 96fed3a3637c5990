/**
 * An OCI bundle's `config.json` read as hostile input: shapes checked field by field (a wrong
 * type is an error naming the field, never a crash later), paths checked to be absolute where
 * the spec says so, and the parts the runtime needs derived from it: root path, namespaces
 * (new ones as clone flags, joined ones by path), capability sets, rlimits, cgroup limits.
 * Pure apart from {@link readBundleConfig}, so that it is tested without root.
 *
 * @module
 */
import { RLIM_INFINITY, RLIMIT } from "../../ffi/security.ts";
import type { IdMapping, NamespaceType, Process, Spec } from "../oci/spec.ts";
import { TsboxError } from "../errors.ts";
import type { ResourceLimits } from "./cgroups.ts";
import type { BlkioThrottle } from "./cgroup_extra.ts";
import {
  CAPABILITIES,
  DEFAULT_DEVICE_RULES,
  deviceRuleLine,
  type RlimitSetting,
} from "./security.ts";

/** A config.json that cannot be run as written. */
export class OciConfigError extends TsboxError {
  constructor(message: string) {
    super(`config.json: ${message}`);
    this.name = "OciConfigError";
  }
}

/** The most a config.json may weigh (seccomp profiles make them large; 4 MiB is plenty). */
export const MAX_CONFIG_BYTES = 4 << 20;

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function need(cond: boolean, field: string, what: string): void {
  if (!cond) throw new OciConfigError(`${field} must be ${what}`);
}

function optString(o: Json, key: string, field: string): void {
  need(o[key] === undefined || typeof o[key] === "string", `${field}.${key}`, "a string");
}

function stringArray(v: unknown, field: string): void {
  need(
    v === undefined || v === null || (Array.isArray(v) && v.every((s) => typeof s === "string")),
    field,
    "an array of strings",
  );
}

function uint(v: unknown, field: string): void {
  need(typeof v === "number" && Number.isInteger(v) && v >= 0, field, "a non-negative integer");
}

function optUint(v: unknown, field: string): void {
  if (v !== undefined && v !== null) uint(v, field);
}

function absolute(path: unknown, field: string): void {
  need(typeof path === "string" && path.startsWith("/"), field, "an absolute path");
}

const NAMESPACE_TYPES: readonly NamespaceType[] = [
  "pid",
  "network",
  "mount",
  "ipc",
  "uts",
  "user",
  "cgroup",
  "time",
];

/** Checks `raw` against the shapes the runtime reads; returns it typed. */
export function validateSpec(raw: unknown): Spec {
  need(isObject(raw), "the document", "a JSON object");
  const s = raw as Json;
  need(typeof s.ociVersion === "string", "ociVersion", "a string");
  need(/^1\./.test(s.ociVersion as string), "ociVersion", "1.x");
  need(isObject(s.root), "root", "an object");
  const root = s.root as Json;
  need(typeof root.path === "string" && root.path !== "", "root.path", "a non-empty string");
  need(
    root.readonly === undefined || typeof root.readonly === "boolean",
    "root.readonly",
    "a boolean",
  );
  need(isObject(s.process), "process", "an object");
  validateProcess(s.process as Json, "process");
  optString(s, "hostname", "");
  optString(s, "domainname", "");
  need(s.mounts === undefined || Array.isArray(s.mounts), "mounts", "an array");
  ((s.mounts ?? []) as unknown[]).forEach((m, i) => {
    const f = `mounts[${i}]`;
    need(isObject(m), f, "an object");
    const mo = m as Json;
    absolute(mo.destination, `${f}.destination`);
    optString(mo, "source", f);
    optString(mo, "type", f);
    stringArray(mo.options, `${f}.options`);
  });
  need(s.annotations === undefined || isObject(s.annotations), "annotations", "an object");
  for (const [k, v] of Object.entries((s.annotations ?? {}) as Json)) {
    need(typeof v === "string", `annotations.${k}`, "a string");
  }
  need(s.hooks === undefined || s.hooks === null || isObject(s.hooks), "hooks", "an object");
  for (const [point, list] of Object.entries((s.hooks ?? {}) as Json)) {
    need(list === null || Array.isArray(list), `hooks.${point}`, "an array");
    ((list ?? []) as unknown[]).forEach((h, i) => {
      const f = `hooks.${point}[${i}]`;
      need(isObject(h), f, "an object");
      absolute((h as Json).path, `${f}.path`);
      stringArray((h as Json).args, `${f}.args`);
      stringArray((h as Json).env, `${f}.env`);
      optUint((h as Json).timeout, `${f}.timeout`);
    });
  }
  need(s.linux === undefined || isObject(s.linux), "linux", "an object");
  validateLinux((s.linux ?? {}) as Json);
  return { ...(s as unknown as Spec), linux: (s.linux ?? {}) as Spec["linux"] };
}

/** Checks a `process` object (config.json's, or `exec --process`'s file). */
export function validateProcess(p: Json, field: string): Process {
  need(isObject(p.user), `${field}.user`, "an object");
  const u = p.user as Json;
  uint(u.uid, `${field}.user.uid`);
  uint(u.gid, `${field}.user.gid`);
  optUint(u.umask, `${field}.user.umask`);
  need(
    u.additionalGids === undefined || u.additionalGids === null ||
      (Array.isArray(u.additionalGids) &&
        u.additionalGids.every((g) => Number.isInteger(g) && g >= 0)),
    `${field}.user.additionalGids`,
    "an array of non-negative integers",
  );
  need(
    Array.isArray(p.args) && p.args.length > 0 && p.args.every((a) => typeof a === "string"),
    `${field}.args`,
    "a non-empty array of strings",
  );
  stringArray(p.env, `${field}.env`);
  absolute(p.cwd, `${field}.cwd`);
  need(
    p.terminal === undefined || typeof p.terminal === "boolean",
    `${field}.terminal`,
    "a boolean",
  );
  if (p.consoleSize !== undefined && p.consoleSize !== null) {
    need(isObject(p.consoleSize), `${field}.consoleSize`, "an object");
    uint((p.consoleSize as Json).height, `${field}.consoleSize.height`);
    uint((p.consoleSize as Json).width, `${field}.consoleSize.width`);
  }
  if (p.capabilities !== undefined && p.capabilities !== null) {
    need(isObject(p.capabilities), `${field}.capabilities`, "an object");
    for (const [set, list] of Object.entries(p.capabilities as Json)) {
      stringArray(list, `${field}.capabilities.${set}`);
    }
  }
  need(
    p.rlimits === undefined || p.rlimits === null || Array.isArray(p.rlimits),
    `${field}.rlimits`,
    "an array",
  );
  ((p.rlimits ?? []) as unknown[]).forEach((r, i) => {
    need(isObject(r), `${field}.rlimits[${i}]`, "an object");
    need(typeof (r as Json).type === "string", `${field}.rlimits[${i}].type`, "a string");
    uint((r as Json).soft, `${field}.rlimits[${i}].soft`);
    uint((r as Json).hard, `${field}.rlimits[${i}].hard`);
  });
  need(
    p.noNewPrivileges === undefined || typeof p.noNewPrivileges === "boolean",
    `${field}.noNewPrivileges`,
    "a boolean",
  );
  need(
    p.oomScoreAdj === undefined || p.oomScoreAdj === null ||
      (Number.isInteger(p.oomScoreAdj) && Math.abs(p.oomScoreAdj as number) <= 1000),
    `${field}.oomScoreAdj`,
    "an integer in -1000..1000",
  );
  return p as unknown as Process;
}

function validateLinux(l: Json): void {
  need(
    l.namespaces === undefined || l.namespaces === null || Array.isArray(l.namespaces),
    "linux.namespaces",
    "an array",
  );
  const seen = new Set<string>();
  ((l.namespaces ?? []) as unknown[]).forEach((n, i) => {
    const f = `linux.namespaces[${i}]`;
    need(isObject(n), f, "an object");
    const t = (n as Json).type;
    need(
      NAMESPACE_TYPES.includes(t as NamespaceType),
      `${f}.type`,
      `one of ${NAMESPACE_TYPES.join(", ")}`,
    );
    if (seen.has(t as string)) throw new OciConfigError(`${f}: namespace ${t} listed twice`);
    seen.add(t as string);
    if ((n as Json).path !== undefined) absolute((n as Json).path, `${f}.path`);
  });
  for (const key of ["uidMappings", "gidMappings"]) {
    need(
      l[key] === undefined || l[key] === null || Array.isArray(l[key]),
      `linux.${key}`,
      "an array",
    );
    ((l[key] ?? []) as unknown[]).forEach((m, i) => {
      need(isObject(m), `linux.${key}[${i}]`, "an object");
      for (const k of ["containerID", "hostID", "size"]) {
        uint((m as Json)[k], `linux.${key}[${i}].${k}`);
      }
    });
  }
  need(
    l.devices === undefined || l.devices === null || Array.isArray(l.devices),
    "linux.devices",
    "an array",
  );
  ((l.devices ?? []) as unknown[]).forEach((d, i) => {
    const f = `linux.devices[${i}]`;
    need(isObject(d), f, "an object");
    const dv = d as Json;
    absolute(dv.path, `${f}.path`);
    need(["c", "b", "u", "p"].includes(dv.type as string), `${f}.type`, "c, b, u or p");
    if (dv.type !== "p") {
      uint(dv.major, `${f}.major`);
      uint(dv.minor, `${f}.minor`);
    }
    optUint(dv.fileMode, `${f}.fileMode`);
    optUint(dv.uid, `${f}.uid`);
    optUint(dv.gid, `${f}.gid`);
  });
  optString(l, "cgroupsPath", "linux");
  stringArray(l.maskedPaths, "linux.maskedPaths");
  stringArray(l.readonlyPaths, "linux.readonlyPaths");
  for (const p of [...(l.maskedPaths ?? []) as string[], ...(l.readonlyPaths ?? []) as string[]]) {
    absolute(p, "linux.maskedPaths/readonlyPaths entries");
  }
  need(
    l.sysctl === undefined || l.sysctl === null || isObject(l.sysctl),
    "linux.sysctl",
    "an object",
  );
  for (const [k, v] of Object.entries((l.sysctl ?? {}) as Json)) {
    need(typeof v === "string", `linux.sysctl.${k}`, "a string");
    need(
      /^[A-Za-z0-9_-]+([./][A-Za-z0-9_-]+)*$/.test(k),
      `linux.sysctl key ${k}`,
      "a sysctl name",
    );
  }
  if (l.seccomp !== undefined && l.seccomp !== null) {
    need(isObject(l.seccomp), "linux.seccomp", "an object");
    const sc = l.seccomp as Json;
    need(typeof sc.defaultAction === "string", "linux.seccomp.defaultAction", "a string");
    need(
      sc.syscalls === undefined || sc.syscalls === null || Array.isArray(sc.syscalls),
      "linux.seccomp.syscalls",
      "an array",
    );
  }
  if (l.resources !== undefined && l.resources !== null) {
    need(isObject(l.resources), "linux.resources", "an object");
  }
  optString(l, "rootfsPropagation", "linux");
}

/** Reads and checks `<bundle>/config.json`. */
export function readBundleConfig(bundle: string): Spec {
  const path = `${bundle}/config.json`;
  let text: string;
  try {
    const info = Deno.statSync(path);
    if (info.size > MAX_CONFIG_BYTES) {
      throw new OciConfigError(`${path} is larger than ${MAX_CONFIG_BYTES} bytes`);
    }
    text = Deno.readTextFileSync(path);
  } catch (err) {
    if (err instanceof OciConfigError) throw err;
    throw new OciConfigError(`cannot read ${path}: ${(err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new OciConfigError(`not JSON: ${(err as Error).message}`);
  }
  return validateSpec(raw);
}

/** `root.path` as a host path: relative ones are relative to the bundle. */
export function rootPath(bundle: string, spec: Spec): string {
  const p = spec.root.path;
  return p.startsWith("/") ? p : `${bundle.replace(/\/+$/, "")}/${p}`;
}

/** clone(2) flags of the namespace types. */
export const CLONE_FLAGS: Readonly<Record<NamespaceType, number>> = {
  mount: 0x00020000,
  cgroup: 0x02000000,
  uts: 0x04000000,
  ipc: 0x08000000,
  user: 0x10000000,
  pid: 0x20000000,
  network: 0x40000000,
  time: 0x00000080,
};

/** What the container's namespaces are: new ones by clone flag, joined ones by path. */
export interface NamespacePlan {
  /** CLONE_NEW* of the new namespaces (time is unshared separately, so not here). */
  readonly cloneFlags: number;
  /** Namespaces joined by path, user first (it owns the others), pid apart (see `pidPath`). */
  readonly joins: readonly { readonly type: NamespaceType; readonly path: string }[];
  /** The PID namespace joined by path (the parent joins it for its children, see exec.ts). */
  readonly pidPath?: string;
  readonly has: (type: NamespaceType) => boolean;
  /** A new cgroup namespace, unshared after the cgroup is joined. */
  readonly newCgroup: boolean;
  /** A new network namespace (then `lo` is brought up). */
  readonly newNetwork: boolean;
  /** A new user namespace (then the id maps are written). */
  readonly newUser: boolean;
  /** A new time namespace (oci_time.ts). */
  readonly newTime: boolean;
}

const JOIN_ORDER: readonly NamespaceType[] = ["user", "ipc", "uts", "network", "cgroup", "mount"];

/** Reads `linux.namespaces`. A user namespace joined by path is refused (not implemented). */
export function namespacePlan(spec: Spec): NamespacePlan {
  const list = spec.linux.namespaces ?? [];
  let cloneFlags = 0;
  const joins: { type: NamespaceType; path: string }[] = [];
  let pidPath: string | undefined;
  for (const n of list) {
    if (n.path) {
      if (n.type === "user") {
        throw new OciConfigError("joining a user namespace by path is not supported");
      }
      if (n.type === "time") throw new OciConfigError("joining a time namespace is not supported");
      if (n.type === "pid") pidPath = n.path;
      else joins.push({ type: n.type, path: n.path });
    } else if (n.type !== "cgroup" && n.type !== "time") {
      cloneFlags |= CLONE_FLAGS[n.type];
    }
  }
  if (!list.some((n) => n.type === "mount")) {
    throw new OciConfigError("linux.namespaces must include a mount namespace");
  }
  joins.sort((a, b) => JOIN_ORDER.indexOf(a.type) - JOIN_ORDER.indexOf(b.type));
  const isNew = (t: NamespaceType) => list.some((n) => n.type === t && !n.path);
  if (isNew("user") && !(spec.linux.uidMappings?.length && spec.linux.gidMappings?.length)) {
    throw new OciConfigError("a new user namespace needs linux.uidMappings and gidMappings");
  }
  return {
    cloneFlags,
    joins,
    pidPath,
    has: (t) => list.some((n) => n.type === t),
    newCgroup: isNew("cgroup"),
    newNetwork: isNew("network"),
    newUser: isNew("user"),
    newTime: isNew("time"),
  };
}

/** `linux.uidMappings`/`gidMappings` in the runtime's shape (userns.ts). */
export function idMapping(spec: Spec): { uid: IdRangeOut[]; gid: IdRangeOut[] } | undefined {
  const { uidMappings, gidMappings } = spec.linux;
  if (!uidMappings?.length || !gidMappings?.length) return undefined;
  const conv = (m: readonly IdMapping[]) =>
    m.map((r) => ({ inside: r.containerID, outside: r.hostID, count: r.size }));
  return { uid: conv(uidMappings), gid: conv(gidMappings) };
}

/** One range of an id map (userns.ts's IdRange). */
export interface IdRangeOut {
  readonly inside: number;
  readonly outside: number;
  readonly count: number;
}

/** The five capability sets as numbers. */
export interface CapabilitySets {
  readonly bounding: readonly number[];
  readonly effective: readonly number[];
  readonly permitted: readonly number[];
  readonly inheritable: readonly number[];
  readonly ambient: readonly number[];
}

/**
 * `process.capabilities` as numbers. Names this kernel or tsbox does not know are dropped and
 * reported through `warn`, as runc does (a newer engine may list newer capabilities).
 */
export function capabilitySets(
  p: Process,
  lastCap: number,
  warn: (message: string) => void = () => {},
): CapabilitySets {
  const c = p.capabilities ?? {};
  const conv = (list: readonly string[] | undefined | null, set: string) =>
    (list ?? []).flatMap((name) => {
      const n = CAPABILITIES[name.replace(/^CAP_/, "")];
      if (n === undefined || n > lastCap) {
        warn(`ignoring unknown or unsupported capability ${name} in ${set}`);
        return [];
      }
      return [n];
    });
  return {
    bounding: conv(c.bounding, "bounding"),
    effective: conv(c.effective, "effective"),
    permitted: conv(c.permitted, "permitted"),
    inheritable: conv(c.inheritable, "inheritable"),
    ambient: conv(c.ambient, "ambient"),
  };
}

/** uint64 limits travel as JSON numbers: anything at 2^64-1 or above is RLIM_INFINITY. */
function limit(n: number): bigint {
  return n >= 2 ** 64 - 1 ? RLIM_INFINITY : BigInt(n);
}

/** `process.rlimits` for security.ts's rlimitOps. Unknown types are an error. */
export function rlimitSettings(p: Process): RlimitSetting[] {
  return (p.rlimits ?? []).map((r) => {
    const name = r.type.replace(/^RLIMIT_/, "").toLowerCase();
    const resource = RLIMIT[name];
    if (resource === undefined) throw new OciConfigError(`unknown rlimit ${r.type}`);
    if (r.soft > r.hard) throw new OciConfigError(`rlimit ${r.type}: soft limit above hard`);
    return { name, resource, limit: { soft: limit(r.soft), hard: limit(r.hard) } };
  });
}

/**
 * `linux.resources` as the cgroup writer's limits. Device rules are the spec's, followed by
 * the rules for the devices every container gets (/dev/null, ..., the ptys), which runc also
 * allows on its own: engines send only their deny-all and their extra devices.
 */
export function resourceLimits(spec: Spec): ResourceLimits {
  const r = spec.linux.resources ?? {};
  const mem = r.memory ?? {};
  const cpu = r.cpu ?? {};
  const devices = [
    ...(r.devices ?? []).map((d) => ({
      allow: d.allow,
      line: (d.type ?? "a") === "a" && d.major === undefined && d.minor === undefined
        ? "a"
        : `${d.type ?? "a"} ${num(d.major)}:${num(d.minor)} ${d.access || "rwm"}`,
    })),
    ...DEFAULT_DEVICE_RULES.filter((d) => d.allow).map((d) => ({
      allow: true,
      line: deviceRuleLine(d),
    })),
  ];
  const out: Record<string, unknown> = { devices };
  if (typeof mem.limit === "number" && mem.limit > 0) out.memory = mem.limit;
  if (typeof mem.swap === "number" && mem.swap !== 0) out.memorySwap = mem.swap;
  if (typeof mem.reservation === "number" && mem.reservation > 0) {
    out.memoryReservation = mem.reservation;
  }
  if (typeof mem.swappiness === "number") out.memorySwappiness = mem.swappiness;
  if (mem.disableOOMKiller === true) out.oomKillDisable = true;
  if (typeof cpu.shares === "number" && cpu.shares > 0) out.cpuShares = cpu.shares;
  if (typeof cpu.quota === "number" && cpu.quota !== 0) out.cpuQuota = cpu.quota;
  if (typeof cpu.period === "number" && cpu.period > 0) out.cpuPeriod = cpu.period;
  if (typeof cpu.cpus === "string" && cpu.cpus !== "") out.cpusetCpus = cpu.cpus;
  if (typeof cpu.mems === "string" && cpu.mems !== "") out.cpusetMems = cpu.mems;
  if (r.pids && typeof r.pids.limit === "number") out.pidsLimit = r.pids.limit;
  const io = r.blockIO;
  if (typeof io?.weight === "number" && io.weight > 0) out.blkioWeight = io.weight;
  const weights = (io?.weightDevice ?? []).flatMap((w) =>
    typeof w.weight === "number" ? [{ device: `${w.major}:${w.minor}`, weight: w.weight }] : []
  );
  if (weights.length) out.blkioWeightDevices = weights;
  const throttles: BlkioThrottle[] = [];
  for (
    const [kind, list] of [
      ["read_bps", io?.throttleReadBpsDevice],
      ["write_bps", io?.throttleWriteBpsDevice],
      ["read_iops", io?.throttleReadIOPSDevice],
      ["write_iops", io?.throttleWriteIOPSDevice],
    ] as const
  ) {
    for (const t of list ?? []) {
      throttles.push({ kind, device: `${t.major}:${t.minor}`, rate: t.rate });
    }
  }
  if (throttles.length) out.blkioThrottle = throttles;
  return out as ResourceLimits;
}

function num(n: number | undefined | null): string {
  return n === undefined || n === null || n < 0 ? "*" : String(n);
}

export { parseSignal, SIGNALS } from "./oci_signals.ts";
