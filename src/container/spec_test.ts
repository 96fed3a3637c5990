/**
 * docker flags in, OCI spec out: each row parses `run`'s flags as `create` does
 * (create_options.ts), merges them with an image config, maps the record to the spec
 * (spec.ts) and compares the fields the flags decide. Every spec produced also validates against
 * the runtime-spec's JSON schema (tests/fixtures/oci-runtime-spec-v1.1.0). No root needed.
 */
import { Ajv } from "ajv";
import { assertEquals, assertOk } from "../../tests/assert.ts";
import type { ContainerConfig } from "../../registry/manifest.ts";
import type { CapabilityName, Mount, Spec } from "../oci/spec.ts";
import { CAP } from "../runtime/capabilities.ts";
import type { ResourceLimits } from "../runtime/cgroups.ts";
import { startLimits } from "../runtime/container.ts";
import {
  capabilitySets,
  CLONE_FLAGS,
  namespacePlan,
  resourceLimits,
  rlimitSettings,
  validateSpec,
} from "../runtime/oci_config.ts";
import { capabilityNames } from "../runtime/security.ts";
import { USER_ERROR_ANNOTATION } from "../runtime/annotations.ts";
import { specUser } from "./bundle.ts";
import { createOptions, runConfigFor } from "./create_options.ts";
import type { RunFlags } from "./flags.ts";
import { boundingSet } from "./security_flags.ts";
import { ANNOTATION, type HostFacts, specFor } from "./spec.ts";
import type { NamespaceModes } from "./namespaces.ts";

const ID = "0123456789ab" + "c".repeat(52);
const ROOT = "/store";
const DIR = `${ROOT}/containers/${ID}`;
const PASSWD = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n";
const GROUP = "root:x:0:\napp:x:1000:\nextra:x:2000:app\n";
const IMAGE: ContainerConfig = { Env: ["PATH=/usr/bin:/bin"], Cmd: ["sh"], WorkingDir: "/srv" };
const HOST: HostFacts = {
  maskedPaths: ["/proc/kcore", "/proc/keys", "/sys/firmware"],
  readonlyPaths: ["/proc/bus", "/proc/sys"],
  kernel: "6.1.0-18-amd64",
  nofileCeiling: 20000,
  devices: new Map([["/dev/null", { type: "c", major: 1, minor: 3 }]]),
  privilegedDevices: [{ path: "/dev/null", type: "c", major: 1, minor: 3 }],
};

/** The spec `tsbox create FLAGS busybox COMMAND` would write, on a fixed host and image. */
async function specOf(
  flags: Partial<RunFlags>,
  o: {
    image?: ContainerConfig;
    command?: string[];
    networkPath?: string;
    ipcPath?: string;
    pidPath?: string;
    namespaces?: NamespaceModes;
  } = {},
): Promise<Spec> {
  const f: RunFlags = { network: "default", ...flags };
  const options = await createOptions(f, {
    joinContainer: (mode) => `container:${mode.slice("container:".length).padEnd(64, "0")}`,
    ...(o.namespaces ? { namespaces: () => o.namespaces! } : {}),
  });
  const { config } = runConfigFor({
    flags: f,
    options,
    command: o.command ?? [],
    image: o.image ?? IMAGE,
    layers: ["L1"],
    id: ID,
    root: ROOT,
  });
  return specFor({
    id: ID,
    config,
    rootfs: `${DIR}/rootfs`,
    stateDir: DIR,
    user: specUser(config, PASSWD, GROUP),
    host: HOST,
    networkPath: o.networkPath,
    ipcPath: o.ipcPath,
    pidPath: o.pidPath,
  });
}

