/**
 * Runs tsbox's benchmarks one after another (or those named): each compares tsbox with a peer
 * (podman) on the same work in the same run and prints medians and ratios. Needs root; not
 * part of the test suite, since these machines are shared and noisy.
 *
 *     deno task bench [pull|run|lifecycle|ports|build ...]
 *
 * @module
 */
const ALL = ["pull", "run", "lifecycle", "ports", "build"];
const chosen = Deno.args.length > 0 ? Deno.args : ALL;
let failed = 0;
for (const name of chosen) {
  const file = new URL(`./${name}_bench.ts`, import.meta.url).pathname;
  if (!(await Deno.stat(file).then(() => true, () => false))) {
    console.log(`== ${name}: no benchmark (${file} missing)`);
    continue;
  }
  console.log(`== ${name}`);
  const { code } = await new Deno.Command(Deno.execPath(), { args: ["run", "-A", file] })
    .spawn().status;
  if (code !== 0) failed++;
}
Deno.exit(failed === 0 ? 0 : 1);
