import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { DockerfileSyntaxError, parseDockerfile } from "./dockerfile.ts";

Deno.test("dockerfile: stages, global args, flags, continuations and comments", () => {
  const df = parseDockerfile(
    [
      "ARG BASE=busybox",
      "FROM --platform=linux/amd64 ${BASE} AS Build",
      "# a comment",
      "RUN --network=none echo a \\",
      "  # a comment inside a continuation",
      "  b",
      "FROM scratch",
      "COPY --from=build /a /b",
      "",
    ].join("\n"),
  );
  assertEquals(df.escape, "\\");
  assertEquals(df.globalArgs.map((a) => a.args), ["BASE=busybox"]);
  assertEquals(df.stages.map((s) => s.name), ["build", undefined]);
  assertEquals(df.stages[0].from.flags, [{ name: "platform", value: "linux/amd64" }]);
  const run = df.stages[0].instructions[0];
  assertEquals([run.keyword, run.line, run.flags[0].value], ["RUN", 4, "none"]);
  assertEquals(run.args.replace(/\s+/g, " "), "echo a b");
  assertEquals(df.stages[1].instructions[0].text, "COPY --from=build /a /b");
});

Deno.test("dockerfile: escape directive and heredocs", () => {
  const df = parseDockerfile(
    "# escape=`\nFROM busybox\nRUN <<EOF\necho hi\nEOF\nCOPY <<-'X' /f\n\tliteral $A\n\tX\n",
  );
  assertEquals(df.escape, "`");
  const [run, copy] = df.stages[0].instructions;
  assertEquals(run.heredocs, [{ name: "EOF", body: "echo hi\n", expand: true }]);
  assertEquals(run.args, "<<EOF");
  assertEquals(copy.heredocs, [{ name: "X", body: "literal $A\n", expand: false }]);
});

Deno.test("dockerfile: errors name the file, the line and the instruction", () => {
  const cases: [string, string][] = [
    ["FROM busybox\n\nBOGUS x\n", "Dockerfile.dev:3: BOGUS: unknown instruction: BOGUS"],
    ["RUN true\n", "Dockerfile.dev:1: RUN: no build stage in current context"],
    ["FROM busybox\nCOPY --bad=1 a b\n", "Dockerfile.dev:2: COPY: unknown flag: --bad"],
    [
      "FROM busybox\nWORKDIR\n",
      "Dockerfile.dev:2: WORKDIR: WORKDIR requires at least one argument",
    ],
    ["FROM busybox\nRUN <<EOF\necho\n", "Dockerfile.dev:2: RUN: unterminated heredoc <<EOF"],
    ["FROM a AS x\nFROM b AS x\n", "Dockerfile.dev:2: FROM: duplicate stage name"],
  ];
  for (const [text, message] of cases) {
    assertThrows(() => parseDockerfile(text, "Dockerfile.dev"), DockerfileSyntaxError, message);
  }
});

Deno.test("dockerfile: # syntax= takes the built-in frontend and refuses another by name", () => {
  for (
    const syntax of [
      "docker/dockerfile:1",
      "docker/dockerfile:1.7-labs",
      "docker.io/docker/dockerfile:1@sha256:" + "a".repeat(64),
      "docker/dockerfile",
    ]
  ) {
    const df = parseDockerfile(`# syntax=${syntax}\n# check=skip=all\nFROM busybox\n`);
    assertEquals(df.stages.length, 1);
  }
  assertThrows(
    () => parseDockerfile("# syntax=example.com/my/frontend:2\nFROM busybox\n"),
    DockerfileSyntaxError,
    "Dockerfile:1: syntax: the frontend example.com/my/frontend:2 is not supported",
  );
  // A comment that only looks like a directive after the top is a comment.
  parseDockerfile("FROM busybox\n# syntax=example.com/other\n");
});
