/**
 * Pull of a ~200 MB image of ~2,000 files from a local registry: tsbox against `podman pull`
 * (Debian's podman), interleaved in the same run, medians and ratio. Needs root; not part of CI.
 *
 *     deno run -A bench/pull_bench.ts [--runs N] [--mb 200] [--files 2000]
 */
import { join } from "node:path";
import { makeBigImage, pushLayout } from "../tests/fixtures/images.ts";
import { startRegistry } from "../tests/fixtures/registry.ts";

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

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function timed(cmd: string, cmdArgs: string[]): Promise<number> {
  const t0 = performance.now();
  const out = await new Deno.Command(cmd, { args: cmdArgs, stdout: "null", stderr: "piped" })
    .output();
  const ms = performance.now() - t0;
  if (!out.success) {
    throw new Error(`${cmd} ${cmdArgs.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return ms;
}

async function isFile(path: string): Promise<boolean> {
  return await Deno.stat(path).then((s) => s.isFile, () => false);
}

console.error(`building a ${MB} MB / ${FILES}-file image ...`);
const layout = await makeBigImage({ bytes: MB * 1_000_000, files: FILES });
const registry = await startRegistry();
const ref = `${registry.host}/big:latest`;
await pushLayout(layout, ref, { format: "v2s2" });

// A compiled ./tsbox when there is one; otherwise the same code through deno.
const tsbox = (await isFile(COMPILED)) ? [COMPILED] : [Deno.execPath(), "run", "-A", MAIN];
// podman refuses a runroot path longer than 50 characters: keep the names short.
const work = await Deno.makeTempDir({ prefix: "tpb" });
const tsboxMs: number[] = [];
const podmanMs: number[] = [];
try {
  for (let i = 0; i < RUNS; i++) {
    const root = join(work, `tsbox-${i}`);
    tsboxMs.push(await timed(tsbox[0], [...tsbox.slice(1), "--root", root, "pull", "-q", ref]));
    const proot = join(work, `p${i}`);
    podmanMs.push(
      await timed("podman", [
        "--root",
        join(proot, "root"),
        "--runroot",
        join(proot, "run"),
        "--storage-driver",
        "overlay",
        "pull",
        "-q",
        "--tls-verify=false",
        ref,
      ]),
    );
    console.error(
      `run ${i + 1}: tsbox ${tsboxMs[i].toFixed(0)} ms, podman ${podmanMs[i].toFixed(0)} ms`,
    );
    await new Deno.Command("podman", {
      args: [
        "--root",
        join(proot, "root"),
        "--runroot",
        join(proot, "run"),
        "system",
        "reset",
        "-f",
      ],
      stdout: "null",
      stderr: "null",
    }).output();
    await Deno.remove(root, { recursive: true });
    await Deno.remove(proot, { recursive: true }).catch(() => {});
  }
} finally {
  await registry.stop();
  await Deno.remove(work, { recursive: true }).catch(() => {});
}
const t = median(tsboxMs);
const p = median(podmanMs);
console.log(`pull ${MB} MB / ${FILES} files, ${RUNS} runs (medians):`);
console.log(`  tsbox  ${t.toFixed(0)} ms`);
console.log(`  podman ${p.toFixed(0)} ms`);
console.log(`  ratio tsbox/podman = ${(t / p).toFixed(2)} (target <= 0.70)`);
