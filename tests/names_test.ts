/**
 * Issue 25: a container name made only of hex digits can be another container's id prefix, and
 * tsbox (like docker) resolves a name it does not find as an id prefix, so a test that looks up
 * a removed container `d` could find a new one whose id begins with `d`. These checks keep such
 * names out of the suite.
 */
import { join } from "node:path";
import { assertEquals, assertRejects, assertThrows } from "./assert.ts";
import { checkTestName, tsbox } from "./cli.ts";

const REPO = new URL("..", import.meta.url).pathname;

/** Container names written as literals: `"--name", "X"` (also across lines), `--name X`, `--name=X`. */
const NAME_PATTERNS = [
  /"--name",\s*"([^"]*)"/g,
  /--name[ =]([^\s"'`,)]+)/g,
];
/** In integration tests only, where `name:` is a container's name given to the API. */
const OPTION_PATTERN = /\bname:\s*"([^"]*)"/g;

async function sources(dir: string, out: string[] = []): Promise<string[]> {
  for await (const e of Deno.readDir(dir)) {
    const path = join(dir, e.name);
    if (e.isDirectory && !e.name.startsWith(".") && e.name !== "out") await sources(path, out);
    else if (e.isFile && e.name.endsWith(".ts")) out.push(path);
  }
  return out;
}

/** Every hex-only container name written in `text`, as `line: match`. */
function hexNames(text: string, integration: boolean): string[] {
  const found: string[] = [];
  const patterns = integration ? [...NAME_PATTERNS, OPTION_PATTERN] : NAME_PATTERNS;
  for (const pattern of patterns) {
    for (const m of text.matchAll(pattern)) {
      if (/^[0-9a-f]+$/.test(m[1])) {
        found.push(`${text.slice(0, m.index).split("\n").length}: ${m[0]}`);
      }
    }
  }
  return found;
}

Deno.test("the scan finds hex-only container names in every form it looks for", () => {
  const text = [
    `t(["run", "--name", "d", img]);`,
    `t(["run", "--name",\n  "a1", img]);`,
    `sh -c "tsbox run --name ab12 busybox"`,
    `t(["create", "--name=f00"]);`,
    `run(store, { name: "c" });`,
    `t(["run", "--name", "t-d", img]); run(store, { name: "web" });`,
  ].join("\n");
  assertEquals(hexNames(text, true).length, 5, hexNames(text, true).join("\n"));
  assertEquals(hexNames(text, false).length, 4);
});

Deno.test("no test names a container with hex digits only", async () => {
  const bad: string[] = [];
  for (const dir of ["tests", "src", "ffi", "registry", "bench"]) {
    for (const file of await sources(join(REPO, dir))) {
      if (file.endsWith("names_test.ts")) continue; // its examples are meant to be found
      const integration = file.startsWith(join(REPO, "tests"));
      for (const hit of hexNames(await Deno.readTextFile(file), integration)) {
        bad.push(`${file.slice(REPO.length)}:${hit}`);
      }
    }
  }
  assertEquals(bad, [], "use a name with a letter outside a-f, e.g. a t- prefix");
});

Deno.test("the tsbox test helper refuses a hex-only --name before running anything", async () => {
  assertThrows(() => checkTestName("d"), Error, "can be an id prefix");
  assertThrows(() => checkTestName("0123abc"), Error, "t-0123abc");
  checkTestName("t-d");
  checkTestName("web");
  for (const args of [["run", "--name", "ad", "busybox"], ["create", "--name=be", "busybox"]]) {
    await assertRejects(
      () => tsbox(args, { root: "/nonexistent-tsbox-root" }),
      Error,
      "can be an id prefix",
    );
  }
});
