import { join } from "node:path";
import { assertEquals, assertOk, assertRejects, assertStringIncludes } from "../../tests/assert.ts";
import {
  CgroupError,
  cgroupParentPath,
  CgroupV1,
  CgroupV2,
  createCgroup,
  hostLayout,
  locateCgroup,
  parseLayout,
  removeCgroupDirsSync,
  sharesToWeight,
  subtreeControlLine,
  v2LimitWrites,
  v2ParentLevels,
} from "./cgroups.ts";
import { UsageError } from "../errors.ts";
import { canUseCgroup2, cgroupEvents, dead, poll, withCgroup2 } from "../../tests/cgroup2.ts";

const HYBRID = `30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
38 30 0:35 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
39 30 0:36 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw`;

Deno.test("controllers are located per controller in mountinfo", () => {
  const layout = parseLayout(HYBRID, () => ["hugetlb"]);
  assertEquals(layout.v1.get("memory"), "/sys/fs/cgroup/memory");
  assertEquals(layout.v1.get("cpu"), "/sys/fs/cgroup/cpu");
  assertEquals(layout.v1.has("name=systemd"), false);
  assertEquals(layout.v2, "/sys/fs/cgroup/unified");
  assertEquals(layout.v2Controllers, ["hugetlb"]);
});

Deno.test("placement: v1 while it holds every managed controller, else one v2 dir", () => {
  const hybrid = parseLayout(HYBRID, () => ["hugetlb"]);
  const v1 = locateCgroup("abc", hybrid);
  assertOk(v1 instanceof CgroupV1);
  assertEquals(v1.dirs, [
    "/sys/fs/cgroup/memory/tsbox/abc",
    "/sys/fs/cgroup/cpu/tsbox/abc",
    "/sys/fs/cgroup/pids/tsbox/abc",
  ]);
  // pids offered only by the unified tree: the container goes there whole.
  const mixed = parseLayout(HYBRID.replace(/\n.*rw,pids$/m, ""), () => ["pids"]);
  assertEquals((locateCgroup("abc", mixed) as CgroupV2).dir, "/sys/fs/cgroup/unified/tsbox/abc");
  const v2only = parseLayout(
    "40 30 0:37 / /sys/fs/cgroup rw,relatime - cgroup2 cgroup2 rw",
    () => ["cpu", "memory", "pids"],
  );
  assertEquals((locateCgroup("abc", v2only) as CgroupV2).dir, "/sys/fs/cgroup/tsbox/abc");
});

Deno.test("--cgroup-parent: one absolute form; '..' refused; placed under it in v1 and v2", () => {
  assertEquals(cgroupParentPath("/a/b"), "/a/b");
  assertEquals(cgroupParentPath("a//b/./"), "/a/b");
  assertEquals(cgroupParentPath("/"), "/");
  for (const bad of ["../x", "/a/../../b", ""]) {
    let caught: unknown;
    try {
      cgroupParentPath(bad);
    } catch (err) {
      caught = err;
    }
    assertOk(caught instanceof UsageError, `"${bad}" was accepted`);
  }
  const hybrid = parseLayout(HYBRID, () => ["hugetlb"]);
  assertEquals(locateCgroup("abc", hybrid, "/ci/jobs").dirs, [
    "/sys/fs/cgroup/memory/ci/jobs/abc",
    "/sys/fs/cgroup/cpu/ci/jobs/abc",
    "/sys/fs/cgroup/pids/ci/jobs/abc",
  ]);
  assertEquals(locateCgroup("abc", hybrid, "/").dirs[0], "/sys/fs/cgroup/memory/abc");
  const v2only = parseLayout(
    "40 30 0:37 / /sys/fs/cgroup rw,relatime - cgroup2 cgroup2 rw",
    () => ["cpu", "memory", "pids"],
  );
  assertEquals((locateCgroup("abc", v2only, "/ci") as CgroupV2).dir, "/sys/fs/cgroup/ci/abc");
  // Every level from the root down to the parent enables the controllers for its children.
  assertEquals(v2ParentLevels("/sys/fs/cgroup", "/ci/jobs"), [
    "/sys/fs/cgroup",
    "/sys/fs/cgroup/ci",
    "/sys/fs/cgroup/ci/jobs",
  ]);
  assertEquals(v2ParentLevels("/sys/fs/cgroup", "/"), ["/sys/fs/cgroup"]);
});