const DOCKER_CAPS: CapabilityName[] = [
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_FOWNER",
  "CAP_FSETID",
  "CAP_KILL",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETPCAP",
  "CAP_NET_BIND_SERVICE",
  "CAP_NET_RAW",
  "CAP_SYS_CHROOT",
  "CAP_MKNOD",
  "CAP_AUDIT_WRITE",
  "CAP_SETFCAP",
];
const userMounts = (s: Spec): Mount[] => (s.mounts ?? []).slice(9);
const seccompNames = (s: Spec) => (s.linux.seccomp?.syscalls ?? []).flatMap((r) => r.names);
const validate = (() => {
  const dir = new URL("../../tests/fixtures/oci-runtime-spec-v1.1.0/", import.meta.url);
  const ajv = new Ajv({ strict: false, allErrors: true });
  for (const e of Deno.readDirSync(dir)) {
    if (!e.name.endsWith(".json")) continue;
    const schema = JSON.parse(Deno.readTextFileSync(new URL(e.name, dir)));
    // Draft-04 schemas without draft-04-only keywords: ajv's default draft reads them the same.
    delete schema.$schema;
    ajv.addSchema(schema, e.name);
  }
  return ajv.getSchema("config-schema.json")!;
})();

interface Row {
  readonly name: string;
  readonly flags: Partial<RunFlags>;
  readonly command?: string[];
  readonly networkPath?: string;
  readonly ipcPath?: string;
  readonly pidPath?: string;
  readonly namespaces?: NamespaceModes;
  readonly check: (s: Spec) => void;
}

const seccompFile = await Deno.makeTempFile({ suffix: ".json" });
await Deno.writeTextFile(
  seccompFile,
  JSON.stringify({
    defaultAction: "SCMP_ACT_ERRNO",
    defaultErrnoRet: 1,
    architectures: ["SCMP_ARCH_X86_64"],
    syscalls: [
      { names: ["read", "write"], action: "SCMP_ACT_ALLOW" },
      { names: ["mount"], action: "SCMP_ACT_ALLOW", includes: { caps: ["CAP_SYS_ADMIN"] } },
      {
        names: ["personality"],
        action: "SCMP_ACT_ALLOW",
        args: [{ index: 0, value: 8, op: "SCMP_CMP_EQ" }],
      },
    ],
  }),
);

