import { join } from "node:path";
import { assertEquals, assertOk } from "../../tests/assert.ts";
import { startTime } from "../container/proc.ts";
import { mountOverlay } from "../runtime/rootfs.ts";
import { isAbandoned, makeBuildDir, sweepAbandonedBuilds } from "./sweep.ts";

const isRoot = Deno.uid() === 0;

/** A process that has ended (and was reaped): its pid and start time. */
async function endedProcess(): Promise<{ pid: number; start: number }> {
  const child = new Deno.Command("sleep", { args: ["30"] }).spawn();
  const start = startTime(child.pid);
  assertOk(start !== undefined);
  child.kill("SIGKILL");
  await child.status;
  return { pid: child.pid, start };
}

Deno.test("isAbandoned: only a build whose owner no longer runs", async () => {
  const me = startTime(Deno.pid)!;
  assertEquals(isAbandoned(`b-${Deno.pid}-${me}-00ff00ff00ff`), false);
  // The same pid with another start time is a reused pid: the owner is gone.
  assertEquals(isAbandoned(`b-${Deno.pid}-${me + 1}-00ff00ff00ff`), true);
  const ended = await endedProcess();
  assertEquals(isAbandoned(`b-${ended.pid}-${ended.start}-abcdef`), true);
  // Not a build directory of any kind: never touched.
  assertEquals(isAbandoned("cache"), false);
  assertEquals(isAbandoned("b-1-2-not-hex"), false);
  // Directories of builds before owners were recorded: only once they are a day old.
  assertEquals(isAbandoned("b-AbC123", new Date()), false);
  assertEquals(isAbandoned("b-AbC123", new Date(Date.now() - 25 * 3600_000)), true);
});

Deno.test("sweepAbandonedBuilds removes dead builds' directories and keeps live ones", async () => {
  const root = await Deno.makeTempDir({ prefix: "tsbox-sweep-test-" });
  try {
    const mine = await makeBuildDir(root);
    assertOk(/\/build\/b-\d+-\d+-[0-9a-f]{12}$/.test(mine), mine);
    const ended = await endedProcess();
    const dead = join(root, "build", `b-${ended.pid}-${ended.start}-0123456789ab`);
    // A dead build's tree may hold directories a layer made read-only.
    await Deno.mkdir(join(dead, "m1", "upper", "ro"), { recursive: true });
    await Deno.writeTextFile(join(dead, "m1", "upper", "ro", "f"), "x");
    await Deno.chmod(join(dead, "m1", "upper", "ro"), 0o555);
    const oldLegacy = join(root, "build", "b-Old123");
    const newLegacy = join(root, "build", "b-New123");
    const other = join(root, "build", "notes");
    for (const d of [oldLegacy, newLegacy, other]) await Deno.mkdir(d);
    const dayAgo = new Date(Date.now() - 25 * 3600_000);
    await Deno.utime(oldLegacy, dayAgo, dayAgo);
    // Even an old directory is kept while its owner runs.
    await Deno.utime(mine, dayAgo, dayAgo);

    const removed = await sweepAbandonedBuilds({ root });
    assertEquals(removed.sort(), [dead, oldLegacy].sort());
    const left = [...Deno.readDirSync(join(root, "build"))].map((e) => e.name).sort();
    assertEquals(left, ["b-New123", "notes", mine.split("/").pop()!].sort());
    // Nothing to do the second time, and no build directory at all is fine too.
    assertEquals(await sweepAbandonedBuilds({ root }), []);
    assertEquals(await sweepAbandonedBuilds({ root: join(root, "missing") }), []);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test({
  name: "sweepAbandonedBuilds unmounts a dead build's overlays before removing it (root)",
  ignore: !isRoot,
  fn: async () => {
    const root = await Deno.makeTempDir({ prefix: "tsbox-sweep-test-" });
    const ended = await endedProcess();
    const dead = join(root, "build", `b-${ended.pid}-${ended.start}-0123456789ab`);
    const step = join(dead, `run-${"ab".repeat(32)}`);
    try {
      for (const d of ["lower", "upper", "work", "rootfs"]) {
        await Deno.mkdir(join(step, d), { recursive: true });
      }
      await Deno.writeTextFile(join(step, "lower", "from-lower"), "keep me");
      const overlay = () =>
        mountOverlay({
          lowerBase: step,
          lower: ["lower"],
          upper: join(step, "upper"),
          work: join(step, "work"),
          target: join(step, "rootfs"),
        });
      overlay();
      overlay(); // stacked twice, as a mount point can be
      const removed = await sweepAbandonedBuilds({ root });
      assertEquals(removed, [dead]);
      const mounted = Deno.readTextFileSync("/proc/self/mountinfo").includes(root);
      assertEquals(mounted, false);
    } finally {
      const real = Deno.realPathSync(root);
      for (const line of Deno.readTextFileSync("/proc/self/mountinfo").split("\n")) {
        const point = line.split(" ")[4];
        if (point?.startsWith(real)) {
          await new Deno.Command("umount", { args: ["-l", point] }).output();
        }
      }
      await Deno.remove(root, { recursive: true });
    }
  },
});
