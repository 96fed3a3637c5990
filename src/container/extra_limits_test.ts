import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { LimitError } from "./limits.ts";
import { v1ExtraWrites, v2ExtraWrites } from "../runtime/cgroup_extra.ts";
import { CgroupV1, locateCgroup } from "../runtime/cgroups.ts";
import { type HostResources, parseList, withExtraLimits } from "./extra_limits.ts";

const host: HostResources = {
  cpus: "0-3",
  mems: "0",
  blkioWeight: true,
  oomKillDisable: true,
  memoryReservation: true,
};

Deno.test("kernel lists parse as the kernel reads them; bad ones do not", () => {
  assertEquals([...parseList("0-2,5")!], [0, 1, 2, 5]);
  assertEquals([...parseList("3")!], [3]);
  assertEquals(parseList("2-1"), undefined);
  assertEquals(parseList("a"), undefined);
  assertEquals(parseList("0,,1"), undefined);
});

Deno.test("the limits map to docker's v1 and v2 files, period before quota", () => {
  const l = {
    cpusetCpus: "0-1",
    cpusetMems: "0",
    cpuQuota: 50000,
    cpuPeriod: 200000,
    memoryReservation: 1 << 25,
    oomKillDisable: true,
    blkioWeight: 300,
  };
  assertEquals(v1ExtraWrites(l, "blkio.bfq.weight"), [
    ["cpuset", "cpuset.cpus", "0-1"],
    ["cpuset", "cpuset.mems", "0"],
    ["cpu", "cpu.cfs_period_us", "200000"],
    ["cpu", "cpu.cfs_quota_us", "50000"],
    ["memory", "memory.soft_limit_in_bytes", "33554432"],
    ["memory", "memory.oom_control", "1"],
    ["blkio", "blkio.bfq.weight", "300"],
  ]);
  assertEquals(v2ExtraWrites(l), [
    ["cpuset.cpus", "0-1"],
    ["cpuset.mems", "0"],
    ["cpu.max", "50000 200000"],
    ["memory.low", "33554432"],
    ["io.bfq.weight", "300"],
  ]);
  assertEquals(v2ExtraWrites({ cpuQuota: -1 }), [["cpu.max", "max 100000"]]);
  assertEquals(v1ExtraWrites({}), []);
  const devices = {
    blkioThrottle: [{ kind: "write_iops" as const, device: "7:0", rate: 100 }],
    deviceCgroupRules: ["c 10:229 rwm"],
  };
  assertEquals(v1ExtraWrites(devices), [
    ["blkio", "blkio.throttle.write_iops_device", "7:0 100"],
    ["devices", "devices.allow", "c 10:229 rwm"],
  ]);
  assertEquals(v2ExtraWrites(devices), [["io.max", "7:0 wiops=100"]]);
});

Deno.test("docker's refusals and warnings", () => {
  const warnings: string[] = [];
  const warn = (m: string) => warnings.push(m);
  const check = (flags: Parameters<typeof withExtraLimits>[1], base = {}, h = host) =>
    withExtraLimits(base, flags, h, warn);
  assertThrows(() => check({ cpusetCpus: "4" }), LimitError, "requested 4, available: 0-3");
  assertThrows(
    () => check({ cpuQuota: "50000" }, { cpus: 1 }),
    LimitError,
    "Nano CPUs and CPU Quota",
  );
  assertThrows(() => check({ cpuPeriod: "2000000" }), LimitError, "larger than 1s");
  assertThrows(() => check({ blkioWeight: "5" }), LimitError, "from 10 to 1000");
  assertThrows(
    () => check({ memoryReservation: "64m" }, { memory: 32 << 20 }),
    LimitError,
    "can not be less than memory reservation",
  );
  // -1 is "no quota"; 0 is "not set".
  assertEquals(check({ cpuQuota: "-5", cpuPeriod: "0" }), { cpuQuota: -1 });
  // Discarded where the kernel cannot: a warning, no limit.
  const none = { ...host, blkioWeight: false, oomKillDisable: false };
  assertEquals(check({ blkioWeight: "5", oomKillDisable: true }, {}, none), {});
  assertEquals(warnings, [
    "Your kernel does not support OomKillDisable. OomKillDisable discarded.",
    "Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.",
  ]);
});

Deno.test("a cpuset only the unified tree has does not move a v1 host's cgroup to v2", () => {
  const v1 = new Map(["memory", "cpu", "pids", "devices"].map((c) => [c, `/sys/fs/cgroup/${c}`]));
  const cg = locateCgroup("abc", { v1, v2: "/sys/fs/cgroup/unified", v2Controllers: ["cpuset"] });
  assertEquals(cg instanceof CgroupV1, true);
  // A core controller only on v2 still does.
  const moved = locateCgroup("abc", {
    v1: new Map([["memory", "/m"]]),
    v2: "/u",
    v2Controllers: ["pids"],
  });
  assertEquals(moved instanceof CgroupV1, false);
});
