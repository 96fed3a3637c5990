/**
 * Detached containers: `tsbox run -d --network none busybox sleep` against `podman run -d --network none
 * --runtime crun` (interleaved in the same run, medians and ratio), then the memory the
 * supervisors of the running containers cost: the sum of `Pss` from /proc/PID/smaps_rollup over
 * every tsbox supervisor, per container (target <= 15 MiB), next to podman's conmon. Needs root;
 * not part of CI.
 *
 *     deno run -A bench/lifecycle_bench.ts [--containers N]
 *
 * @module
 */
import { join } from "node:path";
import { seedStore } from "../tests/busybox_store.ts";
import { takeDownStoreNetworks } from "../tests/cleanup.ts";
import { benchRow, ms } from "./table.ts";
import { formatBreakdown, pssBreakdown } from "./pss.ts";
import { bundleIsCurrent } from "../src/container/supervisor_bundle.ts";
import { buildSupervisorBundle } from "../src/container/supervisor_bundle_build.ts";

const args = Deno.args;
const flag = (name: string, def: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const COUNT = flag("--containers", 20);
const TARGET_MIB = 15;
const MAIN = new URL("../main.ts", import.meta.url).pathname;
const MiB = 1024 * 1024;
/** How long after the starts the supervisors are measured again: V8's memory reducer has run. */
const SETTLE_MS = 30_000;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function run(
  cmd: string,
  cmdArgs: string[],
  env?: Record<string, string>,
): Promise<{ ms: number; stdout: string }> {
  const t0 = performance.now();
  const out = await new Deno.Command(cmd, { args: cmdArgs, env, stdout: "piped", stderr: "piped" })
    .output();
  const ms = performance.now() - t0;
  if (!out.success) {
    throw new Error(`${cmd} ${cmdArgs.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return { ms, stdout: new TextDecoder().decode(out.stdout).trim() };
}

/** Proportional set size of `pid` in bytes. */
function pss(pid: number): number {
  const text = Deno.readTextFileSync(`/proc/${pid}/smaps_rollup`);
  return Number(/^Pss:\s+(\d+) kB/m.exec(text)?.[1] ?? NaN) * 1024;
}

function rss(pid: number): number {
  const text = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(text)?.[1] ?? NaN) * 1024;
}

/** Unmounts whatever podman left mounted below `dir`, deepest first. */
async function unmountBelow(dir: string): Promise<void> {
  const points = Deno.readTextFileSync("/proc/self/mountinfo").split("\n")
    .map((l) => l.split(" ")[4])
    .filter((p) => p?.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const p of points) await run("umount", ["-l", p]).catch(() => {});
}

// Supervisors run from their bundle once it is current (supervisor_bundle.ts); the first spawn
// after a change of the sources would start its build and run from the sources meanwhile.
if (!bundleIsCurrent()) await buildSupervisorBundle();

// Short paths: podman refuses a runroot longer than 50 characters.
const base = await Deno.makeTempDir({ dir: "/tmp", prefix: "lb" });
const root = join(base, "t");
const { layerDir } = await seedStore(root);
const tsbox = (...a: string[]) => run(Deno.execPath(), ["run", "-A", MAIN, "--root", root, ...a]);

await Deno.writeTextFile(
  join(base, "containers.conf"),
  '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n',
);
const podmanEnv = { CONTAINERS_CONF: join(base, "containers.conf") };
const podmanArgs = ["--root", join(base, "pr"), "--runroot", join(base, "prr")];
const podman = (...a: string[]) => run("podman", [...podmanArgs, ...a], podmanEnv);
let havePodman = true;
try {
  // crun 1.8 refuses a hybrid layout until hugetlb has its v1 hierarchy (as cgroupfs-mount does).
  if (!Deno.readTextFileSync("/proc/self/mountinfo").includes(" /sys/fs/cgroup/hugetlb ")) {
    console.error("mounting the v1 hugetlb hierarchy for crun");
    await Deno.mkdir("/sys/fs/cgroup/hugetlb", { recursive: true });
    await run("mount", ["-t", "cgroup", "-o", "hugetlb", "cgroup", "/sys/fs/cgroup/hugetlb"]);
  }
  const tar = join(base, "busybox.tar");
  await run("tar", ["-C", layerDir, "-cf", tar, "."]);
  await podman("import", tar, "localhost/tsbox-bench-busybox:latest");
} catch (err) {
  havePodman = false;
  console.error(`podman unavailable, measuring tsbox only: ${(err as Error).message}`);
}

const tsboxIds: string[] = [];
const podmanIds: string[] = [];
const tsboxMs: number[] = [];
const podmanMs: number[] = [];
try {
  for (let i = 0; i < COUNT; i++) {
    // The same work as the peer's: no network (the default bridge is measured by run_bench).
    const t = await tsbox("run", "-d", "--network", "none", "busybox", "sleep", "3600");
    tsboxIds.push(t.stdout);
    tsboxMs.push(t.ms);
    if (havePodman) {
      const p = await podman(
        "run",
        "-d",
        "--network",
        "none",
        "--runtime",
        "crun",
        "localhost/tsbox-bench-busybox",
        "sleep",
        "3600",
      );
      podmanIds.push(p.stdout);
      podmanMs.push(p.ms);
    }
  }
  console.log(
    `tsbox run -d --network none busybox sleep: median ${
      median(tsboxMs).toFixed(1)
    } ms (${COUNT} runs)`,
  );
  if (havePodman) {
    console.log(
      `podman run -d --network none --runtime crun: median ${median(podmanMs).toFixed(1)} ms`,
    );
    console.log(`ratio podman/tsbox: ${(median(podmanMs) / median(tsboxMs)).toFixed(2)}x`);
  }
  benchRow({
    work: "run -d --network none busybox sleep vs podman run -d --network none --runtime crun",
    tsbox: ms(median(tsboxMs)),
    peer: havePodman ? ms(median(podmanMs)) : "—",
    ratio: havePodman ? median(tsboxMs) / median(podmanMs) : undefined,
    target: "≤ 0.70",
  });

  // The supervisor is PID 1's parent.
  const inspected = JSON.parse((await tsbox("container", "inspect", ...tsboxIds)).stdout) as {
    State: { Pid: number; Running: boolean };
  }[];
  const supervisors = inspected.map((c) => {
    if (!c.State.Running) throw new Error("a container is not running");
    const stat = Deno.readTextFileSync(`/proc/${c.State.Pid}/stat`);
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  });
  const pssSum = supervisors.reduce((s, pid) => s + pss(pid), 0);
  const rssMedian = median(supervisors.map(rss));
  const perContainer = pssSum / COUNT / MiB;
  let conmonPerContainer: number | undefined;
  console.log(
    `tsbox supervisors of ${COUNT} running containers: PSS ${(pssSum / MiB).toFixed(1)} MiB in ` +
      `all, ${perContainer.toFixed(1)} MiB per container (target <= ${TARGET_MIB}); ` +
      `RSS median ${(rssMedian / MiB).toFixed(1)} MiB`,
  );
  console.log(formatBreakdown(pssBreakdown(supervisors)));
  // Steady state: once idle, V8's memory reducer gives back what starting left in its heap.
  await new Promise((r) => setTimeout(r, SETTLE_MS));
  const settled = pssBreakdown(supervisors);
  console.log(
    `after ${SETTLE_MS / 1000} s: ${(settled.perProcess / MiB).toFixed(1)} MiB per container\n` +
      formatBreakdown(settled),
  );
  if (havePodman) {
    const conmons = (await podman("inspect", "--format", "{{.State.ConmonPid}}", ...podmanIds))
      .stdout.split("\n").map(Number);
    const conmonPss = conmons.reduce((s, pid) => s + pss(pid), 0);
    conmonPerContainer = conmonPss / COUNT / MiB;
    console.log(
      `podman's conmon for ${COUNT} containers: PSS ${(conmonPss / MiB).toFixed(1)} MiB in all, ` +
        `${(conmonPss / COUNT / MiB).toFixed(2)} MiB per container`,
    );
  }
  const settledPer = settled.perProcess / MiB;
  if (settledPer > TARGET_MIB) console.log("PSS per container is over the target");
  benchRow({
    work: `supervisor PSS per container, ${COUNT} running, ${SETTLE_MS / 1000} s after start ` +
      `(peer: podman's conmon)`,
    tsbox: `${settledPer.toFixed(1)} MiB (${perContainer.toFixed(1)} right after start)`,
    peer: conmonPerContainer === undefined ? "—" : `${conmonPerContainer.toFixed(2)} MiB`,
    target: "≤ 15 MiB",
  });
} finally {
  if (tsboxIds.length > 0) await tsbox("rm", "-f", ...tsboxIds).catch(() => {});
  if (podmanIds.length > 0) await podman("rm", "-f", "-t", "0", ...podmanIds).catch(() => {});
  if (havePodman) await podman("rmi", "-a", "-f").catch(() => {});
  takeDownStoreNetworks(root); // the default bridge is the host's
  await unmountBelow(base);
  await Deno.remove(base, { recursive: true });
}