const ROWS: Row[] = [
  {
    name: "no flags: the image's process, docker's defaults",
    flags: {},
    check: (s) => {
      assertEquals(s.process.args, ["sh"]);
      assertEquals(s.process.cwd, "/srv");
      assertEquals(s.process.env, [
        "PATH=/usr/bin:/bin",
        `HOSTNAME=${ID.slice(0, 12)}`,
        "HOME=/root",
      ]);
      assertEquals(s.process.user, { uid: 0, gid: 0, additionalGids: [0] });
      assertEquals(s.process.terminal, false);
      assertEquals(s.process.capabilities?.bounding, DOCKER_CAPS);
      assertEquals(s.process.capabilities?.effective, DOCKER_CAPS);
      assertEquals(s.process.capabilities?.permitted, DOCKER_CAPS);
      assertEquals(s.process.capabilities?.inheritable, undefined);
      assertEquals(s.process.noNewPrivileges, false);
      assertEquals(s.process.rlimits, [{ type: "RLIMIT_NOFILE", soft: 20000, hard: 20000 }]);
      assertEquals(s.root, { path: `${DIR}/rootfs`, readonly: false });
      assertEquals(s.hostname, ID.slice(0, 12));
      assertEquals(s.linux.namespaces?.map((n) => n.type), [
        "pid",
        "ipc",
        "uts",
        "mount",
        "network",
        "cgroup",
      ]);
      assertEquals(s.linux.cgroupsPath, `/tsbox/${ID}`);
      assertEquals(s.linux.maskedPaths, HOST.maskedPaths);
      assertEquals(s.linux.readonlyPaths, HOST.readonlyPaths);
      assertEquals(s.linux.devices, []);
      assertEquals(s.linux.resources?.devices?.[0], { allow: false, type: "a", access: "rwm" });
      assertEquals(s.linux.resources?.memory, undefined);
      assertEquals(s.linux.resources?.pids, undefined);
      assertEquals(s.linux.seccomp?.defaultAction, "SCMP_ACT_ERRNO");
      assertOk(seccompNames(s).includes("read"));
      // docker's default profile: mount only with CAP_SYS_ADMIN, clone with its flags checked.
      assertOk(!seccompNames(s).includes("mount"));
      assertOk(seccompNames(s).includes("clone"));
      assertEquals(s.linux.uidMappings, undefined);
      assertEquals(s.mounts?.map((m) => m.destination), [
        "/proc",
        "/sys",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/dev/mqueue",
        "/etc/hostname",
        "/etc/hosts",
        "/etc/resolv.conf",
      ]);
      assertEquals(s.mounts?.[1].options, ["nosuid", "noexec", "nodev", "ro"]);
      assertEquals(s.mounts?.[4].options, [
        "nosuid",
        "noexec",
        "nodev",
        "mode=1777",
        "size=65536k",
      ]);
      assertEquals(s.mounts?.[6], {
        destination: "/etc/hostname",
        type: "bind",
        source: `${DIR}/hostname`,
        options: ["bind"],
      });
      assertEquals(s.annotations?.[ANNOTATION.network], "private");
    },
  },
  {
    name: "command, -e, --env-file order, -w",
    flags: { env: ["A=1", "PATH=/x"], workdir: "/tmp" },
    command: ["echo", "hi"],
    check: (s) => {
      assertEquals(s.process.args, ["echo", "hi"]);
      assertEquals(s.process.env, ["PATH=/x", `HOSTNAME=${ID.slice(0, 12)}`, "A=1", "HOME=/root"]);
      assertEquals(s.process.cwd, "/tmp");
    },
  },
  {
    name: "-u NAME: ids, groups and HOME from the image's passwd and group",
    flags: { user: "app" },
    check: (s) => {
      assertEquals(s.process.user, { uid: 1000, gid: 1000, additionalGids: [1000, 2000] });
      assertOk(s.process.env?.includes("HOME=/home/app"));
      assertEquals(s.annotations?.[ANNOTATION.user], "app");
    },
  },
  {
    name: "-u UID:GID and --group-add",
    flags: { user: "1234:55", groupAdd: ["extra", "77"] },
    check: (s) => {
      assertEquals(s.process.user, { uid: 1234, gid: 55, additionalGids: [55, 2000, 77] });
      assertOk(s.process.env?.includes("HOME=/"));
    },
  },
  {
    name: "-u an unknown name: a placeholder identity (never root), the error kept",
    flags: { user: "nobody-here" },
    check: (s) => {
      assertEquals(s.process.user, { uid: 65534, gid: 65534 });
      assertOk(s.annotations?.[ANNOTATION.userError]?.includes("unable to find user nobody-here"));
    },
  },
  {
    name: "--cap-add / --cap-drop",
    flags: { capAdd: ["sys_admin"], capDrop: ["CAP_CHOWN", "net_raw"] },
    check: (s) => {
      const caps = s.process.capabilities?.effective ?? [];
      assertOk(caps.includes("CAP_SYS_ADMIN"));
      assertOk(!caps.includes("CAP_CHOWN") && !caps.includes("CAP_NET_RAW"));
      assertEquals(s.process.capabilities?.bounding, caps);
      // The kept CAP_SYS_ADMIN opens docker's default profile up (mount, unshare...).
      assertOk(seccompNames(s).includes("mount"));
    },
  },
  {
    name: "--cap-drop ALL",
    flags: { capDrop: ["ALL"] },
    check: (s) => assertEquals(s.process.capabilities?.effective, []),
  },
  {
    name: "--privileged: every capability, no masks or seccomp, writable /sys, all devices",
    flags: { privileged: true },
    check: (s) => {
      assertEquals(s.process.capabilities?.bounding, capabilityNames(boundingSet()));
      assertEquals(s.linux.maskedPaths, []);
      assertEquals(s.linux.readonlyPaths, []);
      assertEquals(s.linux.seccomp, undefined);
      assertEquals(s.mounts?.[1].options, ["nosuid", "noexec", "nodev", "rw"]);
      assertEquals(s.linux.resources?.devices, [{ allow: true, access: "rwm" }]);
      assertEquals(s.linux.devices?.map((d) => d.path), ["/dev/null"]);
    },
  },
  {
    name: "--read-only",
    flags: { readOnly: true },
    check: (s) => assertEquals(s.root.readonly, true),
  },
  {
    name: "--tmpfs with and without options",
    flags: { tmpfs: ["/run:size=1m,mode=700", "/scratch"] },
    check: (s) =>
      assertEquals(userMounts(s), [
        {
          destination: "/run",
          type: "tmpfs",
          source: "tmpfs",
          options: ["nosuid", "nodev", "size=1m", "mode=700"],
        },
        {
          destination: "/scratch",
          type: "tmpfs",
          source: "tmpfs",
          options: ["nosuid", "nodev", "mode=1777"],
        },
      ]),
  },
  {
    name: "-v bind (ro), -v named volume, -v anonymous volume",
    flags: { volume: ["/host/data:/data:ro", "vol1:/v", "/anon"] },
    check: (s) => {
      const m = userMounts(s);
      assertEquals(m[0], {
        destination: "/data",
        type: "bind",
        source: "/host/data",
        options: ["rbind", "ro"],
      });
      assertEquals(m[1], {
        destination: "/v",
        type: "bind",
        source: `${ROOT}/volumes/vol1/_data`,
        options: ["rbind"],
      });
      assertEquals(m[2].destination, "/anon");
      assertOk(/^\/store\/volumes\/[0-9a-f]{64}\/_data$/.test(m[2].source ?? ""), m[2].source);
    },
  },
  {
    name: "--mount bind (readonly), tmpfs (size, mode), volume",
    flags: {
      mount: [
        "type=bind,source=/etc,target=/hostetc,readonly",
        "type=tmpfs,target=/t,tmpfs-size=1m,tmpfs-mode=1700",
        "type=volume,src=vol2,dst=/w",
      ],
    },
    // Flag order, as tsbox mounts them (mounts are sorted by depth only, stably).
    check: (s) =>
      assertEquals(userMounts(s), [
        { destination: "/hostetc", type: "bind", source: "/etc", options: ["rbind", "ro"] },
        {
          destination: "/t",
          type: "tmpfs",
          source: "tmpfs",
          options: ["nosuid", "nodev", "mode=1700", "size=1048576"],
        },
        {
          destination: "/w",
          type: "bind",
          source: `${ROOT}/volumes/vol2/_data`,
          options: ["rbind"],
        },
      ]),
  },
  {
    name: "--memory, --memory-swap",
    flags: { memory: "64m", memorySwap: "128m" },
    check: (s) => assertEquals(s.linux.resources?.memory, { limit: 64 << 20, swap: 128 << 20 }),
  },
  {
    name: "--cpus, --cpu-shares",
    flags: { cpus: "0.5", cpuShares: "512" },
    check: (s) =>
      assertEquals(s.linux.resources?.cpu, { shares: 512, quota: 50000, period: 100000 }),
  },
  {
    name: "--pids-limit",
    flags: { pidsLimit: "50" },
    check: (s) => assertEquals(s.linux.resources?.pids, { limit: 50 }),
  },
  {
    name: "--ulimit (nofile overrides docker's default, nproc added)",
    flags: { ulimit: ["nofile=100:200", "nproc=10"] },
    check: (s) =>
      assertEquals(s.process.rlimits, [
        { type: "RLIMIT_NOFILE", soft: 100, hard: 200 },
        { type: "RLIMIT_NPROC", soft: 10, hard: 10 },
      ]),
  },
  {
    name: "--device HOST:CONTAINER:PERMS",
    flags: { device: ["/dev/null:/dev/mynull:rw"] },
    check: (s) => {
      assertEquals(s.linux.devices, [
        { type: "c", path: "/dev/mynull", major: 1, minor: 3, fileMode: 0o666, uid: 0, gid: 0 },
      ]);
      assertEquals(s.linux.resources?.devices?.at(-1), {
        allow: true,
        type: "c",
        major: 1,
        minor: 3,
        access: "rw",
      });
    },
  },
  {
    name: "--security-opt no-new-privileges",
    flags: { securityOpt: ["no-new-privileges"] },
    check: (s) => assertEquals(s.process.noNewPrivileges, true),
  },
  {
    name: "--security-opt seccomp=unconfined",
    flags: { securityOpt: ["seccomp=unconfined"] },
    check: (s) => assertEquals(s.linux.seccomp, undefined),
  },
  {
    name: "--security-opt seccomp=FILE: the profile in the spec's form, includes resolved",
    flags: { securityOpt: [`seccomp=${seccompFile}`] },
    check: (s) =>
      assertEquals(s.linux.seccomp, {
        defaultAction: "SCMP_ACT_ERRNO",
        defaultErrnoRet: 1,
        architectures: ["SCMP_ARCH_X86_64"],
        syscalls: [
          { names: ["read", "write"], action: "SCMP_ACT_ALLOW" },
          {
            names: ["personality"],
            action: "SCMP_ACT_ALLOW",
            args: [{ index: 0, value: 8, op: "SCMP_CMP_EQ" }],
          },
        ],
      }),
  },
  {
    name: "--hostname",
    flags: { hostname: "web" },
    check: (s) => {
      assertEquals(s.hostname, "web");
      assertOk(s.process.env?.includes("HOSTNAME=web"));
    },
  },
  {
    name: "--network none: a namespace of its own",
    flags: { network: "none" },
    check: (s) => {
      assertEquals(s.linux.namespaces?.filter((n) => n.type === "network"), [{ type: "network" }]);
      assertEquals(s.annotations?.[ANNOTATION.network], "none");
    },
  },
  {
    name: "--network host: no network namespace",
    flags: { network: "host" },
    check: (s) => assertEquals(s.linux.namespaces?.filter((n) => n.type === "network"), []),
  },
  {
    name: "--network container:X: X's namespace joined by path",
    flags: { network: "container:abc" },
    networkPath: "/proc/42/ns/net",
    check: (s) =>
      assertEquals(s.linux.namespaces?.filter((n) => n.type === "network"), [
        { type: "network", path: "/proc/42/ns/net" },
      ]),
  },
  {
    name: "--ipc host --pid host --uts host --cgroupns host: those kinds left out",
    flags: {},
    namespaces: { ipc: "host", pid: "host", uts: "host", cgroupns: "host" },
    check: (s) => assertEquals(s.linux.namespaces, [{ type: "mount" }, { type: "network" }]),
  },
  {
    name: "--ipc container:X --pid container:X: X's namespaces joined by path",
    flags: {},
    namespaces: { ipc: `container:${"a".repeat(64)}`, pid: `container:${"a".repeat(64)}` },
    ipcPath: "/proc/42/ns/ipc",
    pidPath: "/proc/42/ns/pid",
    check: (s) =>
      assertEquals(s.linux.namespaces, [
        { type: "pid", path: "/proc/42/ns/pid" },
        { type: "ipc", path: "/proc/42/ns/ipc" },
        { type: "uts" },
        { type: "mount" },
        { type: "network" },
        { type: "cgroup" },
      ]),
  },
  {
    name: "-t, --shm-size, --sysctl",
    flags: { tty: true, shmSize: "1m", sysctl: ["net.ipv4.ip_forward=1"] },
    check: (s) => {
      assertEquals(s.process.terminal, true);
      assertOk(s.process.env?.includes("TERM=xterm"));
      assertEquals(s.mounts?.[4].options?.at(-1), "size=1024k");
      assertEquals(s.linux.sysctl, { "net.ipv4.ip_forward": "1" });
    },
  },
];

