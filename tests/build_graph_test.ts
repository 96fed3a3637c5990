/**
 * The stage graph of `tsbox build` (root): only the stages the target needs run, independent
 * stages run at the same time (each RUN records when it started and ended, read back from the
 * built image), at most `--jobs` of them, and their output lines name stage and step.
 */
import { join } from "node:path";
import { assertEquals, assertMatch, assertOk } from "./assert.ts";
import { sharedBusyboxRoot } from "./busybox_store.ts";
import { tsbox } from "./cli.ts";

const isRoot = Deno.uid() === 0;

function rootTest(name: string, fn: () => Promise<void>) {
  Deno.test({ name, ignore: !isRoot, sanitizeResources: false, sanitizeOps: false, fn });
}

async function context(files: Record<string, string>): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "tsbox-ctx-" });
  for (const [path, content] of Object.entries(files)) {
    await Deno.mkdir(join(dir, path, ".."), { recursive: true });
    await Deno.writeTextFile(join(dir, path), content);
  }
  return dir;
}

/** A stage that records the uptime (centiseconds) around a 2 s sleep and says its name. */
function timedStage(name: string): string {
  return `FROM busybox AS ${name}
RUN echo hello-from-${name}; cut -d' ' -f1 /proc/uptime > /start; sleep 2; \\
    cut -d' ' -f1 /proc/uptime > /end
`;
}

const DOCKERFILE = `${timedStage("one")}
FROM busybox AS unused
RUN echo unused-ran; exit 1

${timedStage("two")}
FROM busybox
COPY --from=one /start /one.start
COPY --from=one /end /one.end
COPY --from=two /start /two.start
COPY --from=two /end /two.end
`;

/** [start, end] of each stage's RUN, read from the built image. */
async function intervals(root: string, image: string): Promise<number[][]> {
  const r = await tsbox(
    ["run", "--rm", image, "cat", "/one.start", "/one.end", "/two.start", "/two.end"],
    { root },
  );
  assertEquals(r.code, 0, r.stderr);
  const t = r.stdout.trim().split("\n").map(Number);
  assertEquals(t.length, 4, r.stdout);
  assertOk(t.every((x) => Number.isFinite(x) && x > 0), r.stdout);
  return [[t[0], t[1]], [t[2], t[3]]];
}

const overlap = ([a, b]: number[][]) => a[0] < b[1] && b[0] < a[1];

rootTest(
  "build graph: an unused failing stage is skipped; independent stages overlap, --jobs 1 not",
  async () => {
    const root = await sharedBusyboxRoot();
    const ctx = await context({ Dockerfile: DOCKERFILE });
    try {
      const r = await tsbox(["build", "--no-cache", "--jobs", "2", "-t", "graph:2", ctx], { root });
      assertEquals(r.code, 0, r.stderr + r.stdout);
      assertOk(!r.stdout.includes("unused-ran"), r.stdout);
      assertOk(!r.stdout.includes("exit 1"), r.stdout);
      // 2 steps per timed stage and 5 in the last: the unused stage is not counted either.
      assertMatch(r.stdout, /^Step 9\/9 : COPY --from=two \/end \/two.end$/m);
      // Output of concurrent stages: each line names its stage and step.
      assertMatch(r.stdout, /^\[one 2\/9\] hello-from-one$/m);
      assertMatch(r.stdout, /^\[two 4\/9\] hello-from-two$/m);
      const parallel = await intervals(root, "graph:2");
      assertOk(overlap(parallel), `stages did not overlap: ${JSON.stringify(parallel)}`);

      const serial = await tsbox(["build", "--no-cache", "--jobs", "1", "-t", "graph:1", ctx], {
        root,
      });
      assertEquals(serial.code, 0, serial.stderr + serial.stdout);
      const one = await intervals(root, "graph:1");
      assertOk(!overlap(one), `--jobs 1 ran stages together: ${JSON.stringify(one)}`);

      // The unused stage is built when it is the target, and fails then.
      const target = await tsbox(["build", "--target", "unused", ctx], { root });
      assertEquals(target.code, 1, target.stdout);
      assertOk(target.stdout.includes("unused-ran"), target.stdout);
    } finally {
      await Deno.remove(ctx, { recursive: true });
    }
  },
);

rootTest("build graph: a failing stage fails the build while another one runs", async () => {
  const root = await sharedBusyboxRoot();
  const ctx = await context({
    Dockerfile: `FROM busybox AS slow
RUN sleep 1 && echo slow > /s
FROM busybox AS bad
RUN exit 3
FROM busybox
COPY --from=slow /s /s
COPY --from=bad /etc/passwd /p
`,
  });
  try {
    const r = await tsbox(["build", "--no-cache", ctx], { root });
    assertEquals(r.code, 1, r.stdout + r.stderr);
    assertMatch(r.stderr, /returned a non-zero code: 3/);
  } finally {
    await Deno.remove(ctx, { recursive: true });
  }
});
