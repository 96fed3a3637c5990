/**
 * mod.ts's `run(store, image, options)` from a deno script, as a user's task runs it (root): the
 * typed options reach the container, the exit code comes back, and the library prints nothing
 * of its own (pull lines and warnings only through `onNotice`).
 */
import { assertEquals, assertOk, assertStringIncludes } from "./assert.ts";
import { busyboxRegistryRef, seedStore } from "./busybox_store.ts";
import { tempRoot } from "./cli.ts";

const isRoot = Deno.uid() === 0;
const MOD = new URL("../mod.ts", import.meta.url).href;
const CONFIG = new URL("../deno.json", import.meta.url).pathname;

function rootTest(name: string, fn: () => Promise<void>) {
  Deno.test({ name, ignore: !isRoot, sanitizeResources: false, sanitizeOps: false, fn });
}

/** Runs `body` in a deno script with `store` open on `root`; returns its exit code and output. */
async function script(root: string, body: string) {
  const file = await Deno.makeTempFile({ suffix: ".ts" });
  await Deno.writeTextFile(
    file,
    `import { openStore, run } from ${JSON.stringify(MOD)};\n` +
      `const store = await openStore(${JSON.stringify(root)});\n` +
      `try {\n${body}\n} finally {\n  store.close();\n}\n`,
  );
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--config", CONFIG, file],
      stdin: "null",
    }).output();
    const text = (b: Uint8Array) => new TextDecoder().decode(b);
    return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
  } finally {
    await Deno.remove(file);
  }
}

rootTest("run(store, image, options): typed options in, the exit code out", async () => {
  const { root, cleanup } = await tempRoot();
  try {
    await seedStore(root);
    const r = await script(
      root,
      `const result = await run(store, "busybox", {
        command: ["sh", "-c", "echo $A $(hostname) $(pwd); cat /proc/self/status | grep NoNewPrivs; exit 3"],
        env: { A: "one" },
        hostname: "typed",
        workdir: "/tmp",
        noNewPrivileges: true,
        memory: 32 * 1024 * 1024,
        remove: true,
      });
      console.log("exit", result.exitCode);`,
    );
    assertEquals(r.code, 0, r.stderr);
    assertStringIncludes(r.stdout, "one typed /tmp\n");
    assertOk(/NoNewPrivs:\s+1/.test(r.stdout), r.stdout);
    assertStringIncludes(r.stdout, "exit 3\n");
    // Quiet: the container wrote to stdout, the library nothing to stderr.
    assertEquals(r.stderr, "");
  } finally {
    await cleanup();
  }
});

rootTest("run(store, image, options): a pull says nothing unless onNotice is given", async () => {
  const { root, cleanup } = await tempRoot();
  try {
    const ref = await busyboxRegistryRef();
    const quiet = await script(
      root,
      `const r = await run(store, ${JSON.stringify(ref)}, { command: ["true"], remove: true });
      console.log("exit", r.exitCode);`,
    );
    assertEquals(quiet.code, 0, quiet.stderr);
    assertEquals([quiet.stdout, quiet.stderr], ["exit 0\n", ""]);
    const told = await script(
      root,
      `const lines: string[] = [];
      const r = await run(store, ${JSON.stringify(ref)}, {
        command: ["true"],
        remove: true,
        pull: "always",
        onNotice: (l) => lines.push(l),
      });
      console.log(JSON.stringify(lines));`,
    );
    assertEquals(told.code, 0, told.stderr);
    assertEquals(told.stderr, "");
    const lines = JSON.parse(told.stdout) as string[];
    assertOk(lines.some((l) => /: Pulling from /.test(l)), told.stdout);
    assertOk(lines.some((l) => l.startsWith("Status: Image is up to date")), told.stdout);
  } finally {
    await cleanup();
  }
});
