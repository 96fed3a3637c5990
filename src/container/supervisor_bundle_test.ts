import { assertEquals, assertOk } from "../../tests/assert.ts";
import { BUNDLE_ENTRY, BUNDLE_PATH, bundleIsCurrent } from "./supervisor_bundle.ts";

const HERE = new URL("./", import.meta.url);

/** The local files of `entry`'s graph, dynamic imports included. */
async function graphOf(entry: string): Promise<string[]> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", entry],
    stdout: "piped",
  }).output();
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    modules: { specifier: string }[];
  };
  return info.modules.map((m) => m.specifier).filter((s) => s.startsWith("file:"));
}

/** `text` without its block comments and whole-line comments (examples in JSDoc are not code). */
function code(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
}

const URL_OF_MODULE = /new URL\(\s*"([^"]+)",\s*import\.meta\.url\s*\)/g;

Deno.test("every module-relative URL in the bundle resolves as from its own directory", async () => {
  const files = await graphOf(BUNDLE_ENTRY);
  assertOk(files.length > 50, `the bundle's graph has ${files.length} modules`);
  const bundle = new URL(`file://${BUNDLE_PATH}`);
  let seen = 0;
  for (const file of files) {
    const text = code(await Deno.readTextFile(new URL(file)));
    for (const m of text.matchAll(URL_OF_MODULE)) {
      seen++;
      assertEquals(
        new URL(m[1], bundle).href,
        new URL(m[1], file).href,
        `${file}: new URL("${m[1]}", import.meta.url) points elsewhere from the bundle`,
      );
    }
    // Other uses of the module's own location would be the bundle's too.
    assertOk(
      !/import\.meta\.(dirname|filename|resolve)/.test(text),
      `${file} uses its location otherwise`,
    );
  }
  assertOk(seen > 5, `found ${seen} module-relative URLs`);
});

Deno.test("the bundle registers every module the supervisor imports lazily", async () => {
  const lazyText = await Deno.readTextFile(new URL("./supervisor_bundle_lazy.ts", HERE));
  const registered = new Set(
    [...lazyText.matchAll(/registerLazy\(here\("([^"]+)"\)/g)].map((m) => new URL(m[1], HERE).href),
  );
  // From the supervisor's sources, follow lazyImport targets to closure.
  const todo = [new URL("./supervisor_main.ts", HERE).href];
  const visited = new Set<string>();
  const lazy = new Set<string>();
  while (todo.length > 0) {
    const start = todo.pop()!;
    if (visited.has(start)) continue;
    visited.add(start);
    for (const file of await graphOf(new URL(start).pathname)) {
      const text = await Deno.readTextFile(new URL(file));
      const re = /lazyImport<[^>]*>\(\s*new URL\(\s*"([^"]+)",\s*import\.meta\.url/g;
      for (const m of text.matchAll(re)) {
        const target = new URL(m[1], file).href;
        if (!lazy.has(target)) todo.push(target);
        lazy.add(target);
      }
    }
  }
  assertOk(lazy.size >= 3, `found ${lazy.size} lazy imports`);
  for (const target of lazy) assertOk(registered.has(target), `${target} is not registered`);
});

Deno.test("a bundle is current only while its inputs, itself and Deno are as recorded", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const input = `${dir}/a.ts`;
    const bundle = `${dir}/b.js`;
    await Deno.writeTextFile(input, "export const a = 1;\n");
    await Deno.writeTextFile(bundle, "1");
    const stamp = (p: string) => {
      const st = Deno.statSync(p);
      return [p, st.size, st.mtime!.getTime()];
    };
    const manifest = `${dir}/m.json`;
    const write = (deno = Deno.version.deno) =>
      Deno.writeTextFileSync(
        manifest,
        JSON.stringify({ deno, bundle: stamp(bundle), inputs: [stamp(input)] }),
      );
    write();
    assertEquals(bundleIsCurrent(manifest), true);
    write("0.0.1");
    assertEquals(bundleIsCurrent(manifest), false, "another Deno");
    write();
    await Deno.writeTextFile(input, "export const a = 22;\n");
    assertEquals(bundleIsCurrent(manifest), false, "an input changed");
    write();
    await Deno.remove(bundle);
    assertEquals(bundleIsCurrent(manifest), false, "the bundle is gone");
    assertEquals(bundleIsCurrent(`${dir}/missing.json`), false, "no manifest");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
