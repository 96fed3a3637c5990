import { assertEquals, assertThrows } from "../../tests/assert.ts";
import type { Spec } from "../oci/spec.ts";
import {
  capabilitySets,
  namespacePlan,
  OciConfigError,
  resourceLimits,
  rlimitSettings,
  rootPath,
  validateSpec,
} from "./oci_config.ts";
import {
  MOUNT_FLAGS as F,
  MountOptionError,
  parseMountOptions,
  rootPropagation,
} from "./oci_mount_options.ts";

const base = {
  ociVersion: "1.0.2-dev",
  process: { user: { uid: 0, gid: 0 }, args: ["sh"], cwd: "/" },
  root: { path: "rootfs" },
  linux: { namespaces: [{ type: "mount" }, { type: "pid" }] },
};

function withField(path: string[], value: unknown): unknown {
  const copy = structuredClone(base) as Record<string, unknown>;
  let at = copy;
  for (const k of path.slice(0, -1)) at = (at[k] ??= {}) as Record<string, unknown>;
  at[path.at(-1)!] = value;
  return copy;
}

Deno.test("validateSpec accepts a minimal config and names the field of each bad one", () => {
  const spec = validateSpec(structuredClone(base));
  assertEquals(spec.process.args, ["sh"]);
  const cases: [string[], unknown, RegExp][] = [
    [["ociVersion"], "2.0.0", /ociVersion must be 1.x/],
    [["process", "args"], [], /process.args must be a non-empty array/],
    [["process", "args"], ["sh", 3], /process.args must be/],
    [["process", "cwd"], "relative", /process.cwd must be an absolute path/],
    [["process", "user", "uid"], -1, /process.user.uid must be a non-negative integer/],
    [["process", "user", "uid"], "0", /process.user.uid/],
    [["process", "oomScoreAdj"], 5000, /oomScoreAdj/],
    [["root", "path"], "", /root.path/],
    [
      ["mounts"],
      [{ destination: "tmp", type: "tmpfs" }],
      /mounts\[0\].destination must be an absolute/,
    ],
    [["mounts"], [{ destination: "/x", options: "ro" }], /mounts\[0\].options must be an array/],
    [["linux", "namespaces"], [{ type: "mount" }, { type: "bogus" }], /linux.namespaces\[1\].type/],
    [["linux", "namespaces"], [{ type: "mount" }, { type: "mount" }], /listed twice/],
    [["linux", "namespaces"], [{ type: "network", path: "netns" }], /path must be an absolute/],
    [["linux", "devices"], [{ path: "/dev/x", type: "c" }], /major must be/],
    [["linux", "sysctl"], { "net/../../x": "1" }, /sysctl key/],
    [["hooks"], { prestart: [{ path: "hook" }] }, /hooks.prestart\[0\].path/],
    [["annotations"], { a: 1 }, /annotations.a must be a string/],
  ];
  for (const [path, value, pattern] of cases) {
    const err = assertThrows(() => validateSpec(withField(path, value)), OciConfigError);
    assertEquals(
      pattern.test((err as Error).message),
      true,
      `${path.join(".")}: ${(err as Error).message}`,
    );
  }
  assertThrows(() => validateSpec(null), OciConfigError);
  assertThrows(() => validateSpec([]), OciConfigError);
});

Deno.test("rootPath: relative to the bundle, absolute as given", () => {
  const spec = validateSpec(structuredClone(base));
  assertEquals(rootPath("/b/", spec), "/b/rootfs");
  assertEquals(rootPath("/b", { ...spec, root: { path: "/abs/root" } }), "/abs/root");
});

Deno.test("namespacePlan: new ones as clone flags, joined ones by path in join order", () => {
  const spec = validateSpec(withField(["linux", "namespaces"], [
    { type: "pid" },
    { type: "network", path: "/run/netns/x" },
    { type: "ipc", path: "/proc/1/ns/ipc" },
    { type: "uts" },
    { type: "mount" },
    { type: "cgroup" },
  ]));
  const plan = namespacePlan(spec);
  assertEquals(plan.cloneFlags, 0x20000000 | 0x04000000 | 0x00020000);
  assertEquals(plan.joins.map((j) => j.type), ["ipc", "network"]);
  assertEquals(plan.newNetwork, false);
  assertEquals(plan.newCgroup, true);
  assertThrows(
    () => namespacePlan(validateSpec(withField(["linux", "namespaces"], [{ type: "pid" }]))),
    OciConfigError,
    "mount namespace",
  );
  assertThrows(
    () =>
      namespacePlan(
        validateSpec(withField(["linux", "namespaces"], [{ type: "mount" }, { type: "user" }])),
      ),
    OciConfigError,
    "uidMappings",
  );
});

