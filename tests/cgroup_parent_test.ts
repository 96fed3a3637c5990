/**
 * `--cgroup-parent` against real containers (root; cgroup v1 here, the v2 placement is tested
 * on a real cgroup2 in src/runtime/cgroups_test.ts): the container's cgroup is made below the
 * given path in every hierarchy, the container itself sees that path in /proc/self/cgroup, and
 * the commands that find a container's cgroup again (update, pause, top, stats, rm) find it
 * there. The parent is the user's: removing the container leaves it.
 */
import { sharedBusyboxRoot } from "./busybox_store.ts";
import { assertEquals, assertOk, assertStringIncludes } from "./assert.ts";
import { tsbox } from "./cli.ts";
import { hostLayout } from "../src/runtime/cgroups.ts";
import { cgroupPaths, removeParentCgroups } from "./cgroups.ts";

const isRoot = Deno.uid() === 0;
const layout = hostLayout();
/** The controllers tsbox puts on v1 here (and that the container's /proc/self/cgroup lists). */
const CONTROLLERS = ["memory", "cpu", "pids", "devices"].filter((c) => layout.v1.has(c));
const v1 = CONTROLLERS.length === 4;

function rootTest(name: string, fn: () => Promise<void>) {
  Deno.test({ name, ignore: !isRoot || !v1, sanitizeResources: false, sanitizeOps: false, fn });
}

async function cli(args: string[]) {
  return await tsbox(args, { root: await sharedBusyboxRoot() });
}

async function ok(args: string[]): Promise<string> {
  const r = await cli(args);
  assertEquals(r.code, 0, `tsbox ${args.join(" ")}: ${r.stderr}`);
  return r.stdout.trim();
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

const top = `/t-cgparent-${Deno.pid}`;

rootTest(
  "--cgroup-parent: the container's cgroup is made under the path, seen inside",
  async () => {
    const name = "t-cgp-abs";
    const parent = `${top}/jobs`;
    try {
      await ok([
        "run",
        "-d",
        "--name",
        name,
        "--cgroupns",
        "host",
        "--cgroup-parent",
        parent,
        "busybox",
        "sleep",
        "1000",
      ]);
      const id = await ok(["inspect", "-f", "{{.Id}}", name]);
      const pid = await ok(["inspect", "-f", "{{.State.Pid}}", name]);
      assertEquals(await ok(["inspect", "-f", "{{.HostConfig.CgroupParent}}", name]), parent);
      // What the container's own processes see (a host cgroup namespace shows the full path).
      const inside = cgroupPaths(await ok(["exec", name, "cat", "/proc/self/cgroup"]));
      for (const c of CONTROLLERS) assertEquals(inside.get(c), `${parent}/${id}`, c);
      // What the host has: the dirs under the parent hold PID 1, the default place is unused.
      for (const c of CONTROLLERS) {
        const dir = `${layout.v1.get(c)}${parent}/${id}`;
        const procs = Deno.readTextFileSync(`${dir}/cgroup.procs`).trim().split("\n");
        assertOk(procs.includes(pid), `${dir}: ${procs}`);
        assertOk(!exists(`${layout.v1.get(c)}/tsbox/${id}`), `${c}: also under /tsbox`);
      }

      // The commands that find the cgroup again find it under the parent.
      await ok(["update", "--memory", "64m", name]);
      assertEquals(
        Deno.readTextFileSync(`${layout.v1.get("memory")}${parent}/${id}/memory.limit_in_bytes`)
          .trim(),
        String(64 * 1024 * 1024),
      );
      assertStringIncludes(await ok(["top", name]), "sleep 1000");
      assertEquals(await ok(["stats", "--no-stream", "--format", "{{.PIDs}}", name]), "1");
      await ok(["pause", name]);
      assertEquals(await ok(["inspect", "-f", "{{.State.Status}}", name]), "paused");
      const freezer = layout.v1.get("freezer");
      if (freezer) {
        assertEquals(
          Deno.readTextFileSync(`${freezer}${parent}/${id}/freezer.state`).trim(),
          "FROZEN",
        );
      }
      await ok(["unpause", name]);
      assertEquals(await ok(["exec", name, "echo", "thawed"]), "thawed");

      await ok(["rm", "-f", name]);
      for (const c of CONTROLLERS) {
        const mount = layout.v1.get(c);
        assertOk(!exists(`${mount}${parent}/${id}`), `${c}: container cgroup left after rm`);
        assertOk(exists(`${mount}${parent}`), `${c}: the user's parent was removed`);
      }
    } finally {
      await cli(["rm", "-f", name]);
      removeParentCgroups(top);
    }
  },
);

rootTest("--cgroup-parent: a relative path is taken from the root; '..' is refused", async () => {
  try {
    const out = await ok([
      "run",
      "--rm",
      "--cgroupns",
      "host",
      "--cgroup-parent",
      `${top.slice(1)}/rel`,
      "busybox",
      "cat",
      "/proc/self/cgroup",
    ]);
    const memory = cgroupPaths(out).get("memory") ?? "";
    assertOk(new RegExp(`^${top}/rel/[0-9a-f]{64}$`).test(memory), memory);
    // With its own cgroup namespace (the default) the container sees its cgroup as the root.
    const own = await ok([
      "run",
      "--rm",
      "--cgroup-parent",
      `${top}/ns`,
      "busybox",
      "cat",
      "/proc/self/cgroup",
    ]);
    assertEquals(cgroupPaths(own).get("memory"), "/");

    const before = await ok(["ps", "-aq"]);
    const r = await cli(["run", "--rm", "--cgroup-parent", "../escape", "busybox", "true"]);
    assertEquals(r.code, 125, r.stderr);
    assertStringIncludes(r.stderr, `invalid --cgroup-parent "../escape"`);
    assertEquals(await ok(["ps", "-aq"]), before);
    assertOk(!exists(`${layout.v1.get("memory")}/../escape`));
  } finally {
    removeParentCgroups(top);
  }
});