for (const row of ROWS) {
  Deno.test(`spec: ${row.name}`, async () => {
    const spec = await specOf(row.flags, row);
    row.check(spec);
    assertOk(validate(spec), JSON.stringify(validate.errors));
  });
}

Deno.test("spec: --userns-remap: the mapping as uidMappings/gidMappings and a user namespace", async () => {
  const f: RunFlags = { network: "default" };
  const options = await createOptions(f, {});
  const range = [{ inside: 0, outside: 100000, count: 65536 }];
  const { config } = runConfigFor({
    flags: f,
    options: { ...options, security: { ...options.security, userns: { uid: range, gid: range } } },
    command: [],
    image: IMAGE,
    layers: [],
    id: ID,
    root: ROOT,
  });
  const spec = specFor({
    id: ID,
    config,
    rootfs: "/r",
    stateDir: DIR,
    user: specUser(config, PASSWD, GROUP),
    host: HOST,
  });
  assertEquals(spec.linux.uidMappings, [{ containerID: 0, hostID: 100000, size: 65536 }]);
  assertEquals(spec.linux.gidMappings, [{ containerID: 0, hostID: 100000, size: 65536 }]);
  assertOk(spec.linux.namespaces?.some((n) => n.type === "user"));
  assertOk(validate(spec), JSON.stringify(validate.errors));
});