Deno.test("capabilitySets: names to numbers, unknown ones dropped with a warning", () => {
  const warnings: string[] = [];
  const sets = capabilitySets(
    {
      ...base.process,
      capabilities: {
        bounding: ["CAP_CHOWN", "CAP_KILL", "CAP_NOT_A_THING"],
        effective: ["CAP_KILL"],
        ambient: ["CAP_NET_BIND_SERVICE"],
      },
    } as Spec["process"],
    40,
    (m) => warnings.push(m),
  );
  assertEquals(sets.bounding, [0, 5]);
  assertEquals(sets.effective, [5]);
  assertEquals(sets.permitted, []);
  assertEquals(sets.ambient, [10]);
  assertEquals(warnings.length, 1);
});

Deno.test("rlimitSettings and resourceLimits read the spec's units", () => {
  const spec = validateSpec({
    ...base,
    process: {
      ...base.process,
      rlimits: [{ type: "RLIMIT_NOFILE", soft: 1024, hard: 2048 }, {
        type: "RLIMIT_CORE",
        soft: 2 ** 64,
        hard: 2 ** 64,
      }],
    },
    linux: {
      ...base.linux,
      resources: {
        memory: { limit: 16777216, swap: 33554432 },
        cpu: { shares: 512, quota: 50000, period: 100000, cpus: "0" },
        pids: { limit: 100 },
        devices: [{ allow: false, access: "rwm" }, {
          allow: true,
          type: "c",
          major: 10,
          minor: 229,
          access: "rw",
        }],
      },
    },
  });
  const rl = rlimitSettings(spec.process);
  assertEquals(rl[0], { name: "nofile", resource: 7, limit: { soft: 1024n, hard: 2048n } });
  assertEquals(rl[1].limit.soft, 0xffffffffffffffffn);
  const r = resourceLimits(spec);
  assertEquals(r.memory, 16777216);
  assertEquals(r.memorySwap, 33554432);
  assertEquals(r.cpuShares, 512);
  assertEquals(r.cpuQuota, 50000);
  assertEquals(r.cpuPeriod, 100000);
  assertEquals(r.cpusetCpus, "0");
  assertEquals(r.pidsLimit, 100);
  // The spec's rules first (deny all, then its device), then the standard nodes runc allows.
  assertEquals(r.devices?.slice(0, 3), [
    { allow: false, line: "a" },
    { allow: true, line: "c 10:229 rw" },
    { allow: true, line: "c *:* m" },
  ]);
  assertEquals(r.devices?.some((d) => d.line === "c 1:3 rwm"), true);
  assertThrows(
    () =>
      rlimitSettings({ ...spec.process, rlimits: [{ type: "RLIMIT_BOGUS", soft: 1, hard: 1 }] }),
    OciConfigError,
  );
});

Deno.test("parseMountOptions: flags, clears, propagation, data and bind remounts", () => {
  const proc = parseMountOptions("proc", ["nosuid", "noexec", "nodev"], "/proc");
  assertEquals(proc.flags, F.NOSUID | F.NOEXEC | F.NODEV);
  assertEquals(proc.bind, false);
  assertEquals(proc.remountFlags, 0);
  const tmpfs = parseMountOptions(
    "tmpfs",
    ["nosuid", "strictatime", "mode=755", "size=65536k"],
    "/dev",
  );
  assertEquals(tmpfs.flags, F.NOSUID | F.STRICTATIME);
  assertEquals(tmpfs.data, "mode=755,size=65536k");
  const bind = parseMountOptions("bind", ["rbind", "ro", "nosuid", "rprivate"], "/data");
  assertEquals(bind.bind, true);
  assertEquals(bind.recursive, true);
  assertEquals(bind.remountFlags, F.RDONLY | F.NOSUID);
  assertEquals(bind.propagation, [F.PRIVATE | F.REC]);
  // A later option wins over an earlier one, as mount(8) reads them.
  const rw = parseMountOptions(undefined, ["bind", "ro", "rw"], "/x");
  assertEquals(rw.bind, true);
  assertEquals(rw.recursive, false);
  assertEquals(rw.remountFlags, 0);
  assertEquals(parseMountOptions("tmpfs", ["tmpcopyup", "X-foo"], "/t").ignored, [
    "tmpcopyup",
    "X-foo",
  ]);
  assertThrows(() => parseMountOptions("bind", ["rbind", "idmap"], "/x"), MountOptionError);
  assertEquals(rootPropagation("rslave"), F.SLAVE | F.REC);
  assertEquals(rootPropagation(undefined), undefined);
  assertThrows(() => rootPropagation("sideways"), MountOptionError);
});
