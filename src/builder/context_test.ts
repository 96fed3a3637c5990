import { join } from "node:path";
import { assertEquals, assertNotEquals, assertRejects } from "../../tests/assert.ts";
import {
  cleanRel,
  contextRoot,
  globRegExp,
  resolveSources,
  SourceNotFoundError,
  sourcesDigest,
} from "./context.ts";

async function tree(files: Record<string, string>): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "tsbox-ctx-test-" });
  for (const [p, c] of Object.entries(files)) {
    await Deno.mkdir(join(dir, p, ".."), { recursive: true });
    await Deno.writeTextFile(join(dir, p), c);
  }
  return dir;
}

Deno.test("context: Go filepath.Match globs stay within one path component", () => {
  const re = globRegExp("src/*.ts");
  assertEquals(["src/a.ts", "src/b/c.ts", "src/.ts", "srcx/a.ts"].map((p) => re.test(p)), [
    true,
    false,
    true,
    false,
  ]);
  assertEquals(globRegExp("f?[0-9]").test("fa7"), true);
  assertEquals(globRegExp("f[^0-9]").test("f7"), false);
  assertEquals(cleanRel("/../a/./b/../c/"), "a/c");
});

Deno.test("context: sources resolve globs and honour .dockerignore", async () => {
  const dir = await tree({ ".dockerignore": "*.log\n", "a.txt": "a", "b.txt": "b", "c.log": "c" });
  try {
    const root = await contextRoot(dir);
    const names = (await resolveSources(root, ["*.txt"])).map((s) => s.rel);
    assertEquals(names, ["a.txt", "b.txt"]);
    await assertRejects(() => resolveSources(root, ["c.log"]), SourceNotFoundError);
    await assertRejects(() => resolveSources(root, ["*.none"]), SourceNotFoundError);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("context: the digest follows contents and modes, not times", async () => {
  const dir = await tree({ "d/a.txt": "a", "d/b.txt": "b" });
  try {
    const root = await contextRoot(dir);
    const digest = async () => sourcesDigest(root, await resolveSources(root, ["d"]));
    const first = await digest();
    await Deno.utime(join(dir, "d/a.txt"), new Date(0), new Date(0));
    assertEquals(await digest(), first);
    await Deno.chmod(join(dir, "d/a.txt"), 0o600);
    const moded = await digest();
    assertNotEquals(moded, first);
    await Deno.writeTextFile(join(dir, "d/b.txt"), "B");
    assertNotEquals(await digest(), moded);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