Deno.test("v2 limits: the exact bytes written per file (pure; enforcement not tested here)", () => {
  // This host's memory, cpu and pids controllers are bound to v1: its cgroup2 tree has no
  // memory.max, cpu.max or pids.max to write, let alone enforce. Only the bytes are checked.
  assertEquals(
    v2LimitWrites({
      memory: 32 * 1024 * 1024,
      memorySwap: 64 * 1024 * 1024,
      cpus: 0.5,
      cpuShares: 512,
      pidsLimit: 20,
    }),
    [
      ["memory.max", "33554432"],
      ["memory.swap.max", "33554432"],
      ["cpu.max", "50000 100000"],
      ["cpu.weight", "20"],
      ["pids.max", "20"],
    ],
  );
  // --memory alone: no swap beyond memory (docker's memory-swap = 2x memory on v1 is swap = memory).
  assertEquals(v2LimitWrites({ memory: 1 << 20 }), [
    ["memory.max", "1048576"],
    ["memory.swap.max", "1048576"],
  ]);
  assertEquals(v2LimitWrites({ memory: 1 << 20, memorySwap: -1, pidsLimit: 0 }), [
    ["memory.max", "1048576"],
    ["memory.swap.max", "max"],
    ["pids.max", "max"],
  ]);
  assertEquals(v2LimitWrites({ cpus: 1.5 }), [["cpu.max", "150000 100000"]]);
  assertEquals(v2LimitWrites({}), []);
  assertEquals(subtreeControlLine(["memory", "cpu", "pids"]), "+memory +cpu +pids");
});

const real = { ignore: !canUseCgroup2, sanitizeResources: false, sanitizeOps: false };

function spawnSh(script: string): Deno.ChildProcess {
  return new Deno.Command("sh", {
    args: ["-c", script],
    stdin: "piped",
    stdout: "null",
    stderr: "null",
  }).spawn();
}

/** Ends a test's child however the test went, and reaps it. */
async function reap(child: Deno.ChildProcess): Promise<Deno.CommandStatus> {
  try {
    child.kill("SIGKILL");
  } catch { /* already gone */ }
  await child.stdin.close().catch(() => {});
  return await child.status;
}

Deno.test({
  ...real,
  name: "v2 on a real cgroup2: nested dirs are made, a joined process is in cgroup.procs",
  fn: () =>
    withCgroup2(async (layout, root) => {
      const cg = await createCgroup("c2join", {}, layout);
      assertOk(cg instanceof CgroupV2);
      assertEquals(cg.dir, `${root}/tsbox/c2join`);
      assertEquals((await Deno.readTextFile(`${cg.dir}/cgroup.type`)).trim(), "domain");
      assertEquals(cgroupEvents(cg.dir).get("populated"), "0");
      const child = spawnSh("read x");
      try {
        await cg.join(child.pid);
        assertEquals(await cg.pids(), [child.pid]);
        assertEquals((await Deno.readTextFile(`${cg.dir}/cgroup.procs`)).trim(), String(child.pid));
        // The kernel's own view of the process: its v2 path ends in tsbox/<id>.
        const own = (await Deno.readTextFile(`/proc/${child.pid}/cgroup`)).split("\n")
          .find((l) => l.startsWith("0::"));
        assertOk(own?.endsWith("/tsbox/c2join"), own);
        assertEquals(cgroupEvents(cg.dir).get("populated"), "1");
        assertEquals(cgroupEvents(`${root}/tsbox`).get("populated"), "1");
      } finally {
        await reap(child);
      }
      await poll("populated 0", () => cgroupEvents(cg.dir).get("populated") === "0");
      await cg.remove();
      await assertRejects(() => Deno.stat(cg.dir), Deno.errors.NotFound);
    }),
});

