/**
 * Bind sources as docker treats them (root): `-v /missing:/b` creates the host directory,
 * `--mount type=bind` with a missing source is refused before anything is created.
 */
import { sharedBusyboxRoot } from "./busybox_store.ts";
import { assertEquals, assertRejects, assertStringIncludes } from "./assert.ts";
import { tsbox } from "./cli.ts";

const isRoot = Deno.uid() === 0;

function rootTest(name: string, fn: () => Promise<void>) {
  Deno.test({ name, ignore: !isRoot, sanitizeResources: false, sanitizeOps: false, fn });
}

async function t(args: string[]) {
  return await tsbox(args, { root: await sharedBusyboxRoot() });
}

rootTest("-v with a missing host path creates it as a directory, as docker does", async () => {
  const base = await Deno.makeTempDir({ prefix: "tsbox-bind-" });
  try {
    const missing = `${base}/not/there/yet`;
    const r = await t([
      "run",
      "--rm",
      "-v",
      `${missing}:/b`,
      "busybox",
      "sh",
      "-c",
      "echo written > /b/f && ls -ld /b | cut -c1-10",
    ]);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(r.stdout, "drwxr-xr-x\n");
    assertEquals(await Deno.readTextFile(`${missing}/f`), "written\n");
    const st = await Deno.stat(missing);
    assertEquals(st.isDirectory, true);
    assertEquals(st.mode! & 0o777, 0o755);
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});

rootTest("--mount type=bind with a missing source is refused, nothing created", async () => {
  const base = await Deno.makeTempDir({ prefix: "tsbox-bind-" });
  try {
    const missing = `${base}/missing`;
    for (const cmd of [["run", "--rm"], ["create"]]) {
      const r = await t([
        ...cmd,
        "--name",
        "t-bind-missing",
        "--mount",
        `type=bind,source=${missing},target=/b`,
        "busybox",
        "true",
      ]);
      assertEquals(r.code, 125, r.stderr);
      assertStringIncludes(
        r.stderr,
        `invalid mount config for type "bind": bind source path does not exist: ${missing}`,
      );
      await assertRejects(() => Deno.stat(missing), Deno.errors.NotFound);
      const ps = await t(["ps", "-a", "-q", "--filter", "name=t-bind-missing"]);
      assertEquals(ps.stdout, "", "no container was recorded");
    }
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});