Deno.test("spec: the schema refuses what the spec forbids (the validator is live)", async () => {
  const spec = await specOf({});
  assertOk(!validate({ ...spec, process: { ...spec.process, user: { uid: -1, gid: 0 } } }));
  assertOk(!validate({ ...spec, linux: { ...spec.linux, rootfsPropagation: "rprivate" } }));
});

Deno.test("spec: --init: the init is PID 1 in front of the command, bound read-only", async () => {
  Deno.env.set("TSBOX_INIT", "/bin/sh"); // any executable stands for catatonit here
  try {
    const spec = await specOf({ init: true }, { command: ["echo", "hi"] });
    assertEquals(spec.process.args, ["/dev/init", "--", "echo", "hi"]);
    assertEquals(spec.mounts?.find((m) => m.destination === "/dev/init"), {
      destination: "/dev/init",
      type: "bind",
      source: "/bin/sh",
      options: ["bind", "ro", "nosuid", "nodev"],
    });
    assertEquals(spec.annotations?.[ANNOTATION.init], "/bin/sh");
    assertOk(validate(spec), JSON.stringify(validate.errors));
  } finally {
    Deno.env.delete("TSBOX_INIT");
  }
});

/** The cgroup limits a start of `spec` writes, the device rules aside. */
function limitsOf(spec: Spec): ResourceLimits {
  const { devices: _, ...limits } = startLimits(spec);
  return limits;
}

