/**
 * Detached supervisors run from the bundle of their sources (src/container/supervisor_bundle.ts)
 * once it is current: the supervisor's command line names the bundle, and what the bundle holds
 * besides supervisor_main.ts's graph (the lazily imported health monitor and cleanup) works.
 */
import { sharedBusyboxRoot } from "./busybox_store.ts";
import { assertEquals, assertOk, assertStringIncludes } from "./assert.ts";
import { rootTest, tsbox } from "./cli.ts";
import { BUNDLE_PATH, bundleIsCurrent } from "../src/container/supervisor_bundle.ts";
import { buildSupervisorBundle } from "../src/container/supervisor_bundle_build.ts";

function parentOf(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
}

async function until<T>(what: string, fn: () => Promise<T | undefined>): Promise<T> {
  const end = Date.now() + 30_000;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

rootTest("run -d from the bundle: logs, healthcheck, stop, and --rm removal", async () => {
  const root = await sharedBusyboxRoot();
  await buildSupervisorBundle();
  assertOk(bundleIsCurrent(), "the bundle just made is current");
  const run = await tsbox([
    "run",
    "-d",
    "--network",
    "none",
    "--name",
    "t-bundled",
    "--health-cmd",
    "test -e /tmp/ready",
    "--health-interval",
    "1s",
    "busybox",
    "sh",
    "-c",
    "echo from-the-bundle; touch /tmp/ready; exec sleep 300",
  ], { root });
  assertEquals(run.code, 0, run.stderr);
  const id = run.stdout.trim();
  const gone = await tsbox([
    "run",
    "-d",
    "--rm",
    "--network",
    "none",
    "--name",
    "t-bundled-rm",
    "busybox",
    "sleep",
    "300",
  ], { root });
  assertEquals(gone.code, 0, gone.stderr);
  try {
    const inspect = JSON.parse((await tsbox(["inspect", id], { root })).stdout)[0];
    const args = Deno.readTextFileSync(`/proc/${parentOf(inspect.State.Pid)}/cmdline`)
      .split("\0");
    assertEquals(args.slice(-4, -1), [BUNDLE_PATH, root, id], "the supervisor runs the bundle");
    const logs = await tsbox(["logs", id], { root });
    assertStringIncludes(logs.stdout, "from-the-bundle");
    // The health monitor is loaded lazily: from the bundle's own copy.
    await until("healthy", async () => {
      const r = await tsbox(["inspect", "--format", "{{.State.Health.Status}}", id], { root });
      return r.stdout.trim() === "healthy" ? true : undefined;
    });
    // --rm: the supervisor removes its container (cleanup.ts, lazily loaded) when it ends.
    assertEquals((await tsbox(["stop", "-t", "1", "t-bundled-rm"], { root })).code, 0);
    await until("t-bundled-rm removed", async () => {
      const r = await tsbox(["ps", "-a", "--format", "{{.Names}}"], { root });
      return r.stdout.split("\n").includes("t-bundled-rm") ? undefined : true;
    });
    const stop = await tsbox(["stop", "-t", "1", id], { root });
    assertEquals(stop.code, 0, stop.stderr);
    const state = await tsbox(["inspect", "--format", "{{.State.Status}}", id], { root });
    assertEquals(state.stdout.trim(), "exited");
  } finally {
    await tsbox(["rm", "-f", id, "t-bundled-rm"], { root });
  }
});
