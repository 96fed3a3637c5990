/**
 * `run -a/--attach` (root): only the named streams reach the terminal, while the log keeps
 * both; docker's refusals for `-a` with `-d` and an unknown stream.
 */
import { sharedBusyboxRoot } from "./busybox_store.ts";
import { assertEquals, assertStringIncludes } from "./assert.ts";
import { tsbox } from "./cli.ts";

const isRoot = Deno.uid() === 0;

function rootTest(name: string, fn: () => Promise<void>) {
  Deno.test({ name, ignore: !isRoot, sanitizeResources: false, sanitizeOps: false, fn });
}

async function cli(args: string[]) {
  return await tsbox(args, { root: await sharedBusyboxRoot() });
}

const BOTH = ["busybox", "sh", "-c", "echo to-out; echo to-err >&2"];

rootTest("run -a stdout shows stdout only; -a stderr stderr only; the log has both", async () => {
  try {
    const out = await cli(["run", "--name", "t-c21-aout", "-a", "stdout", ...BOTH]);
    assertEquals(out.code, 0, out.stderr);
    assertEquals(out.stdout.trim(), "to-out");
    assertEquals(out.stderr.includes("to-err"), false, out.stderr);
    const err = await cli(["run", "--rm", "--attach", "STDERR", ...BOTH]);
    assertEquals(err.code, 0, err.stderr);
    assertEquals(err.stdout.trim(), "");
    assertStringIncludes(err.stderr, "to-err");
    const logs = await cli(["logs", "t-c21-aout"]);
    assertEquals(logs.stdout.trim(), "to-out");
    assertEquals(logs.stderr.trim(), "to-err");
  } finally {
    await cli(["rm", "-f", "t-c21-aout"]);
  }
});

rootTest("run -a stdin alone prints the container's id (docker's), not its output", async () => {
  try {
    const r = await cli(["run", "--name", "t-c21-ain", "-a", "stdin", ...BOTH]);
    assertEquals(r.code, 0, r.stderr);
    const id = (await cli(["inspect", "-f", "{{.Id}}", "t-c21-ain"])).stdout.trim();
    assertEquals(r.stdout.trim(), id);
    assertEquals(r.stderr.includes("to-err"), false, r.stderr);
    // With an output stream attached there is no id, only that stream.
    const out = await cli(["run", "--rm", "-a", "stdin", "-a", "stdout", ...BOTH]);
    assertEquals(out.stdout.trim(), "to-out");
  } finally {
    await cli(["rm", "-f", "t-c21-ain"]);
  }
});

rootTest(
  "run -a with -d, or with an unknown stream, is refused before anything exists",
  async () => {
    const before = (await cli(["ps", "-aq"])).stdout;
    const d = await cli(["run", "-d", "-a", "stdout", "busybox", "true"]);
    assertEquals(d.code, 125, d.stderr);
    assertStringIncludes(d.stderr, "Conflicting options: -a and -d");
    const bad = await cli(["run", "-a", "stdnothing", "busybox", "true"]);
    assertEquals(bad.code, 125, bad.stderr);
    assertStringIncludes(bad.stderr, "valid streams are STDIN, STDOUT and STDERR");
    assertEquals((await cli(["ps", "-aq"])).stdout, before);
  },
);