Deno.test("spec -> runtime: the runtime's reader gives back what the flags asked for", async () => {
  const f: RunFlags = {
    network: "none",
    user: "app",
    groupAdd: ["77"],
    capAdd: ["SYS_ADMIN"],
    memory: "64m",
    memorySwap: "-1",
    cpus: "0.5",
    pidsLimit: "9",
    ulimit: ["nproc=10:20", "core=unlimited"],
    device: ["/dev/null:/dev/mynull"],
    securityOpt: ["no-new-privileges"],
    readOnly: true,
    tmpfs: ["/run:size=1m"],
    volume: ["/srv/data:/data:ro"],
    shmSize: "1m",
    sysctl: ["net.ipv4.ip_forward=1"],
  };
  // Read as `tsbox runc` reads a bundle: every field checked.
  const spec = validateSpec(
    JSON.parse(JSON.stringify(await specOf(f, { command: ["echo", "hi"] }))),
  );
  assertEquals(spec.process.args, ["echo", "hi"]);
  assertEquals([spec.process.cwd, spec.process.user, spec.hostname], ["/srv", {
    uid: 1000,
    gid: 1000,
    additionalGids: [1000, 2000, 77],
  }, ID.slice(0, 12)]);
  const ns = namespacePlan(spec);
  assertEquals([ns.newNetwork, ns.newUser, ns.newCgroup, ns.joins], [true, false, true, []]);
  assertEquals(limitsOf(spec), { memory: 64 << 20, memorySwap: -1, cpus: 0.5, pidsLimit: 9 });
  assertEquals(spec.mounts?.slice(-2), [
    { destination: "/data", type: "bind", source: "/srv/data", options: ["rbind", "ro"] },
    {
      destination: "/run",
      type: "tmpfs",
      source: "tmpfs",
      options: ["nosuid", "nodev", "size=1m"],
    },
  ]);
  assertEquals(spec.root.readonly, true);
  assertEquals(spec.linux.sysctl, { "net.ipv4.ip_forward": "1" });
  const caps = capabilitySets(spec.process, 40);
  assertOk(caps.bounding.includes(CAP.SYS_ADMIN) && !caps.bounding.includes(CAP.SYS_MODULE));
  assertEquals(caps.effective, caps.bounding);
  assertEquals([caps.inheritable, caps.ambient], [[], []]);
  assertEquals(spec.linux.maskedPaths, HOST.maskedPaths);
  assertEquals(spec.process.noNewPrivileges, true);
  assertEquals(spec.linux.devices?.map((d) => [d.path, d.type, d.major, d.minor]), [
    ["/dev/mynull", "c", 1, 3],
  ]);
  const rules = resourceLimits(spec).devices ?? [];
  assertEquals(rules[0], { allow: false, line: "a" });
  assertOk(rules.some((r) => r.allow && r.line === "c 1:3 rwm"), JSON.stringify(rules));
  assertEquals(rlimitSettings(spec.process).map((l) => [l.name, l.limit.soft, l.limit.hard]), [
    ["nofile", 20000n, 20000n],
    ["nproc", 10n, 20n],
    ["core", 0xffffffffffffffffn, 0xffffffffffffffffn],
  ]);
  assertEquals(spec.linux.seccomp?.defaultAction, "SCMP_ACT_ERRNO");
});

