/**
 * Resource flags of issue 21 against real containers (root, cgroup v1 here): `--cpuset-cpus/
 * -mems`, `--cpu-quota/--cpu-period`, `--memory-reservation`, `--oom-kill-disable`,
 * `--kernel-memory` and `--blkio-weight` (docker's warnings where discarded), and `update` of a
 * running container's limits, read back from the kernel's cgroup files and from what the
 * container itself sees (/proc/self/status).
 */
import { sharedBusyboxRoot } from "./busybox_store.ts";
import { assertEquals, assertStringIncludes } from "./assert.ts";
import { tsbox } from "./cli.ts";
import { hostLayout } from "../src/runtime/cgroups.ts";

const isRoot = Deno.uid() === 0;
const layout = hostLayout();
/** These tests read v1 files: the kernel here has every controller on v1. */
const v1 = ["cpu", "cpuset", "memory", "pids"].every((c) => layout.v1.has(c));

function rootTest(name: string, fn: () => Promise<void>) {
  Deno.test({ name, ignore: !isRoot || !v1, sanitizeResources: false, sanitizeOps: false, fn });
}

async function cli(args: string[]) {
  return await tsbox(args, { root: await sharedBusyboxRoot() });
}

/** Runs `args`, failing the test with its stderr unless it exits 0; returns stdout trimmed. */
async function ok(args: string[]): Promise<string> {
  const r = await cli(args);
  assertEquals(r.code, 0, `tsbox ${args.join(" ")}: ${r.stderr}`);
  return r.stdout.trim();
}

/** A file of container `name`'s v1 cgroup of `controller`, trimmed. */
async function cgroupFile(name: string, controller: string, file: string): Promise<string> {
  const id = await ok(["inspect", "-f", "{{.Id}}", name]);
  return (await Deno.readTextFile(`${layout.v1.get(controller)}/tsbox/${id}/${file}`)).trim();
}

/** A line of /proc/self/status in a new container run with `flags`. */
async function statusLine(flags: string[], key: string): Promise<string> {
  const out = await ok([
    "run",
    "--rm",
    ...flags,
    "busybox",
    "grep",
    `^${key}:`,
    "/proc/self/status",
  ]);
  return out.split(":")[1].trim();
}

/** Starts a long-running container `name`. */
async function sleeper(name: string, flags: string[] = []): Promise<void> {
  await ok(["run", "-d", "--name", name, ...flags, "busybox", "sleep", "1000"]);
}

/** Refused at create with exit 125 and `message`, leaving no container behind. */
async function refused(flags: string[], message: string): Promise<void> {
  const before = await ok(["ps", "-aq"]);
  const r = await cli(["run", "--rm", ...flags, "busybox", "true"]);
  assertEquals(r.code, 125, r.stderr);
  assertStringIncludes(r.stderr, message);
  assertEquals(await ok(["ps", "-aq"]), before);
}

rootTest("--cpuset-cpus and --cpuset-mems confine the container's CPUs and nodes", async () => {
  assertEquals(await statusLine(["--cpuset-cpus", "0"], "Cpus_allowed_list"), "0");
  const cpus = Deno.readTextFileSync("/sys/devices/system/cpu/online").trim();
  if (cpus !== "0") {
    assertEquals(await statusLine(["--cpuset-cpus", "1"], "Cpus_allowed_list"), "1");
  }
  assertEquals(await statusLine([], "Cpus_allowed_list"), cpus);
  assertEquals(await statusLine(["--cpuset-mems", "0"], "Mems_allowed_list"), "0");
  await refused(
    ["--cpuset-cpus", "63"],
    `Requested CPUs are not available - requested 63, available: ${cpus}`,
  );
  await refused(["--cpuset-cpus", "1-0"], "Invalid value 1-0 for cpuset cpus");
  await refused(["--cpuset-mems", "9"], "Requested memory nodes are not available");
});