Deno.test({
  ...real,
  name: "v2 on a real cgroup2: --cgroup-parent makes the path; a joined process is below it",
  fn: () =>
    withCgroup2(async (layout, root) => {
      const cg = await createCgroup("c2parent", { cgroupParent: "/ci/jobs" }, layout);
      assertOk(cg instanceof CgroupV2);
      assertEquals(cg.dir, `${root}/ci/jobs/c2parent`);
      // A second container under the same (now existing) parent.
      const other = await createCgroup("c2other", { cgroupParent: "/ci/jobs" }, layout);
      const child = spawnSh("read x");
      try {
        await cg.join(child.pid);
        const own = (await Deno.readTextFile(`/proc/${child.pid}/cgroup`)).split("\n")
          .find((l) => l.startsWith("0::"));
        assertOk(own?.endsWith("/ci/jobs/c2parent"), own);
        assertEquals(cgroupEvents(`${root}/ci`).get("populated"), "1");
      } finally {
        await reap(child);
      }
      await poll("populated 0", () => cgroupEvents(cg.dir).get("populated") === "0");
      await cg.remove();
      await other.remove();
      // The containers' dirs go; the parent, which is the user's, stays.
      await assertRejects(() => Deno.stat(cg.dir), Deno.errors.NotFound);
      assertOk((await Deno.stat(`${root}/ci/jobs`)).isDirectory);
    }),
});

Deno.test({
  ...real,
  name: "v2 on a real cgroup2: kill() ends every process, forks included, then remove()",
  fn: () =>
    withCgroup2(async (layout) => {
      const cg = await createCgroup("c2kill", {}, layout) as CgroupV2;
      // The shell forks its two sleeps only once it is inside, so they are born in the cgroup.
      const child = spawnSh("read x; sleep 1000 & sleep 1000 & wait");
      try {
        await cg.join(child.pid);
        const w = child.stdin.getWriter();
        await w.write(new TextEncoder().encode("go\n"));
        w.releaseLock();
        await poll("three processes inside", async () => (await cg.pids()).length === 3);
        const pids = await cg.pids();
        assertOk(pids.includes(child.pid));
        assertEquals(await cg.kill(), true);
        await poll("populated 0", () => cgroupEvents(cg.dir).get("populated") === "0");
        await poll("every process dead", () => pids.every(dead));
        assertEquals((await child.status).signal, "SIGKILL");
        assertEquals(await cg.pids(), []);
      } finally {
        await reap(child);
      }
      await cg.remove();
      await assertRejects(() => Deno.stat(cg.dir), Deno.errors.NotFound);
    }),
});

Deno.test({
  ...real,
  name: "v2 on a real cgroup2: remove() kills what is still inside and removes the dir",
  fn: () =>
    withCgroup2(async (layout) => {
      const cg = await createCgroup("c2rm", {}, layout) as CgroupV2;
      const child = spawnSh("read x");
      try {
        await cg.join(child.pid);
        await cg.remove();
        await assertRejects(() => Deno.stat(cg.dir), Deno.errors.NotFound);
        assertEquals((await child.status).signal, "SIGKILL");
      } finally {
        await reap(child);
      }
    }),
});

Deno.test({
  ...real,
  name: "v2 on a real cgroup2: the synchronous removal (reap) kills what is inside too",
  fn: () =>
    withCgroup2(async (layout) => {
      const cg = await createCgroup("c2sync", {}, layout) as CgroupV2;
      const child = spawnSh("read x");
      try {
        await cg.join(child.pid);
        removeCgroupDirsSync(cg.dirs);
        await assertRejects(() => Deno.stat(cg.dir), Deno.errors.NotFound);
        assertEquals((await child.status).signal, "SIGKILL");
      } finally {
        await reap(child);
      }
    }),
});