Deno.test("spec -> runtime: --init, --privileged, host network, an unresolvable user", async () => {
  Deno.env.set("TSBOX_INIT", "/bin/sh");
  try {
    const spec = validateSpec(await specOf({ init: true, privileged: true, network: "host" }));
    assertEquals(spec.process.args, ["/dev/init", "--", "sh"]);
    assertEquals(spec.mounts?.find((m) => m.destination === "/dev/init")?.source, "/bin/sh");
    assertEquals(namespacePlan(spec).newNetwork, false);
    assertEquals([spec.linux.maskedPaths, spec.linux.readonlyPaths, spec.linux.seccomp], [
      [],
      [],
      undefined,
    ]);
    assertOk(spec.mounts?.find((m) => m.destination === "/sys")?.options?.includes("rw"));
    assertEquals(resourceLimits(spec).devices?.[0], { allow: true, line: "a" });
  } finally {
    Deno.env.delete("TSBOX_INIT");
  }
  // The start fails with the runtime's UserError (container.ts), as docker's start does.
  const ghost = await specOf({ user: "ghost" });
  assertOk(ghost.annotations?.[USER_ERROR_ANNOTATION]?.includes("unable to find user ghost"));
});

/** A spec written from `resources` over the defaults (the flags' parsing is tested above). */
async function specWithResources(resources: ResourceLimits): Promise<Spec> {
  const f: RunFlags = { network: "default" };
  const { config } = runConfigFor({
    flags: f,
    options: await createOptions(f, {}),
    command: [],
    image: IMAGE,
    layers: ["L1"],
    id: ID,
    root: ROOT,
  });
  return specFor({
    id: ID,
    config: { ...config, resources },
    rootfs: `${DIR}/rootfs`,
    stateDir: DIR,
    user: specUser(config, PASSWD, GROUP),
    host: HOST,
  });
}

