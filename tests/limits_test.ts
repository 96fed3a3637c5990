/**
 * Resource limits as docker checks them (root): refused values exit 125 with docker's message
 * before anything is created; 0 means no limit; a valid limit reaches the container's cgroup.
 */
import { sharedBusyboxRoot } from "./busybox_store.ts";
import { assertEquals, assertStringIncludes } from "./assert.ts";
import { tsbox } from "./cli.ts";

const isRoot = Deno.uid() === 0;

function rootTest(name: string, fn: () => Promise<void>) {
  Deno.test({ name, ignore: !isRoot, sanitizeResources: false, sanitizeOps: false, fn });
}

async function t(args: string[]) {
  return await tsbox(args, { root: await sharedBusyboxRoot() });
}

/** The containers the store holds (rows) and their directories. */
async function leftovers(): Promise<string[]> {
  const root = await sharedBusyboxRoot();
  const ps = await t(["ps", "-a", "-q", "--no-trunc"]);
  assertEquals(ps.code, 0, ps.stderr);
  const dirs: string[] = [];
  try {
    for await (const e of Deno.readDir(`${root}/containers`)) dirs.push(`dir ${e.name}`);
  } catch { /* no container was ever made */ }
  return [...ps.stdout.split("\n").filter(Boolean), ...dirs];
}

const cpus = navigator.hardwareConcurrency;

const REFUSED: [string, string[], string][] = [
  ["memory under 6 MB", ["--memory", "4m"], "Minimum memory limit allowed is 6MB"],
  ["memory of 1 byte", ["-m", "1"], "Minimum memory limit allowed is 6MB"],
  [
    "memory-swap under memory",
    ["--memory", "64m", "--memory-swap", "32m"],
    "Minimum memoryswap limit should be larger than memory limit, see usage",
  ],
  [
    "memory-swap without memory",
    ["--memory-swap", "64m"],
    "You should always set the Memory limit when using Memoryswap limit, see usage",
  ],
  [
    "memory beyond what the kernel takes",
    ["--memory", "99999999999t"],
    "invalid value for --memory: ",
  ],
  [
    "more CPUs than the host has",
    ["--cpus", String(cpus + 1)],
    `range of CPUs is from 0.01 to ${cpus}.00, as there are only ${cpus} CPUs available`,
  ],
  [
    "negative CPUs",
    ["--cpus=-1"],
    `range of CPUs is from 0.01 to ${cpus}.00, as there are only ${cpus} CPUs available`,
  ],
  [
    "less CPU than the kernel's 1 ms quota",
    ["--cpus", "0.001"],
    `range of CPUs is from 0.01 to ${cpus}.00`,
  ],
];

for (const [what, flags, message] of REFUSED) {
  rootTest(`${what} is refused with docker's message, exit 125, nothing created`, async () => {
    for (const cmd of [["run", "--rm"], ["run", "-d"], ["create"]]) {
      const r = await t([...cmd, "--name", "t-lim-refused", ...flags, "busybox", "true"]);
      assertEquals(r.code, 125, `${cmd.join(" ")}: ${r.stdout}${r.stderr}`);
      assertStringIncludes(r.stderr, message);
      // The kernel's errno is never the whole story (it was "Invalid argument" before).
      assertEquals(/os error|Invalid argument \(/.test(r.stderr), false, r.stderr);
      assertEquals(await leftovers(), [], `${cmd.join(" ")} left a container`);
    }
  });
}

rootTest("--memory 0, --memory-swap 0, --cpus 0 and --pids-limit 0/-1 mean no limit", async () => {
  for (
    const flags of [
      ["--memory", "0"],
      ["--memory", "0", "--memory-swap", "0"],
      ["--memory-swap", "-1"],
      ["--cpus", "0"],
      ["--pids-limit", "0"],
      ["--pids-limit", "-1"],
      ["--cpu-shares", "0"],
    ]
  ) {
    // Before: --memory 0 wrote a limit of 0 and the kernel killed the container (137).
    const r = await t(["run", "--rm", ...flags, "busybox", "sh", "-c", "echo alive"]);
    assertEquals(r.code, 0, `${flags.join(" ")}: ${r.stderr}`);
    assertEquals(r.stdout, "alive\n", flags.join(" "));
  }
  assertEquals(await leftovers(), []);
});

rootTest("--memory 64m with swap, --pids-limit, --cpus N reach the cgroup files", async () => {
  const run = await t([
    "run",
    "-d",
    "--name",
    "t-lim-ok",
    "--memory",
    "64m",
    "--pids-limit",
    "50",
    "--cpus",
    String(cpus),
    "busybox",
    "sleep",
    "60",
  ]);
  assertEquals(run.code, 0, run.stderr);
  const id = run.stdout.trim();
  try {
    const mem = `/sys/fs/cgroup/memory/tsbox/${id}`;
    const read = async (p: string) => (await Deno.readTextFile(p)).trim();
    assertEquals(await read(`${mem}/memory.limit_in_bytes`), String(64 * 1024 * 1024));
    try {
      // docker's default swap: as much again as the memory.
      assertEquals(await read(`${mem}/memory.memsw.limit_in_bytes`), String(128 * 1024 * 1024));
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err; // no swap accounting here
    }
    assertEquals(await read(`/sys/fs/cgroup/pids/tsbox/${id}/pids.max`), "50");
    assertEquals(
      await read(`/sys/fs/cgroup/cpu/tsbox/${id}/cpu.cfs_quota_us`),
      String(cpus * 100_000),
    );
    const inspect = await t(["inspect", id]);
    assertEquals(inspect.code, 0, inspect.stderr);
  } finally {
    const rm = await t(["rm", "-f", id]);
    assertEquals(rm.code, 0, rm.stderr);
  }
  assertEquals(await leftovers(), []);
});
