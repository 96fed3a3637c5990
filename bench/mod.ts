/**
 * Runs tsbox's benchmarks in one go (or those named), each in its own process, and prints one
 * table at the end: each work, tsbox, the peer measured in the same run, the ratio and the
 * target (bench/table.ts). Each benchmark's own lines pass through as it runs. Needs root; not
 * part of the test suite, since these machines are shared and noisy.
 *
 *     deno task bench [start|pull|run|lifecycle|ports|build|oci_runtime ...]
 *
 * @module
 */
import { type BenchRow, formatTable, ROW_MARK } from "./table.ts";

const ALL = ["start", "pull", "run", "lifecycle", "ports", "build", "oci_runtime"];
const chosen = Deno.args.length > 0 ? Deno.args : ALL;
const rows: BenchRow[] = [];
const failed: string[] = [];
for (const name of chosen) {
  const file = new URL(`./${name}_bench.ts`, import.meta.url).pathname;
  if (!(await Deno.stat(file).then(() => true, () => false))) {
    console.log(`== ${name}: no benchmark (${file} missing)`);
    failed.push(name);
    continue;
  }
  console.log(`== ${name}`);
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", file],
    stdout: "piped",
  }).spawn();
  let pending = "";
  const decoder = new TextDecoder();
  const take = (line: string) => {
    if (line.startsWith(ROW_MARK)) rows.push(JSON.parse(line.slice(ROW_MARK.length)));
    else console.log(line);
  };
  for await (const chunk of child.stdout) {
    pending += decoder.decode(chunk, { stream: true });
    const lines = pending.split("\n");
    pending = lines.pop()!;
    lines.forEach(take);
  }
  if (pending) take(pending);
  if (!(await child.status).success) failed.push(name);
}
console.log(`\n${formatTable(rows)}`);
if (failed.length > 0) console.log(`\nfailed or missing: ${failed.join(", ")}`);
Deno.exit(failed.length === 0 ? 0 : 1);
