/**
 * Pull from a local registry: tsbox against `podman pull` (Debian's podman), interleaved in the
 * same run, medians and ratio, for a ~200 MB image of ~2,000 files (target <= 0.70) and for
 * busybox (target: not slower). Both sides keep a warm store between rounds and have the image
 * removed before each pull (tsbox `rmi`, podman `rmi`), so that only the pull is timed; CPU time
 * (user + system) and the load average are printed beside, since on a busy machine podman's
 * threads and tsbox's one thread fare differently. Needs
 * root; not part of CI.
 *
 *     deno run -A bench/pull_bench.ts [--runs N] [--mb 200] [--files 2000]
 *
 * @module
 */
import { join } from "node:path";
import { fixtureLayouts, makeBigImage, pushLayout } from "../tests/fixtures/images.ts";
import { startRegistry } from "../tests/fixtures/registry.ts";
import { benchRow, median, ms } from "./table.ts";

const args = Deno.args;
const flag = (name: string, def: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const RUNS = flag("--runs", 5);
const MB = flag("--mb", 200);
const FILES = flag("--files", 2000);
const MAIN = new URL("../main.ts", import.meta.url).pathname;
const COMPILED = new URL("../tsbox", import.meta.url).pathname;

/** Wall time and CPU time (user + system, from /usr/bin/time) of one command, in ms. */
interface Timed {
  wall: number;
  cpu: number;
}

async function timed(cmd: string, cmdArgs: string[]): Promise<Timed> {
  const t0 = performance.now();
  const out = await new Deno.Command("/usr/bin/time", {
    args: ["-f", "@@cpu %U %S", cmd, ...cmdArgs],
    stdout: "null",
    stderr: "piped",
  }).output();
  const wall = performance.now() - t0;
  const err = new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`${cmd} ${cmdArgs.join(" ")}: ${err}`);
  const m = /@@cpu ([\d.]+) ([\d.]+)/.exec(err);
  return { wall, cpu: m ? (Number(m[1]) + Number(m[2])) * 1000 : NaN };
}

async function isFile(path: string): Promise<boolean> {
  return await Deno.stat(path).then((s) => s.isFile, () => false);
}

console.error(`building a ${MB} MB / ${FILES}-file image ...`);
const layout = await makeBigImage({ bytes: MB * 1_000_000, files: FILES });
const registry = await startRegistry();
const big = `${registry.host}/big:latest`;
await pushLayout(layout, big, { format: "v2s2" });
const busybox = `${registry.host}/busybox:latest`;
await pushLayout((await fixtureLayouts()).busybox, busybox, { format: "v2s2" });

// A compiled ./tsbox when there is one; otherwise the same code through deno.
const tsboxCmd = (await isFile(COMPILED)) ? [COMPILED] : [Deno.execPath(), "run", "-A", MAIN];
// podman refuses a runroot path longer than 50 characters: keep the names short.
const work = await Deno.makeTempDir({ prefix: "tpb" });
const root = join(work, "t");
const proot = join(work, "p");
const podmanBase = [
  "--root",
  join(proot, "root"),
  "--runroot",
  join(proot, "run"),
  "--storage-driver",
  "overlay",
];
const tsbox = (...a: string[]) => timed(tsboxCmd[0], [...tsboxCmd.slice(1), "--root", root, ...a]);
const podman = (...a: string[]) => timed("podman", [...podmanBase, ...a]);
try {
  for (
    const [label, ref, target] of [[`${MB} MB / ${FILES} files`, big, "≤ 0.70"], [
      "busybox",
      busybox,
      "≤ 1.00",
    ]] as const
  ) {
    const t: Timed[] = [];
    const p: Timed[] = [];
    for (let i = 0; i <= RUNS; i++) {
      // Round 0 warms both stores (database, directories) and is not counted.
      const tm = await tsbox("pull", "-q", ref);
      const pm = await podman("pull", "-q", "--tls-verify=false", ref);
      await tsbox("rmi", "-f", ref);
      await podman("rmi", "-f", ref);
      if (i === 0) continue;
      t.push(tm);
      p.push(pm);
      console.error(
        `${label} run ${i}: tsbox ${tm.wall.toFixed(0)} ms (cpu ${tm.cpu.toFixed(0)}), ` +
          `podman ${pm.wall.toFixed(0)} ms (cpu ${pm.cpu.toFixed(0)}), ` +
          `load ${Deno.loadavg()[0].toFixed(1)}`,
      );
    }
    const tMed = median(t.map((x) => x.wall));
    const pMed = median(p.map((x) => x.wall));
    const tCpu = median(t.map((x) => x.cpu));
    const pCpu = median(p.map((x) => x.cpu));
    // The machine's load matters: podman runs on as many threads as it gets, tsbox on one
    // unless a processor is idle (src/store/spare_cpu.ts).
    console.log(
      `pull ${label}, ${RUNS} runs (medians): tsbox ${tMed.toFixed(0)} ms, podman ${
        pMed.toFixed(0)
      } ms, ratio ${(tMed / pMed).toFixed(2)} (target ${target}); cpu (user+sys) tsbox ${
        tCpu.toFixed(0)
      } ms, podman ${pCpu.toFixed(0)} ms; load ${
        Deno.loadavg()[0].toFixed(1)
      } on ${navigator.hardwareConcurrency} cpus`,
    );
    benchRow({
      work: `pull ${label} (loopback registry) vs podman pull`,
      tsbox: ms(tMed),
      peer: ms(pMed),
      ratio: tMed / pMed,
      target,
    });
  }
} finally {
  await registry.stop();
  await new Deno.Command("podman", {
    args: [...podmanBase, "system", "reset", "-f"],
    stdout: "null",
    stderr: "null",
  }).output();
  await Deno.remove(work, { recursive: true }).catch(() => {});
}