/** Whether the host's cgroup2 root offers memory, cpu and pids (a v2 host, not ours). */
const v2Limits = canUseCgroup2 &&
  ["memory", "cpu", "pids"].every((c) => hostLayout().v2Controllers.includes(c));

Deno.test({
  ...real,
  ignore: !canUseCgroup2 || v2Limits,
  name:
    "v2 limits on a real cgroup2 without the controllers: refused naming the file, nothing kept",
  fn: () =>
    withCgroup2(async (layout, root) => {
      const err = await assertRejects(
        () => createCgroup("c2lim", { memory: 64 * 1024 * 1024 }, layout),
        CgroupError,
      );
      assertStringIncludes(
        err.message,
        `cannot write "67108864" to ${root}/tsbox/c2lim/memory.max`,
      );
      assertEquals(err.code, "ENOENT");
      await assertRejects(() => Deno.stat(`${root}/tsbox/c2lim`), Deno.errors.NotFound);
    }),
});

Deno.test({
  ...real,
  ignore: !v2Limits,
  name:
    "v2 limits are written into a real cgroup2 that has the controllers (enforcement not tested)",
  fn: () =>
    withCgroup2(async (layout, root) => {
      const cg = await createCgroup(
        "c2set",
        { memory: 64 * 1024 * 1024, cpus: 0.5, cpuShares: 512, pidsLimit: 20 },
        layout,
      ) as CgroupV2;
      try {
        const enabled = (await Deno.readTextFile(`${root}/tsbox/cgroup.subtree_control`)).trim();
        assertEquals(enabled.split(" ").sort(), ["cpu", "memory", "pids"]);
        const read = async (f: string) => (await Deno.readTextFile(`${cg.dir}/${f}`)).trim();
        assertEquals(await read("memory.max"), "67108864");
        assertEquals(await read("cpu.max"), "50000 100000");
        assertEquals(await read("cpu.weight"), "20");
        assertEquals(await read("pids.max"), "20");
      } finally {
        await cg.remove();
      }
    }),
});

Deno.test("oomKilled reads oom_kill from memory.events (a plain file here, not the kernel's)", async () => {
  // No cgroup2 memory controller on this host: the parsing is all that can be checked.
  const dir = await Deno.makeTempDir();
  try {
    const cg = new CgroupV2(dir);
    assertEquals(await cg.oomKilled(), false);
    await Deno.writeTextFile(
      join(dir, "memory.events"),
      "low 0\nhigh 0\nmax 3\noom 1\noom_kill 0\n",
    );
    assertEquals(await cg.oomKilled(), false);
    await Deno.writeTextFile(
      join(dir, "memory.events"),
      "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
    );
    assertEquals(await cg.oomKilled(), true);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cpu shares map to v2 weights as the OCI runtimes do", () => {
  assertEquals(sharesToWeight(2), 1);
  assertEquals(sharesToWeight(1024), 39);
  assertEquals(sharesToWeight(262144), 10000);
});

Deno.test({
  name: "a value the kernel refuses is reported with the file, the value and the errno",
  ignore: Deno.uid() !== 0 || !hostLayout().v1.has("memory"),
  fn: async () => {
    const id = `t-cgerr-${Deno.pid}`;
    const layout = hostLayout();
    // Checks upstream (container/limits.ts) refuse this; the writer must still explain it.
    const err = await assertRejects(
      () => createCgroup(id, { memory: 64 * 1024 * 1024, memorySwap: 4096 }, layout),
      CgroupError,
    );
    const mem = `${layout.v1.get("memory")}/tsbox/${id}`;
    assertStringIncludes(err.message, `cannot write "4096" to ${mem}/memory.`);
    assertStringIncludes(err.message, "Invalid argument (EINVAL)");
    assertEquals(err.code, "EINVAL");
    // Nothing of the refused cgroup stays.
    for (const dir of [mem, `${layout.v1.get("cpu")}/tsbox/${id}`]) {
      await assertRejects(() => Deno.stat(dir), Deno.errors.NotFound);
    }
  },
});
