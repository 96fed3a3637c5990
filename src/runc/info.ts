/**
 * The commands that adjust or describe: update, features, spec (state, list and ps, which
 * podman and containerd call on every container, are in query.ts, which loads less).
 *
 * @module
 */
import { SUPPORTED_SECCOMP_FLAGS } from "../runtime/oci_seccomp_flags.ts";
import type { Resources, Spec } from "../oci/spec.ts";
import { TsboxError } from "../errors.ts";
import { devMounts } from "../runtime/defaults.ts";
import { resourceLimits } from "../runtime/oci_config.ts";
import { CAPABILITIES, DEFAULT_DEVICE_RULES } from "../runtime/security.ts";
import { type RuncContext, str } from "./context.ts";
import { cgroupOf, checkId, readRecord } from "./state.ts";

function bytes(v: string): number {
  const m = /^(-?[0-9]+)([kmg]?)b?$/i.exec(v.trim());
  if (!m) throw new TsboxError(`invalid size ${v}`);
  const mult =
    { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2].toLowerCase() as "" | "k" | "m" | "g"];
  return Number(m[1]) * mult;
}

/** `update --resources FILE|- ID` (and runc's single-value flags). */
export async function update(ctx: RuncContext): Promise<number> {
  const rec = await readRecord(ctx.root, checkId(ctx.args[0]));
  let r: Resources = {};
  const file = str(ctx.flags, "resources");
  if (file) {
    const text = file === "-"
      ? await new Response(Deno.stdin.readable).text()
      : await Deno.readTextFile(file);
    try {
      r = JSON.parse(text);
    } catch (err) {
      throw new TsboxError(`--resources: not JSON: ${(err as Error).message}`);
    }
    if (typeof r !== "object" || r === null) throw new TsboxError("--resources: not an object");
  }
  const f = (n: string) => str(ctx.flags, n);
  r = {
    ...r,
    memory: {
      ...r.memory,
      ...(f("memory") ? { limit: bytes(f("memory")!) } : {}),
      ...(f("memory-swap") ? { swap: bytes(f("memory-swap")!) } : {}),
      ...(f("memory-reservation") ? { reservation: bytes(f("memory-reservation")!) } : {}),
    },
    cpu: {
      ...r.cpu,
      ...(f("cpu-shares") ? { shares: Number(f("cpu-shares")) } : {}),
      ...(f("cpu-quota") ? { quota: Number(f("cpu-quota")) } : {}),
      ...(f("cpu-period") ? { period: Number(f("cpu-period")) } : {}),
      ...(f("cpuset-cpus") ? { cpus: f("cpuset-cpus") } : {}),
      ...(f("cpuset-mems") ? { mems: f("cpuset-mems") } : {}),
    },
    ...(f("pids-limit")
      ? { pids: { limit: Number(f("pids-limit")) } }
      : r.pids
      ? { pids: r.pids }
      : {}),
  };
  // Device rules are set once at create; update changes the limits only (as runc on v1).
  const limits = resourceLimits({ linux: { resources: { ...r, devices: [] } } } as unknown as Spec);
  await cgroupOf(rec, "update").apply({ ...limits, devices: [] });
  return 0;
}

/** `features`: what this runtime supports (runtime-spec features.json). */
export function features(): number {
  const caps = Object.keys(CAPABILITIES).map((c) => `CAP_${c}`);
  console.log(JSON.stringify(
    {
      ociVersionMin: "1.0.0",
      ociVersionMax: "1.1.0",
      hooks: [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
      ],
      mountOptions: [
        "async",
        "atime",
        "bind",
        "defaults",
        "dev",
        "diratime",
        "dirsync",
        "exec",
        "mand",
        "noatime",
        "nodev",
        "nodiratime",
        "noexec",
        "nomand",
        "norelatime",
        "nostrictatime",
        "nosuid",
        "nosymfollow",
        "private",
        "rbind",
        "relatime",
        "remount",
        "ro",
        "rprivate",
        "rshared",
        "rslave",
        "runbindable",
        "rw",
        "shared",
        "slave",
        "strictatime",
        "suid",
        "symfollow",
        "sync",
        "tmpcopyup",
        "unbindable",
      ],
      linux: {
        namespaces: ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
        capabilities: caps,
        cgroup: { v1: true, v2: true, systemd: false, systemdUser: false },
        seccomp: {
          enabled: true,
          supportedFlags: SUPPORTED_SECCOMP_FLAGS,
          actions: [
            "SCMP_ACT_ALLOW",
            "SCMP_ACT_ERRNO",
            "SCMP_ACT_KILL",
            "SCMP_ACT_KILL_PROCESS",
            "SCMP_ACT_KILL_THREAD",
            "SCMP_ACT_LOG",
            "SCMP_ACT_TRAP",
            "SCMP_ACT_TRACE",
          ],
          operators: [
            "SCMP_CMP_EQ",
            "SCMP_CMP_GE",
            "SCMP_CMP_GT",
            "SCMP_CMP_LE",
            "SCMP_CMP_LT",
            "SCMP_CMP_MASKED_EQ",
            "SCMP_CMP_NE",
          ],
          archs: ["SCMP_ARCH_X86_64"],
        },
        apparmor: { enabled: false },
        selinux: { enabled: false },
      },
      annotations: { "io.github.tsbox.runtime": "tsbox" },
    },
    null,
    "    ",
  ));
  return 0;
}