rootTest("--cpu-quota/--cpu-period are the CFS files; conflicts are docker's", async () => {
  await sleeper("t-c21-cfs", ["--cpu-quota", "50000", "--cpu-period", "200000"]);
  try {
    assertEquals(await cgroupFile("t-c21-cfs", "cpu", "cpu.cfs_quota_us"), "50000");
    assertEquals(await cgroupFile("t-c21-cfs", "cpu", "cpu.cfs_period_us"), "200000");
    assertEquals(
      await ok([
        "inspect",
        "-f",
        "{{.HostConfig.CpuQuota}} {{.HostConfig.CpuPeriod}}",
        "t-c21-cfs",
      ]),
      "50000 200000",
    );
  } finally {
    await cli(["rm", "-f", "t-c21-cfs"]);
  }
  await refused(
    ["--cpus", "0.5", "--cpu-quota", "50000"],
    "Conflicting options: Nano CPUs and CPU Quota cannot both be set",
  );
  await refused(["--cpu-period", "500"], "CPU cfs period can not be less than 1ms");
  await refused(["--cpu-quota", "10"], "CPU cfs quota can not be less than 1ms (i.e. 1000)");
});

rootTest(
  "--memory-reservation and --oom-kill-disable are written; kernel memory is ignored",
  async () => {
    await sleeper("t-c21-mem", ["-m", "64m", "--memory-reservation", "32m", "--oom-kill-disable"]);
    try {
      assertEquals(
        await cgroupFile("t-c21-mem", "memory", "memory.soft_limit_in_bytes"),
        String(32 << 20),
      );
      const oom = await cgroupFile("t-c21-mem", "memory", "memory.oom_control");
      assertStringIncludes(oom, "oom_kill_disable 1");
      assertEquals(
        await ok(["inspect", "-f", "{{.HostConfig.OomKillDisable}}", "t-c21-mem"]),
        "true",
      );
    } finally {
      await cli(["rm", "-f", "t-c21-mem"]);
    }
    await refused(
      ["-m", "16m", "--memory-reservation", "32m"],
      "Minimum memory limit can not be less than memory reservation limit",
    );
    await refused(["--memory-reservation", "1m"], "Minimum memory reservation allowed is 6MB");
    const kmem = await cli(["run", "--rm", "--kernel-memory", "64m", "busybox", "echo", "ran"]);
    assertEquals(kmem.code, 0, kmem.stderr);
    assertEquals(kmem.stdout.trim(), "ran");
    assertStringIncludes(kmem.stderr, "WARNING: Specifying a kernel memory limit is deprecated");
    const unbounded = await cli(["run", "--rm", "--oom-kill-disable", "busybox", "true"]);
    assertEquals(unbounded.code, 0, unbounded.stderr);
    assertStringIncludes(
      unbounded.stderr,
      "without setting a '-m/--memory' limit may be dangerous",
    );
  },
);

rootTest(
  "--blkio-weight: written where the kernel has a weight, else docker's warning",
  async () => {
    const blkio = layout.v1.get("blkio");
    const file = ["blkio.weight", "blkio.bfq.weight"].find((f) => {
      try {
        return Deno.statSync(`${blkio}/${f}`).isFile;
      } catch {
        return false;
      }
    });
    if (file) {
      await sleeper("t-c21-blkio", ["--blkio-weight", "300"]);
      try {
        assertStringIncludes(await cgroupFile("t-c21-blkio", "blkio", file), "300");
      } finally {
        await cli(["rm", "-f", "t-c21-blkio"]);
      }
      await refused(["--blkio-weight", "5"], "Range of blkio weight is from 10 to 1000");
    } else {
      // This kernel's block layer has no weight (no BFQ): docker discards it with a warning.
      const r = await cli(["run", "--rm", "--blkio-weight", "300", "busybox", "echo", "ran"]);
      assertEquals(r.code, 0, r.stderr);
      assertEquals(r.stdout.trim(), "ran");
      assertStringIncludes(
        r.stderr,
        "WARNING: Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.",
      );
    }
  },
);

