/**
 * pause/unpause, top and stats on the cgroup v2 path, against a real cgroup2 directory: the
 * same functions the commands call (setFrozen, containerProcesses, sampleStats), given a layout
 * whose v2 root is that directory. Memory usage and limits are not covered (no v2 memory
 * controller on our v1 hybrid machines; see tests/cgroup2.ts).
 */
import { assertEquals, assertNotEquals, assertOk } from "../../tests/assert.ts";
import {
  canUseCgroup2,
  cgroupEvents,
  cpuTicks,
  dead,
  poll,
  procState,
  withCgroup2,
} from "../../tests/cgroup2.ts";
import { type CgroupV2, createCgroup } from "../runtime/cgroups.ts";
import { containerCgroup, setFrozen } from "./cgroup.ts";
import { containerProcesses, sampleStats } from "./stats.ts";

const real = { ignore: !canUseCgroup2, sanitizeResources: false, sanitizeOps: false };

/** A process that is always runnable (state R), niced so it takes little from the others. */
function spawnBusy(): Deno.ChildProcess {
  return new Deno.Command("nice", {
    args: ["-n", "19", "sh", "-c", "while :; do :; done"],
    stdout: "null",
    stderr: "null",
  }).spawn();
}

async function reap(child: Deno.ChildProcess): Promise<void> {
  try {
    child.kill("SIGKILL");
  } catch { /* already gone */ }
  await child.status;
}

Deno.test({
  ...real,
  name: "pause on v2 (real cgroup2): cgroup.freeze stops a busy process, unpause resumes it",
  fn: () =>
    withCgroup2(async (layout) => {
      const id = "c2pause";
      await createCgroup(id, {}, layout);
      const cg = containerCgroup(id, layout) as CgroupV2;
      const child = spawnBusy();
      try {
        await cg.join(child.pid);
        await poll("the process runs", () => procState(child.pid) === "R");

        await setFrozen(id, true, layout);
        // setFrozen returns once the kernel says so, not merely after the write.
        assertEquals(cgroupEvents(cg.dir).get("frozen"), "1");
        assertEquals((await Deno.readTextFile(`${cg.dir}/cgroup.freeze`)).trim(), "1");
        const state = procState(child.pid);
        assertOk(state === "S" || state === "D", `frozen busy loop in state ${state}`);
        // A frozen task gets no CPU: its time stays put however long we look.
        const ticks = cpuTicks(child.pid);
        await new Promise((r) => setTimeout(r, 300));
        assertEquals(cpuTicks(child.pid), ticks);
        assertEquals(procState(child.pid), state);

        await setFrozen(id, false, layout);
        assertEquals(cgroupEvents(cg.dir).get("frozen"), "0");
        await poll("it uses CPU again", () => cpuTicks(child.pid) > ticks);
        assertNotEquals(procState(child.pid), "Z");
      } finally {
        await reap(child);
      }
      await cg.remove();
    }),
});

Deno.test({
  ...real,
  name: "pause on v2 (real cgroup2): a frozen container is still killed and removed",
  fn: () =>
    withCgroup2(async (layout) => {
      const id = "c2pkill";
      await createCgroup(id, {}, layout);
      const cg = containerCgroup(id, layout) as CgroupV2;
      const child = spawnBusy();
      try {
        await cg.join(child.pid);
        await setFrozen(id, true, layout);
        assertEquals(cgroupEvents(cg.dir).get("frozen"), "1");
        // What `rm -f` of a paused container ends in: cleanup's remove of the cgroup.
        await cg.remove();
        await poll("the frozen process is dead", () => dead(child.pid));
        assertEquals((await child.status).signal, "SIGKILL");
      } finally {
        await reap(child);
      }
    }),
});

Deno.test({
  ...real,
  name: "top and stats on v2 (real cgroup2): processes, task count and CPU from cpu.stat",
  fn: () =>
    withCgroup2(async (layout) => {
      const id = "c2stats";
      await createCgroup(id, {}, layout);
      const cg = containerCgroup(id, layout) as CgroupV2;
      const child = spawnBusy();
      try {
        await cg.join(child.pid);
        // `nice` execs sh: wait until the joined pid runs the loop.
        await poll("sh runs", () => Deno.readTextFileSync(`/proc/${child.pid}/comm`) === "sh\n");
        const rows = await containerProcesses(id, layout);
        assertEquals(rows.map((r) => [r.pid, r.ppid, r.cmd]), [
          [child.pid, Deno.pid, "sh -c while :; do :; done"],
        ]);
        // No pids controller here: the count comes from cgroup.threads (one task).
        let sample = await sampleStats(id, 100, layout);
        assertEquals(sample.pids, 1);
        // cpu.stat's usage_usec is kept by the cgroup core even without the cpu controller.
        await poll("CPU use seen", async () => {
          sample = await sampleStats(id, 100, layout);
          return sample.cpuPercent > 0;
        });
        assertOk(
          sample.cpuPercent <= 100 * navigator.hardwareConcurrency + 1,
          JSON.stringify(sample),
        );
      } finally {
        await reap(child);
      }
      await poll("populated 0", () => cgroupEvents(cg.dir).get("populated") === "0");
      const after = await sampleStats(id, 50, layout);
      assertEquals([after.pids, after.cpuPercent], [0, 0]);
      await cg.remove();
    }),
});