/** `spec [--bundle DIR]`: writes runc's default config.json (fails if one exists). */
export async function spec(ctx: RuncContext): Promise<number> {
  const dir = str(ctx.flags, "bundle") ?? ".";
  const path = `${dir}/config.json`;
  try {
    await Deno.lstat(path);
    throw new TsboxError(`File ${path} exists. Remove it first`);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  const base = defaultSpec();
  const written = ctx.flags.rootless === true ? toRootless(base) : base;
  await Deno.writeTextFile(path, JSON.stringify(written, null, "\t") + "\n");
  return 0;
}

const DEFAULT_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

/**
 * runc's `spec --rootless` changes: no network namespace, a user namespace mapping this user's
 * uid and gid to 0, the host's /sys bound instead of a sysfs (a user namespace that does not
 * own the network namespace may not mount one), no uid=/gid= mount options (ids that are not
 * mapped), no resources (no cgroup may be writable).
 */
export function toRootless(spec: Spec, uid = Deno.uid() ?? 0, gid = Deno.gid() ?? 0): Spec {
  return {
    ...spec,
    mounts: (spec.mounts ?? []).map((m) =>
      m.destination.replace(/\/+$/, "") === "/sys"
        ? {
          destination: "/sys",
          type: "none",
          source: "/sys",
          options: ["rbind", "nosuid", "noexec", "nodev", "ro"],
        }
        : { ...m, options: m.options?.filter((o) => !/^[ug]id=/.test(o)) }
    ),
    linux: {
      ...spec.linux,
      resources: undefined,
      namespaces: [
        ...(spec.linux.namespaces ?? []).filter((n) => n.type !== "network" && n.type !== "user"),
        { type: "user" },
      ],
      uidMappings: [{ containerID: 0, hostID: uid, size: 1 }],
      gidMappings: [{ containerID: 0, hostID: gid, size: 1 }],
    },
  };
}

/** runc's `spec` output. */
export function defaultSpec(): Spec {
  return {
    ociVersion: "1.0.2-dev",
    process: {
      terminal: true,
      user: { uid: 0, gid: 0 },
      args: ["sh"],
      env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
      cwd: "/",
      capabilities: {
        bounding: DEFAULT_CAPS,
        effective: DEFAULT_CAPS,
        permitted: DEFAULT_CAPS,
        ambient: DEFAULT_CAPS,
      } as Spec["process"]["capabilities"],
      rlimits: [{ type: "RLIMIT_NOFILE", hard: 1024, soft: 1024 }],
      noNewPrivileges: true,
    },
    root: { path: "rootfs", readonly: true },
    hostname: "runc",
    mounts: [
      { destination: "/proc", type: "proc", source: "proc" },
      ...devMounts(),
      {
        destination: "/dev/shm",
        type: "tmpfs",
        source: "shm",
        options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
      },
      {
        destination: "/dev/mqueue",
        type: "mqueue",
        source: "mqueue",
        options: ["nosuid", "noexec", "nodev"],
      },
      {
        destination: "/sys",
        type: "sysfs",
        source: "sysfs",
        options: ["nosuid", "noexec", "nodev", "ro"],
      },
      {
        destination: "/sys/fs/cgroup",
        type: "cgroup",
        source: "cgroup",
        options: ["nosuid", "noexec", "nodev", "relatime", "ro"],
      },
    ],
    linux: {
      resources: { devices: [{ allow: false, access: "rwm" }] },
      namespaces: [{ type: "pid" }, { type: "network" }, { type: "ipc" }, { type: "uts" }, {
        type: "mount",
      }],
      maskedPaths: [
        "/proc/acpi",
        "/proc/asound",
        "/proc/kcore",
        "/proc/keys",
        "/proc/latency_stats",
        "/proc/timer_list",
        "/proc/timer_stats",
        "/proc/sched_debug",
        "/sys/firmware",
        "/proc/scsi",
      ],
      readonlyPaths: ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
    },
  };
}

/** For tests: the default device rules runc allows without being asked. */
export const IMPLICIT_DEVICE_RULES = DEFAULT_DEVICE_RULES;
