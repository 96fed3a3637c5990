/**
 * `tsbox build --progress` (root), on real builds of the fixture busybox: BuildKit's plain
 * output (numbered vertices named `[stage i/n]`, output lines with their time in the step,
 * DONE with its duration, CACHED on a rebuild, ERROR for a failed step), rawjson's solve
 * status objects, quiet's image id alone, and on a terminal (a pty made by util-linux's
 * `script`) the live view that `auto` picks there.
 */
import { assertEquals, assertMatch, assertOk, assertStringIncludes } from "./assert.ts";
import { sharedBusyboxRoot } from "./busybox_store.ts";
import { dirWith, rootTest, tsbox } from "./cli.ts";

const DOCKERFILE = `FROM busybox AS one
RUN echo hello-one; echo second-line

FROM busybox
COPY --from=one /etc/passwd /p
RUN echo hello-final
`;

rootTest("build --progress plain: BuildKit's numbered vertices, timed lines, CACHED", async () => {
  const root = await sharedBusyboxRoot();
  const ctx = await dirWith({ Dockerfile: DOCKERFILE });
  try {
    const r = await tsbox(["build", "--no-cache", "--progress", "plain", "-t", "t-prog:1", ctx], {
      root,
    });
    assertEquals(r.code, 0, r.stderr);
    assertEquals(r.stdout, "");
    const run = /^#(\d+) \[one 2\/2\] RUN echo hello-one; echo second-line$/m.exec(r.stderr);
    assertOk(run, r.stderr);
    const n = run[1];
    assertMatch(r.stderr, new RegExp(`^#${n} \\d+\\.\\d{3} hello-one$`, "m"));
    assertMatch(r.stderr, new RegExp(`^#${n} \\d+\\.\\d{3} second-line$`, "m"));
    assertMatch(r.stderr, new RegExp(`^#${n} DONE \\d+\\.\\ds$`, "m"));
    assertMatch(r.stderr, /^#\d+ \[stage-1 3\/3\] RUN echo hello-final$/m);
    assertMatch(r.stderr, /^#\d+ naming to docker\.io\/library\/t-prog:1 done$/m);
    // Unprefixed: plain tells steps apart by vertex number, not by classic's [stage] prefix.
    assertOk(!r.stderr.includes("[one 2/5] hello-one"), r.stderr);

    const again = await tsbox(["build", "--progress=plain", "-t", "t-prog:1", ctx], { root });
    assertEquals(again.code, 0, again.stderr);
    const cached = /^#(\d+) \[stage-1 3\/3\] RUN echo hello-final$/m.exec(again.stderr);
    assertOk(cached, again.stderr);
    assertMatch(again.stderr, new RegExp(`^#${cached[1]} CACHED$`, "m"));

    const failing = await dirWith({ Dockerfile: "FROM busybox\nRUN echo before; exit 3\n" });
    const f = await tsbox(["build", "--progress", "plain", failing], { root });
    assertEquals(f.code, 1, f.stderr);
    const step = /^#(\d+) \[2\/2\] RUN echo before; exit 3$/m.exec(f.stderr);
    assertOk(step, f.stderr);
    assertMatch(f.stderr, new RegExp(`^#${step[1]} ERROR: .*non-zero code: 3$`, "m"));
    await Deno.remove(failing, { recursive: true });
  } finally {
    await Deno.remove(ctx, { recursive: true });
    await tsbox(["rmi", "t-prog:1"], { root });
  }
});

rootTest("build --progress rawjson and quiet", async () => {
  const root = await sharedBusyboxRoot();
  const ctx = await dirWith({ Dockerfile: DOCKERFILE });
  try {
    const r = await tsbox(["build", "--no-cache", "--progress", "rawjson", ctx], { root });
    assertEquals(r.code, 0, r.stderr);
    const objects = r.stderr.trim().split("\n").map((l) => JSON.parse(l));
    const vertex = objects.flatMap((o) => o.vertexes ?? []).find((v) =>
      v.name === "[one 2/2] RUN echo hello-one; echo second-line" && v.completed
    );
    assertOk(vertex, r.stderr);
    assertMatch(vertex.digest, /^sha256:[0-9a-f]{64}$/);
    const logs = objects.flatMap((o) => o.logs ?? []).filter((l) => l.vertex === vertex.digest);
    const text = logs.map((l) => atob(l.data)).join("");
    assertStringIncludes(text, "hello-one\nsecond-line\n");

    const q = await tsbox(["build", "--progress", "quiet", ctx], { root });
    assertEquals(q.code, 0, q.stderr);
    assertMatch(q.stdout, /^sha256:[0-9a-f]{64}\n$/);
  } finally {
    await Deno.remove(ctx, { recursive: true });
  }
});

rootTest(
  "build --progress auto on a terminal: BuildKit's live view, redrawn in place",
  async () => {
    const root = await sharedBusyboxRoot();
    const ctx = await dirWith({
      Dockerfile: "FROM busybox\nRUN for i in 1 2 3; do echo tick-$i; sleep 0.2; done\n",
    });
    const main = new URL("../main.ts", import.meta.url).pathname;
    const quote = (a: string) => `'${a.replaceAll("'", "'\\''")}'`;
    try {
      const cmd = [Deno.execPath(), "run", "-A", "--quiet", main, "--root", root, "build"]
        .concat("--no-cache", ctx).map(quote).join(" ");
      const out = await new Deno.Command("script", {
        args: ["-qec", cmd, "/dev/null"],
        env: { DENO_NO_UPDATE_CHECK: "1", TERM: "xterm" },
      }).output();
      const text = new TextDecoder().decode(out.stdout);
      assertEquals(out.code, 0, text);
      // Frames rewritten in place: the cursor moves up over the last frame.
      // deno-lint-ignore no-control-regex -- the terminal's cursor-up sequence
      assertMatch(text, /\x1b\[\d+A/);
      assertMatch(text, /\[\+\] Building \d+\.\ds \(3\/3\) FINISHED/);
      assertMatch(text, / => \[2\/2\] RUN for i in 1 2 3[^\n]* \d+\.\ds/);
      // A running step's output under it.
      assertMatch(text, / => => # tick-2/);
      // No classic lines: the live view replaces them.
      assertOk(!text.includes("Step 1/2"), text);
    } finally {
      await Deno.remove(ctx, { recursive: true });
    }
  },
);