rootTest("update changes a running container's cgroup at once and for later starts", async () => {
  await sleeper("t-c21-upd", ["-m", "32m"]);
  try {
    assertEquals(
      await ok([
        "update",
        "--cpus",
        "0.5",
        "-m",
        "128m",
        "--memory-swap",
        "256m",
        "--pids-limit",
        "50",
        "--cpuset-cpus",
        "0",
        "--memory-reservation",
        "16m",
        "t-c21-upd",
      ]),
      "t-c21-upd",
    );
    const check = async () => {
      assertEquals(await cgroupFile("t-c21-upd", "cpu", "cpu.cfs_quota_us"), "50000");
      assertEquals(
        await cgroupFile("t-c21-upd", "memory", "memory.limit_in_bytes"),
        String(128 << 20),
      );
      assertEquals(
        await cgroupFile("t-c21-upd", "memory", "memory.soft_limit_in_bytes"),
        String(16 << 20),
      );
      assertEquals(await cgroupFile("t-c21-upd", "pids", "pids.max"), "50");
      assertEquals(await cgroupFile("t-c21-upd", "cpuset", "cpuset.cpus"), "0");
      // The container's PID 1 itself is confined to CPU 0 now.
      const status = await ok([
        "exec",
        "t-c21-upd",
        "grep",
        "^Cpus_allowed_list:",
        "/proc/1/status",
      ]);
      assertEquals(status.split(":")[1].trim(), "0");
    };
    await check();
    assertEquals(
      await ok(["inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}}", "t-c21-upd"]),
      `${128 << 20} 500000000`,
    );
    // Recorded: a restart applies the same limits to the new cgroup.
    await ok(["restart", "-t", "0", "t-c21-upd"]);
    await check();
    // docker's update-only refusal: memory above the memory+swap already set.
    const over = await cli(["update", "-m", "512m", "t-c21-upd"]);
    assertEquals(over.code, 1, over.stderr);
    assertStringIncludes(
      over.stderr,
      "Memory limit should be smaller than already set memoryswap limit",
    );
    assertEquals(
      await ok(["update", "-m", "512m", "--memory-swap", "1g", "t-c21-upd"]),
      "t-c21-upd",
    );
    assertEquals(
      await cgroupFile("t-c21-upd", "memory", "memory.limit_in_bytes"),
      String(512 << 20),
    );
    const none = await cli(["update", "t-c21-upd"]);
    assertEquals(none.code, 1);
    assertStringIncludes(
      none.stderr,
      "You must provide one or more flags when using this command.",
    );
  } finally {
    await cli(["rm", "-f", "t-c21-upd"]);
  }
});

rootTest(
  "update of a stopped container applies at its next start; --restart with --rm refused",
  async () => {
    await ok(["create", "--name", "t-c21-upd-later", "busybox", "sleep", "1000"]);
    await sleeper("t-c21-upd-rm", ["--rm"]);
    try {
      assertEquals(
        await ok(["update", "--pids-limit", "33", "t-c21-upd-later"]),
        "t-c21-upd-later",
      );
      // The bundle the start runs carries the new limit (not only the engine's record).
      const bundle = await ok(["inspect", "-f", "{{.OCIConfigPath}}", "t-c21-upd-later"]);
      const spec = JSON.parse(await Deno.readTextFile(bundle));
      assertEquals(spec.linux.resources.pids, { limit: 33 });
      await ok(["start", "t-c21-upd-later"]);
      assertEquals(await cgroupFile("t-c21-upd-later", "pids", "pids.max"), "33");
      assertEquals(
        await ok(["update", "--restart", "on-failure:3", "t-c21-upd-later"]),
        "t-c21-upd-later",
      );
      assertEquals(
        await ok(["inspect", "-f", "{{.HostConfig.RestartPolicy.Name}}", "t-c21-upd-later"]),
        "on-failure",
      );
      const r = await cli(["update", "--restart", "always", "t-c21-upd-rm"]);
      assertEquals(r.code, 1);
      assertStringIncludes(
        r.stderr,
        "Restart policy cannot be updated because AutoRemove is enabled",
      );
    } finally {
      await cli(["rm", "-f", "t-c21-upd-later", "t-c21-upd-rm"]);
    }
  },
);