const LIMIT_ROWS: { name: string; limits: ResourceLimits; check: (s: Spec) => void }[] = [
  {
    name: "--memory, --memory-swap, --memory-reservation, --oom-kill-disable",
    limits: {
      memory: 64 << 20,
      memorySwap: 128 << 20,
      memoryReservation: 32 << 20,
      oomKillDisable: true,
    },
    check: (s) =>
      assertEquals(s.linux.resources?.memory, {
        limit: 64 << 20,
        reservation: 32 << 20,
        swap: 128 << 20,
        disableOOMKiller: true,
      }),
  },
  {
    name: "--cpus, --cpu-shares, --cpuset-cpus, --cpuset-mems",
    limits: { cpus: 1.5, cpuShares: 512, cpusetCpus: "0-1", cpusetMems: "0" },
    check: (s) =>
      assertEquals(s.linux.resources?.cpu, {
        shares: 512,
        quota: 150000,
        period: 100000,
        cpus: "0-1",
        mems: "0",
      }),
  },
  {
    name: "--cpu-quota, --cpu-period",
    limits: { cpuQuota: 20000, cpuPeriod: 50000 },
    check: (s) => assertEquals(s.linux.resources?.cpu, { quota: 20000, period: 50000 }),
  },
  {
    name: "--cpu-quota alone",
    limits: { cpuQuota: 30000 },
    check: (s) => assertEquals(s.linux.resources?.cpu, { quota: 30000 }),
  },
  {
    name: "--pids-limit, --blkio-weight, --device-read-bps, --device-write-iops",
    limits: {
      pidsLimit: 7,
      blkioWeight: 300,
      blkioThrottle: [
        { kind: "read_bps", device: "8:0", rate: 1048576 },
        { kind: "write_iops", device: "8:16", rate: 100 },
      ],
    },
    check: (s) => {
      assertEquals(s.linux.resources?.pids, { limit: 7 });
      assertEquals(s.linux.resources?.blockIO, {
        weight: 300,
        throttleReadBpsDevice: [{ major: 8, minor: 0, rate: 1048576 }],
        throttleWriteIOPSDevice: [{ major: 8, minor: 16, rate: 100 }],
      });
    },
  },
  {
    name: "--oom-score-adj: process.oomScoreAdj",
    limits: { oomScoreAdj: 300 },
    check: (s) => assertEquals(s.process.oomScoreAdj, 300),
  },
];

for (const row of LIMIT_ROWS) {
  Deno.test(`spec: ${row.name}, and a start reads the same limits back`, async () => {
    const spec = await specWithResources(row.limits);
    row.check(spec);
    assertOk(validate(spec), JSON.stringify(validate.errors));
    // The runtime's limits are the record's: the same cgroup writes (the OOM score apart).
    const { oomScoreAdj: _, ...cgroup } = row.limits;
    assertEquals(limitsOf(spec), cgroup);
  });
}

Deno.test("spec: --device-cgroup-rule: allowed after the default rules, as the runtime's lines", async () => {
  const spec = await specWithResources({ deviceCgroupRules: ["c 42:* rmw", "b 8:0 r"] });
  assertEquals(spec.linux.resources?.devices?.slice(-2), [
    { allow: true, type: "c", major: 42, access: "rmw" },
    { allow: true, type: "b", major: 8, minor: 0, access: "r" },
  ]);
  assertOk(validate(spec), JSON.stringify(validate.errors));
  assertEquals(limitsOf(spec), {});
  const lines = (resourceLimits(spec).devices ?? []).map((d) => d.line);
  const at = lines.indexOf("c 42:* rmw");
  assertEquals(lines.slice(at, at + 2), ["c 42:* rmw", "b 8:0 r"]);
});

Deno.test("spec -> runtime: namespaces the container does not own", async () => {
  const own = namespacePlan(await specOf({}));
  const NEW = CLONE_FLAGS.pid | CLONE_FLAGS.ipc | CLONE_FLAGS.uts | CLONE_FLAGS.mount;
  assertEquals([own.cloneFlags, own.newCgroup, own.joins], [NEW | CLONE_FLAGS.network, true, []]);
  const hosts = namespacePlan(
    await specOf({ network: "host" }, {
      namespaces: { ipc: "host", pid: "host", uts: "host", cgroupns: "host" },
    }),
  );
  assertEquals([hosts.cloneFlags, hosts.newCgroup, hosts.newNetwork], [
    CLONE_FLAGS.mount,
    false,
    false,
  ]);
  const joined = namespacePlan(
    await specOf({ network: "container:abc" }, {
      namespaces: { ipc: `container:${"a".repeat(64)}`, pid: `container:${"a".repeat(64)}` },
      ipcPath: "/proc/42/ns/ipc",
      pidPath: "/proc/42/ns/pid",
      networkPath: "/proc/42/ns/net",
    }),
  );
  assertEquals(joined.joins, [
    { type: "ipc", path: "/proc/42/ns/ipc" },
    { type: "network", path: "/proc/42/ns/net" },
  ]);
  assertEquals([joined.pidPath, joined.newNetwork], ["/proc/42/ns/pid", false]);
});
