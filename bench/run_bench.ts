/**
 * Container start latency: `tsbox run --rm busybox true` on the default bridge and in the
 * `private` namespace against `podman run --rm --runtime crun busybox true` with no network and
 * on podman's bridge, interleaved in the same run (medians and ratios), then a 1,000-start loop
 * through the runtime API that checks for leaked mounts, cgroups, fds and container dirs. Needs root; not part of CI.
 *
 *     deno run -A bench/run_bench.ts [--runs N] [--loop N]
 */
import { join } from "node:path";
import { Container, newContainerId } from "../src/runtime/mod.ts";
import { Store } from "../src/store/mod.ts";
import { seedStore } from "../tests/busybox_store.ts";
import { takeDownStoreNetworks } from "../tests/cleanup.ts";
import { benchRow, ms } from "./table.ts";
import { startSpec } from "../tests/start_spec.ts";

const args = Deno.args;
const flag = (name: string, def: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const RUNS = flag("--runs", 30);
const LOOP = flag("--loop", 1000);
const MAIN = new URL("../main.ts", import.meta.url).pathname;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function timed(
  cmd: string,
  cmdArgs: string[],
  env?: Record<string, string>,
): Promise<number> {
  const t0 = performance.now();
  const out = await new Deno.Command(cmd, { args: cmdArgs, env, stdout: "null", stderr: "piped" })
    .output();
  const ms = performance.now() - t0;
  if (!out.success) {
    throw new Error(`${cmd} ${cmdArgs.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return ms;
}

const root = await Deno.makeTempDir({ prefix: "tsbox-bench-" });
// A failed run still takes down the default network's bridge and rules of this store.
globalThis.addEventListener("unload", () => takeDownStoreNetworks(root));
const { layerDir } = await seedStore(root);

// podman: the same tree imported as an image; containers.conf with the ulimits this host allows.
const confDir = await Deno.makeTempDir();
await Deno.writeTextFile(
  join(confDir, "containers.conf"),
  '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n',
);
const podmanEnv = { CONTAINERS_CONF: join(confDir, "containers.conf") };
let podman = true;
try {
  // crun 1.8 refuses a hybrid layout until hugetlb has its v1 hierarchy (as cgroupfs-mount does).
  if (!Deno.readTextFileSync("/proc/self/mountinfo").includes(" /sys/fs/cgroup/hugetlb ")) {
    console.error("mounting the v1 hugetlb hierarchy for crun");
    await Deno.mkdir("/sys/fs/cgroup/hugetlb", { recursive: true });
    await timed("mount", ["-t", "cgroup", "-o", "hugetlb", "cgroup", "/sys/fs/cgroup/hugetlb"]);
  }
  const tar = join(confDir, "busybox.tar");
  await timed("tar", ["-C", layerDir, "-cf", tar, "."]);
  await timed("podman", ["import", tar, "localhost/tsbox-bench-busybox:latest"], podmanEnv);
} catch (err) {
  podman = false;
  console.error(`podman unavailable, measuring tsbox only: ${(err as Error).message}`);
}

// Interleaved: tsbox on its default network (the `bridge`, as root) and in the lo-only
// `private` namespace (the default before bridges), podman with no network and on its default
// bridge (netavark), so the ratios compare runs made side by side.
const series: { label: string; cmd: string; args: string[]; env?: Record<string, string> }[] = [
  {
    label: "tsbox run --rm busybox true (default: bridge)",
    cmd: Deno.execPath(),
    args: ["run", "-A", MAIN, "--root", root, "run", "--rm", "busybox", "true"],
  },
  {
    label: "tsbox run --rm --network private busybox true",
    cmd: Deno.execPath(),
    args: [
      "run",
      "-A",
      MAIN,
      "--root",
      root,
      "run",
      "--rm",
      "--network",
      "private",
      "busybox",
      "true",
    ],
  },
];
if (podman) {
  for (const net of ["none", "bridge"]) {
    const args = [
      "run",
      "--rm",
      "--network",
      net,
      "--runtime",
      "crun",
      "localhost/tsbox-bench-busybox",
      "true",
    ];
    try {
      await timed("podman", args, podmanEnv); // a first run, also a check that it works
    } catch (err) {
      console.error(`podman --network ${net} fails here, left out: ${(err as Error).message}`);
      continue;
    }
    series.push({
      label: `podman run --rm --network ${net} --runtime crun`,
      cmd: "podman",
      args,
      env: podmanEnv,
    });
  }
}
const times = series.map(() => [] as number[]);
for (let i = 0; i < RUNS; i++) {
  for (const [k, s] of series.entries()) times[k].push(await timed(s.cmd, s.args, s.env));
}
const medians = times.map(median);
for (const [k, s] of series.entries()) {
  console.log(`${s.label}: median ${medians[k].toFixed(1)} ms (${RUNS} runs)`);
}
console.log(`ratio tsbox bridge/private: ${(medians[0] / medians[1]).toFixed(2)}x`);
const podmanMedian = (net: string) =>
  medians[series.findIndex((s) => s.label.includes(`podman run --rm --network ${net} `))];
if (podmanMedian("none") !== undefined) {
  console.log(
    `ratio tsbox private/podman none: ${(medians[1] / podmanMedian("none")).toFixed(2)}x`,
  );
}
if (podmanMedian("bridge") !== undefined) {
  console.log(
    `ratio tsbox bridge/podman bridge: ${
      (medians[0] / podmanMedian("bridge")).toFixed(2)
    }x (target <= 0.5x)`,
  );
}
for (
  const [work, mine, net, target] of [
    ["run --rm --network private vs podman run --rm --network none (crun)", 1, "none", "≤ 0.50"],
    ["run --rm (bridge) vs podman run --rm --network bridge (crun)", 0, "bridge", "≤ 0.50"],
  ] as const
) {
  const peer = podmanMedian(net);
  benchRow({
    work,
    tsbox: ms(medians[mine]),
    peer: peer === undefined ? "—" : ms(peer),
    ratio: peer === undefined ? undefined : medians[mine] / peer,
    target,
  });
}
// The default network's bridge and rules belong to this bench's store: taken down with it.
takeDownStoreNetworks(root);

// The leak loop: starts through the API in this one process.
const store = await Store.open(root);
const layers = store.findImage("busybox")!.layers.map((l) => l.shortId);
store.close();
const count = (path: string) => [...Deno.readDirSync(path)].length;
const mountsBefore = Deno.readTextFileSync("/proc/self/mountinfo");
const cgroupsBefore = tsboxCgroups();
const fdsBefore = count("/proc/self/fd");
const t0 = performance.now();
for (let i = 0; i < LOOP; i++) {
  const id = newContainerId();
  const { spec, options } = startSpec(root, id, layers, {
    argv: ["true"],
    env: ["PATH=/bin"],
    network: "none",
  });
  const c = await Container.start(spec, options);
  const exit = await c.wait();
  if (exit.exitCode !== 0) throw new Error(`start ${i}: exit ${exit.exitCode}`);
  await c.remove();
}
const perStart = (performance.now() - t0) / LOOP;
const leaks = {
  mounts: Deno.readTextFileSync("/proc/self/mountinfo") !== mountsBefore,
  fds: count("/proc/self/fd") - fdsBefore,
  containerDirs: count(join(root, "containers")),
  // Other containers on the host may come and go meanwhile: only the difference counts.
  cgroups: tsboxCgroups() - cgroupsBefore,
};
console.log(
  `${LOOP} starts through the API: ${perStart.toFixed(1)} ms each; leaks: ${JSON.stringify(leaks)}`,
);
await Deno.remove(root, { recursive: true });
await Deno.remove(confDir, { recursive: true });
if (leaks.mounts || leaks.fds > 0 || leaks.containerDirs > 0 || leaks.cgroups > 0) Deno.exit(1);

/** How many container cgroups exist under tsbox/ in the v1 memory, cpu and pids hierarchies. */
function tsboxCgroups(): number {
  return ["memory", "cpu", "pids"].map((c) => {
    try {
      return [...Deno.readDirSync(`/sys/fs/cgroup/${c}/tsbox`)].filter((e) => e.isDirectory).length;
    } catch {
      return 0;
    }
  }).reduce((a, b) => a + b, 0);
}
