/**
 * tsbox as an OCI runtime (`tsbox runc ...`, issue 14) against crun and runc, interleaved in the
 * same run (medians, ratios):
 *
 * 1. under podman: `podman --runtime <tsbox-runc> run --rm busybox true` against
 *    `podman --runtime crun run --rm busybox true` (podman, conmon and the network the same);
 * 2. the runtime alone on one prepared bundle (busybox's rootfs in a dir, config.json from
 *    `crun spec` running `true` without a terminal): `<tsbox-runc> run` against `crun run` and
 *    `runc run`.
 *
 * The runtime executable comes from tests/runc_bin.ts, so `TSBOX_TEST_RUNC=/usr/sbin/runc`
 * measures the bench itself against another runtime. Needs root; not part of the test suite.
 *
 *     deno run -A bench/oci_runtime_bench.ts [--runs N] [--podman-runs N]
 *
 * @module
 */
import { join } from "node:path";
import { seedStore } from "../tests/busybox_store.ts";
import { runcBinary } from "../tests/runc_bin.ts";
import { benchRow, median, ms } from "./table.ts";

const args = Deno.args;
const flag = (name: string, def: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const RUNS = flag("--runs", 30);
const PODMAN_RUNS = flag("--podman-runs", 20);

async function timed(
  cmd: string,
  cmdArgs: string[],
  env?: Record<string, string>,
): Promise<number> {
  const t0 = performance.now();
  const out = await new Deno.Command(cmd, {
    args: cmdArgs,
    env,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  const elapsed = performance.now() - t0;
  if (!out.success) {
    throw new Error(
      `${cmd} ${cmdArgs.join(" ")}: exit ${out.code}: ${new TextDecoder().decode(out.stderr)}`,
    );
  }
  return elapsed;
}

interface Series {
  readonly label: string;
  readonly cmd: string;
  /** Arguments for round `i` (bundle runs need a fresh container id each time). */
  readonly args: (i: number) => string[];
  readonly env?: Record<string, string>;
}

/** Runs every series once per round, in turn, and returns each one's median. */
async function interleaved(series: Series[], rounds: number): Promise<number[]> {
  const times = series.map(() => [] as number[]);
  for (let i = 0; i < rounds; i++) {
    for (const [k, s] of series.entries()) times[k].push(await timed(s.cmd, s.args(i), s.env));
  }
  const medians = times.map(median);
  for (const [k, s] of series.entries()) {
    console.log(`${s.label}: median ${ms(medians[k])} (${rounds} runs)`);
  }
  return medians;
}

const work = await Deno.makeTempDir({ prefix: "tsbox-bench-oci-" });
const storeRoot = join(work, "store");
const runtime = await runcBinary(work);
const runtimeName = Deno.env.get("TSBOX_TEST_RUNC") ? `${runtime} (TSBOX_TEST_RUNC)` : "tsbox";
console.log(`runtime under test: ${runtime}${runtimeName === "tsbox" ? " (tsbox runc)" : ""}`);

try {
  await Deno.mkdir(storeRoot);
  const { layerDir } = await seedStore(storeRoot);

  // crun 1.8 refuses a hybrid layout until hugetlb has its v1 hierarchy (as cgroupfs-mount does).
  if (!Deno.readTextFileSync("/proc/self/mountinfo").includes(" /sys/fs/cgroup/hugetlb ")) {
    console.error("mounting the v1 hugetlb hierarchy for crun");
    await Deno.mkdir("/sys/fs/cgroup/hugetlb", { recursive: true });
    await timed("mount", ["-t", "cgroup", "-o", "hugetlb", "cgroup", "/sys/fs/cgroup/hugetlb"]);
  }

  // 1. Under podman: the same busybox tree imported as an image.
  await Deno.writeTextFile(
    join(work, "containers.conf"),
    '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n',
  );
  const podmanEnv = { CONTAINERS_CONF: join(work, "containers.conf") };
  const tar = join(work, "busybox.tar");
  await timed("tar", ["-C", layerDir, "-cf", tar, "."]);
  await timed("podman", ["import", tar, "localhost/tsbox-bench-busybox:latest"], podmanEnv);
  const podmanRun = (rt: string) => [
    "--runtime",
    rt,
    "run",
    "--rm",
    "localhost/tsbox-bench-busybox",
    "true",
  ];
  const podmanSeries: Series[] = [
    { label: `podman --runtime ${runtimeName} run --rm busybox true`, rt: runtime },
    { label: "podman --runtime crun run --rm busybox true", rt: "crun" },
  ].map(({ label, rt }) => ({ label, cmd: "podman", args: () => podmanRun(rt), env: podmanEnv }));
  // A first run of each: a check that it works, and podman's caches warm for both.
  for (const s of podmanSeries) await timed(s.cmd, s.args(0), s.env);
  const [podmanMine, podmanCrun] = await interleaved(podmanSeries, PODMAN_RUNS);
  console.log(
    `ratio podman+${runtimeName} / podman+crun: ${(podmanMine / podmanCrun).toFixed(2)}x`,
  );
  benchRow({
    work: "podman --runtime <tsbox runc> run --rm busybox true vs podman --runtime crun",
    tsbox: ms(podmanMine),
    peer: ms(podmanCrun),
    ratio: podmanMine / podmanCrun,
    target: "—",
  });

  // 2. The runtime alone on one bundle: busybox's rootfs and `crun spec`'s config.json, made to
  // run `true` without a terminal (nothing would be there to receive a pty).
  const bundle = join(work, "bundle");
  await Deno.mkdir(join(bundle, "rootfs"), { recursive: true });
  await timed("tar", ["-C", join(bundle, "rootfs"), "-xf", tar]);
  await timed("crun", ["spec", "--bundle", bundle]);
  const spec = JSON.parse(await Deno.readTextFile(join(bundle, "config.json")));
  spec.process.terminal = false;
  spec.process.args = ["true"];
  await Deno.writeTextFile(join(bundle, "config.json"), JSON.stringify(spec, null, 2));
  const bundleRun = (name: string, cmd: string): Series => ({
    label: `${name} run (one bundle, true)`,
    cmd,
    args: (i) => [
      "--root",
      join(work, `state-${name.replace(/\W/g, "_")}`),
      "run",
      "--bundle",
      bundle,
      `tsbox-bench-${Deno.pid}-${i}`,
    ],
  });
  const bundleSeries = [
    bundleRun(runtimeName, runtime),
    bundleRun("crun", "crun"),
    bundleRun("runc", "runc"),
  ];
  for (const s of bundleSeries) await timed(s.cmd, s.args(RUNS));
  const [mine, crun, runc] = await interleaved(bundleSeries, RUNS);
  console.log(`ratio ${runtimeName}/crun: ${(mine / crun).toFixed(2)}x`);
  console.log(`ratio ${runtimeName}/runc: ${(mine / runc).toFixed(2)}x`);
  for (const [peer, value] of [["crun", crun], ["runc", runc]] as const) {
    benchRow({
      work: `runtime alone: <tsbox runc> run vs ${peer} run (one bundle, true)`,
      tsbox: ms(mine),
      peer: ms(value),
      ratio: mine / value,
      target: "—",
    });
  }
} finally {
  // Each `run` deletes its container; what a failed run left is removed with the work dir.
  for (const e of Deno.readDirSync("/sys/fs/cgroup")) {
    for (const prefix of ["tsbox-bench-"]) {
      try {
        for (const c of Deno.readDirSync(join("/sys/fs/cgroup", e.name))) {
          if (c.name.startsWith(`${prefix}${Deno.pid}-`)) {
            await Deno.remove(join("/sys/fs/cgroup", e.name, c.name)).catch(() => {});
          }
        }
      } catch { /* not a hierarchy */ }
    }
  }
  await new Deno.Command("podman", {
    args: ["rmi", "-f", "localhost/tsbox-bench-busybox:latest"],
    stdout: "null",
    stderr: "null",
  }).output().catch(() => {});
  await Deno.remove(work, { recursive: true }).catch(() => {});
}
