/**
 * CLI start-up: `tsbox --version` against `deno run` of a hello world (target <= 1.6), and the
 * read-only hot commands `ps -a` and `inspect IMAGE` against podman's (`podman ps -a`, `podman
 * image inspect`), each pair interleaved, medians of whole-process wall times. Needs root for
 * podman; not part of CI.
 *
 *     deno run -A bench/start_bench.ts [--runs N]
 *
 * @module
 */
import { join } from "node:path";
import { seedStore } from "../tests/busybox_store.ts";
import { benchRow, median, ms } from "./table.ts";

const args = Deno.args;
const i = args.indexOf("--runs");
const RUNS = i >= 0 ? Number(args[i + 1]) : 30;
const MAIN = new URL("../main.ts", import.meta.url).pathname;
const COMPILED = new URL("../tsbox", import.meta.url).pathname;

async function timed(cmd: string[], env?: Record<string, string>): Promise<number> {
  const t0 = performance.now();
  const out = await new Deno.Command(cmd[0], {
    args: cmd.slice(1),
    env,
    stdout: "null",
    stderr: "piped",
  }).output();
  const took = performance.now() - t0;
  if (!out.success) {
    throw new Error(`${cmd.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return took;
}

const work = await Deno.makeTempDir({ prefix: "tsb" });
const hello = join(work, "hello.ts");
await Deno.writeTextFile(hello, 'console.log("hello");\n');
const root = join(work, "root");
const { layerDir } = await seedStore(root);
const isCompiled = await Deno.stat(COMPILED).then((s) => s.isFile, () => false);
const tsbox = isCompiled ? [COMPILED] : [Deno.execPath(), "run", "-A", MAIN];

const podmanBase = ["podman", "--root", join(work, "p", "root"), "--runroot", join(work, "p", "r")];
let podman = true;
try {
  const tar = join(work, "busybox.tar");
  await timed(["tar", "-C", layerDir, "-cf", tar, "."]);
  await timed([...podmanBase, "import", tar, "localhost/busybox:latest"]);
} catch (err) {
  podman = false;
  console.error(`podman unavailable, measuring tsbox only: ${(err as Error).message}`);
}

const pairs: { work: string; tsbox: string[]; peer?: string[]; target: string }[] = [
  {
    work: "tsbox --version vs deno run of a hello world",
    tsbox: [...tsbox, "--version"],
    peer: [Deno.execPath(), "run", "-A", hello],
    target: "≤ 1.60",
  },
  {
    work: "ps -a vs podman ps -a",
    tsbox: [...tsbox, "--root", root, "ps", "-a"],
    peer: podman ? [...podmanBase, "ps", "-a"] : undefined,
    target: "≤ 0.50",
  },
  {
    work: "inspect busybox vs podman image inspect",
    tsbox: [...tsbox, "--root", root, "inspect", "busybox"],
    peer: podman ? [...podmanBase, "image", "inspect", "localhost/busybox"] : undefined,
    target: "≤ 0.50",
  },
];
try {
  for (const p of pairs) {
    const t: number[] = [];
    const q: number[] = [];
    for (let r = 0; r <= RUNS; r++) {
      const tm = await timed(p.tsbox);
      const pm = p.peer ? await timed(p.peer) : NaN;
      if (r === 0) continue; // warm-up
      t.push(tm);
      q.push(pm);
    }
    const tMed = median(t);
    const qMed = p.peer ? median(q) : undefined;
    console.log(
      `${p.work}: tsbox ${ms(tMed)}, peer ${qMed === undefined ? "—" : ms(qMed)} (${RUNS} runs)`,
    );
    benchRow({
      work: p.work,
      tsbox: ms(tMed),
      peer: qMed === undefined ? "—" : ms(qMed),
      ratio: qMed === undefined ? undefined : tMed / qMed,
      target: p.target,
    });
  }
} finally {
  if (podman) {
    await new Deno.Command(podmanBase[0], {
      args: [...podmanBase.slice(1), "system", "reset", "-f"],
      stdout: "null",
      stderr: "null",
    }).output();
  }
  await Deno.remove(work, { recursive: true }).catch(() => {});
}
