/**
 * The platforms of one `build --platform linux/amd64,linux/arm64` run at the same time (issue
 * 23), bounded by `--jobs`, each output line prefixed by its platform; and the Engine API's
 * `/build` takes `platform=a,b` as the CLI does (through Debian's docker client with the
 * classic builder, DOCKER_BUILDKIT=0). As root, through the host's qemu-aarch64 handler.
 *
 * Overlap is observed, not timed: each platform's RUN step appends its architecture to a cache
 * mount both platforms share, then waits (at most WAIT seconds) until it sees two lines; built
 * one after the other the first step can never see the second's line.
 */
import { assertEquals, assertOk, assertStringIncludes } from "./assert.ts";
import { dirWith, rootTest, tempRoot, tsbox } from "./cli.ts";
import { ok as dockerOk, rootTest as apiRootTest, setup } from "./api_helpers.ts";
import { platformFixtures } from "./fixtures/arm64.ts";

const DOCKERFILE = (base: string) =>
  [
    `FROM ${base}`,
    "ARG TARGETARCH",
    "ARG WAIT=60",
    "RUN --mount=type=cache,id=t-overlap,target=/c,sharing=shared " +
    `sh -c 'echo $TARGETARCH >> /c/started; i=0; ` +
    `while [ $(wc -l < /c/started) -lt 2 ] && [ $i -lt $WAIT ]; do sleep 1; i=$((i+1)); done; ` +
    `echo "$TARGETARCH saw $(wc -l < /c/started)"'`,
    "",
  ].join("\n");

rootTest(
  "build --platform a,b: platforms overlap, lines prefixed by platform; --jobs 1 builds one after the other",
  async () => {
    const p = await platformFixtures();
    const ctx = await dirWith({ Dockerfile: DOCKERFILE(p.multi) });
    const { root, cleanup } = await tempRoot();
    const seq = await tempRoot();
    try {
      const r = await tsbox(
        ["build", "--platform", "linux/amd64,linux/arm64", "-t", "t-plat/jobs:1", ctx],
        { root },
      );
      assertEquals(r.code, 0, r.stderr + r.stdout);
      // Each platform's step saw the other's start: they ran at the same time.
      assertStringIncludes(r.stdout, "[linux/amd64] amd64 saw 2\n");
      assertStringIncludes(r.stdout, "[linux/arm64] arm64 saw 2\n");
      // Every line of a platform's build carries its prefix.
      for (const line of r.stdout.split("\n")) {
        if (
          line === "" || line.startsWith("Building for ") || line.startsWith("Successfully tagged ")
        ) continue;
        if (line.startsWith("Build finished")) continue;
        assertOk(
          /^\[linux\/(amd64|arm64)\] /.test(line),
          `unprefixed line ${JSON.stringify(line)}:\n${r.stdout}`,
        );
      }
      assertEquals(
        (await tsbox(["run", "--rm", "--platform", "linux/arm64", "t-plat/jobs:1", "uname", "-m"], {
          root,
        })).stdout,
        "aarch64\n",
      );

      // --jobs 1: the first platform's step ends before the second's starts.
      const one = await tsbox([
        "build",
        "--jobs",
        "1",
        "--build-arg",
        "WAIT=2",
        "--platform",
        "linux/amd64,linux/arm64",
        "-t",
        "t-plat/jobs:2",
        ctx,
      ], { root: seq.root });
      assertEquals(one.code, 0, one.stderr + one.stdout);
      assertStringIncludes(one.stdout, "amd64 saw 1\n");
      assertStringIncludes(one.stdout, "arm64 saw 2\n");
      assertOk(
        one.stdout.indexOf("amd64 saw 1") < one.stdout.indexOf("Building for linux/arm64"),
        one.stdout,
      );
    } finally {
      await Deno.remove(ctx, { recursive: true });
      await seq.cleanup();
      await cleanup();
    }
  },
);

apiRootTest(
  "api build: platform=linux/amd64,linux/arm64 records an index, as the CLI",
  async () => {
    const p = await platformFixtures();
    const t = await setup();
    const ctx = await dirWith({
      Dockerfile: `FROM ${p.multi}\nARG TARGETARCH\nRUN echo $TARGETARCH > /built-for\n`,
    });
    try {
      const built = await dockerOk(t.d(
        "build",
        "--platform",
        "linux/amd64,linux/arm64",
        "-t",
        "t-api/plat:1",
        ctx,
      ));
      assertStringIncludes(built, "Building for linux/arm64");
      assertStringIncludes(built, "Successfully tagged t-api/plat:1");
      const amd = await dockerOk(t.d("run", "--rm", "t-api/plat:1", "cat", "/built-for"));
      assertEquals(amd, "amd64\n");
      const arm = await tsbox(
        ["run", "--rm", "--platform", "linux/arm64", "t-api/plat:1", "cat", "/built-for"],
        { root: t.root },
      );
      assertEquals([arm.code, arm.stdout], [0, "arm64\n"], arm.stderr);
      // Listed once, as docker lists a multi-platform image.
      const listed = await dockerOk(t.d("images", "--format", "{{.Repository}}:{{.Tag}}"));
      assertEquals(listed.split("\n").filter((l) => l.startsWith("t-api/plat")), ["t-api/plat:1"]);
      // A platform given twice is docker's 400, before anything is built.
      const twice = await t.d(
        "build",
        "--platform",
        "linux/arm64,linux/arm64",
        "-t",
        "t-api/plat:2",
        ctx,
      );
      assertOk(twice.code !== 0, twice.stdout);
      assertStringIncludes(twice.stderr, "linux/arm64 is given twice");
    } finally {
      await Deno.remove(ctx, { recursive: true });
      await t.cleanup();
    }
  },
);
