/**
 * A build's RUN step starts from an OCI bundle as every container does (issue 17): while the
 * step runs, its state directory holds the config.json it was started from, the spec validates
 * against the runtime-spec's JSON schema as a container's does (tests/oci_crun_test.ts), and it
 * describes the step (its command, BuildKit's hostname, the stage's env and working dir).
 */
import { join } from "node:path";
import type { Spec } from "../src/oci/spec.ts";
import { assertEquals, assertOk } from "./assert.ts";
import { seedStore } from "./busybox_store.ts";
import { dirWith, rootTest, tempRoot } from "./cli.ts";
import { schemaValidator } from "./fixtures/oci_schema.ts";

/** The first `run-*` directory's config.json under the store's build dirs, if one exists. */
async function findStepConfig(root: string): Promise<string | undefined> {
  const builds = join(root, "build");
  try {
    for (const b of Deno.readDirSync(builds)) {
      let entries: Deno.DirEntry[];
      try {
        entries = [...Deno.readDirSync(join(builds, b.name))];
      } catch {
        continue; // a build dir removed meanwhile
      }
      for (const e of entries) {
        if (!e.name.startsWith("run-")) continue;
        const path = join(builds, b.name, e.name, "config.json");
        const text = await Deno.readTextFile(path).catch(() => undefined);
        if (text) return text;
      }
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return undefined;
}

rootTest(
  "build: a RUN step starts from its config.json, which validates as a container's",
  async () => {
    const { root, cleanup } = await tempRoot();
    const ctx = await dirWith({
      // The step waits for the test to have read its bundle: a marker in a cache mount the test
      // cannot reach would need a path, so the step simply runs long enough to be seen.
      Dockerfile: "FROM busybox\nENV STEP=bundle\nWORKDIR /work\nRUN sleep 4 && echo done\n",
    });
    try {
      await seedStore(root);
      const main = new URL("../main.ts", import.meta.url).pathname;
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "--quiet", main, "--root", root, "build", "-t", "bundle:1", ctx],
        env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const built = child.output();
      let text: string | undefined;
      let done = false;
      built.finally(() => done = true);
      while (!text && !done) {
        text = await findStepConfig(root);
        if (!text) await new Promise((r) => setTimeout(r, 20));
      }
      const out = await built;
      const dec = new TextDecoder();
      assertEquals(out.code, 0, dec.decode(out.stderr));
      assertOk(text !== undefined, "a RUN step's config.json existed while the step ran");
      const spec = JSON.parse(text!) as Spec;
      const validate = schemaValidator();
      assertOk(validate(spec), JSON.stringify(validate.errors));
      assertEquals(spec.hostname, "buildkitsandbox");
      assertEquals(spec.process?.args, ["/bin/sh", "-c", "sleep 4 && echo done"]);
      assertEquals(spec.process?.cwd, "/work");
      assertOk(spec.process?.env?.includes("STEP=bundle"), JSON.stringify(spec.process?.env));
      assertOk(spec.root?.path.endsWith("/rootfs"), spec.root?.path);
      // The bundle goes with the step.
      assertEquals(await findStepConfig(root), undefined);
    } finally {
      await Deno.remove(ctx, { recursive: true });
      await cleanup();
    }
  },
);