rootTest("--device-read-bps/-write-iops throttle a block device in the blkio cgroup", async () => {
  const info = Deno.statSync("/dev/loop0");
  assertEquals(info.isBlockDevice, true);
  const rdev = info.rdev ?? 0;
  const dev = `${(rdev >>> 8) & 0xfff}:${(rdev & 0xff) | ((rdev >>> 12) & 0xfff00)}`;
  await sleeper("t-c21-throttle", [
    "--device-read-bps",
    "/dev/loop0:1mb",
    "--device-write-iops",
    "/dev/loop0:100",
  ]);
  try {
    assertEquals(
      await cgroupFile("t-c21-throttle", "blkio", "blkio.throttle.read_bps_device"),
      `${dev} 1048576`,
    );
    assertEquals(
      await cgroupFile("t-c21-throttle", "blkio", "blkio.throttle.write_iops_device"),
      `${dev} 100`,
    );
    assertEquals(
      await ok(["inspect", "-f", "{{json .HostConfig.BlkioDeviceReadBps}}", "t-c21-throttle"]),
      '[{"Path":"/dev/loop0","Rate":1048576}]',
    );
  } finally {
    await cli(["rm", "-f", "t-c21-throttle"]);
  }
  await refused(["--device-read-bps", "/dev/loop0"], "bad format: /dev/loop0");
  await refused(["--device-read-bps", "/tmp/x:1mb"], "bad format for device path: /tmp/x:1mb");
  await refused(["--device-write-iops", "/dev/loop0:1.5"], "invalid rate for device");
});

rootTest("--device-cgroup-rule lets the container open a device node it makes", async () => {
  // /dev/fuse (c 10:229) is not in docker's default rules: mknod is allowed, open is not.
  const open = ["sh", "-c", "mknod /tmp/fuse c 10 229 && exec 3<>/tmp/fuse && echo opened"];
  const denied = await cli(["run", "--rm", "busybox", ...open]);
  assertEquals(denied.code !== 0, true, denied.stdout);
  assertStringIncludes(denied.stderr, "Operation not permitted");
  assertEquals(
    await ok(["run", "--rm", "--device-cgroup-rule", "c 10:229 rwm", "busybox", ...open]),
    "opened",
  );
  await refused(
    ["--device-cgroup-rule", "c 10-229 rwm"],
    "invalid device cgroup format 'c 10-229 rwm'",
  );
});

rootTest(
  "--oom-score-adj is PID 1's score; out of range and rt flags refused",
  async () => {
    assertEquals(
      await ok([
        "run",
        "--rm",
        "--oom-score-adj",
        "500",
        "busybox",
        "cat",
        "/proc/self/oom_score_adj",
      ]),
      "500",
    );
    await refused(
      ["--oom-score-adj", "1001"],
      "Invalid value 1001, range for oom score adj is [-1000, 1000]",
    );
    await refused(["--cpu-rt-runtime", "1000"], "--cpu-rt-runtime is not supported by tsbox");
  },
);

rootTest(
  "a bundle of an older tsbox gets its limits from the record at the next start",
  async () => {
    await ok([
      "create",
      "--name",
      "t-c21-old-bundle",
      "--pids-limit",
      "21",
      "busybox",
      "sleep",
      "1000",
    ]);
    try {
      // As an older tsbox wrote it: no limits (its runtime read them from the record), no version.
      const path = await ok(["inspect", "-f", "{{.OCIConfigPath}}", "t-c21-old-bundle"]);
      const spec = JSON.parse(await Deno.readTextFile(path));
      delete spec.linux.resources.pids;
      delete spec.annotations["io.tsbox.spec-version"];
      await Deno.writeTextFile(path, JSON.stringify(spec));
      await ok(["start", "t-c21-old-bundle"]);
      assertEquals(await cgroupFile("t-c21-old-bundle", "pids", "pids.max"), "21");
      const after = JSON.parse(await Deno.readTextFile(path));
      assertEquals(after.linux.resources.pids, { limit: 21 });
      assertEquals(after.annotations["io.tsbox.spec-version"], "2");
    } finally {
      await cli(["rm", "-f", "t-c21-old-bundle"]);
    }
  },
);
