/**
 * `run -d` spawns its supervisor before the container exists (src/container/supervisor_spawn.ts)
 * for the id it is about to create, and tells it on stdin to start. What must not show: the
 * supervisor's command line names its store and container as before, its stdin is /dev/null,
 * and a `run -d` that fails before the container exists leaves no supervisor process behind.
 */
import { sharedBusyboxRoot } from "./busybox_store.ts";
import { assertEquals, assertOk } from "./assert.ts";
import { rootTest, tsbox } from "./cli.ts";

/**
 * Processes whose command line holds `root` and then `arg` (a supervisor's last two), or any
 * container id when `arg` is undefined.
 */
function supervisorsNaming(root: string, arg?: string): number[] {
  const found: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      if (/^[ZX]/.test(stat.slice(stat.lastIndexOf(")") + 2))) continue;
      const args = Deno.readTextFileSync(`/proc/${entry.name}/cmdline`).split("\0");
      const named = arg === undefined
        ? /^[0-9a-f]{64}$/.test(args.at(-2) ?? "")
        : args.at(-2) === arg;
      if (named && args.at(-3) === root) found.push(Number(entry.name));
    } catch { /* ended */ }
  }
  return found;
}

function parentOf(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
}

rootTest("run -d: the early supervisor names its container and reads nothing more", async () => {
  const root = await sharedBusyboxRoot();
  const run = await tsbox(
    ["run", "-d", "--network", "none", "--name", "t-early-sup", "busybox", "sleep", "300"],
    { root },
  );
  assertEquals(run.code, 0, run.stderr);
  const id = run.stdout.trim();
  try {
    const inspect = await tsbox(["inspect", id], { root });
    const pid1 = JSON.parse(inspect.stdout)[0].State.Pid as number;
    const supervisor = parentOf(pid1);
    const args = Deno.readTextFileSync(`/proc/${supervisor}/cmdline`).split("\0");
    assertEquals(args.slice(-3, -1), [root, id], "its command line ends with ROOT ID");
    assertEquals(Deno.readLinkSync(`/proc/${supervisor}/fd/0`), "/dev/null");
    assertEquals(supervisorsNaming(root, id), [supervisor]);
  } finally {
    await tsbox(["rm", "-f", id], { root });
  }
});

rootTest("run -d that fails before the container exists leaves no supervisor", async () => {
  const root = await sharedBusyboxRoot();
  const first = await tsbox(
    ["run", "-d", "--network", "none", "--name", "t-early-dup", "busybox", "sleep", "300"],
    { root },
  );
  assertEquals(first.code, 0, first.stderr);
  const before = supervisorsNaming(root).length;
  try {
    for (
      const args of [
        ["--name", "t-early-dup", "busybox"], // the name is taken
        ["localhost:1/t-early-none:latest"], // no such image, nowhere to pull it from
      ]
    ) {
      const failed = await tsbox(
        ["run", "-d", "--network", "none", ...args, "sleep", "300"],
        { root },
      );
      assertEquals(failed.code, 125, failed.stderr);
      // The pending supervisor saw EOF and ended (the failed run waited for it).
      assertEquals(supervisorsNaming(root).length, before);
    }
    const ps = await tsbox(["ps", "-a", "-q", "--filter", "name=t-early"], { root });
    assertEquals(ps.stdout.trim().split("\n").length, 1, ps.stdout);
    assertOk(ps.stdout.trim().length > 0);
  } finally {
    await tsbox(["rm", "-f", "t-early-dup"], { root });
  }
});
