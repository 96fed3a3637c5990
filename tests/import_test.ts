/**
 * `import` (root): a container's export imported as a one-layer image runs with the `-c`
 * config given, from a file or gzipped on stdin; the history shows `-m` (or docker's
 * `Imported from -`); something that is not a tar makes no image.
 */
import { gzipSync } from "node:zlib";
import { sharedBusyboxRoot } from "./busybox_store.ts";
import { assertEquals, assertStringIncludes } from "./assert.ts";
import { type CliResult, tsbox } from "./cli.ts";

const isRoot = Deno.uid() === 0;

function rootTest(name: string, fn: () => Promise<void>) {
  Deno.test({ name, ignore: !isRoot, sanitizeResources: false, sanitizeOps: false, fn });
}

async function cli(args: string[], stdin?: Uint8Array | string): Promise<CliResult> {
  return await tsbox(args, { root: await sharedBusyboxRoot(), stdin });
}

/** Runs `args`, failing the test with its stderr unless it exits 0; returns stdout trimmed. */
async function ok(args: string[], stdin?: Uint8Array | string): Promise<string> {
  const r = await cli(args, stdin);
  assertEquals(r.code, 0, `tsbox ${args.join(" ")}: ${r.stderr}`);
  return r.stdout.trim();
}

rootTest("import of an exported container: its files, -c config, -m in history", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tsbox-import-" });
  await ok(["run", "--name", "t-c21-exp", "busybox", "sh", "-c", "echo exported > /f"]);
  try {
    await ok(["export", "-o", `${dir}/fs.tar`, "t-c21-exp"]);
    const id = await ok([
      "import",
      "-c",
      'CMD ["cat", "/f"]',
      "-c",
      "ENV WHO=imported",
      "-m",
      "from an export",
      `${dir}/fs.tar`,
      "t-c21/imported:v1",
    ]);
    assertEquals(/^sha256:[0-9a-f]{64}$/.test(id), true, id);
    assertEquals(await ok(["run", "--rm", "t-c21/imported:v1"]), "exported");
    assertEquals(
      await ok(["run", "--rm", "t-c21/imported:v1", "sh", "-c", "echo $WHO"]),
      "imported",
    );
    const inspect = JSON.parse(await ok(["image", "inspect", "t-c21/imported:v1"]))[0];
    assertEquals(inspect.RootFS.Layers.length, 1);
    assertEquals(
      await ok(["history", "--format", "{{.Comment}}", "t-c21/imported:v1"]),
      "from an export",
    );
    // The same archive gzipped on stdin: the same layer, docker's default comment.
    const gz = gzipSync(await Deno.readFile(`${dir}/fs.tar`));
    await ok(["image", "import", "-", "t-c21/imported:gz"], gz);
    const again = JSON.parse(await ok(["image", "inspect", "t-c21/imported:gz"]))[0];
    assertEquals(again.RootFS.Layers, inspect.RootFS.Layers);
    assertEquals(
      await ok(["history", "--format", "{{.Comment}}", "t-c21/imported:gz"]),
      "Imported from -",
    );
    assertEquals(await ok(["run", "--rm", "t-c21/imported:gz", "cat", "/f"]), "exported");
    // Two gzip members one after the other (as pigz and some registries' layers are): read
    // through as one stream, as gzip(1) and Go's reader (docker, podman) read them.
    const tar = await Deno.readFile(`${dir}/fs.tar`);
    const half = Math.floor(tar.length / 2);
    const first = gzipSync(tar.subarray(0, half)), second = gzipSync(tar.subarray(half));
    const members = new Uint8Array(first.length + second.length);
    members.set(first);
    members.set(second, first.length);
    await ok(["image", "import", "-", "t-c21/imported:members"], members);
    const joined = JSON.parse(await ok(["image", "inspect", "t-c21/imported:members"]))[0];
    assertEquals(joined.RootFS.Layers, inspect.RootFS.Layers);
  } finally {
    await cli(["rm", "-f", "t-c21-exp"]);
    await cli(["rmi", "t-c21/imported:v1", "t-c21/imported:gz", "t-c21/imported:members"]);
    await Deno.remove(dir, { recursive: true });
  }
});

rootTest("import of something that is not a tar fails and makes no image", async () => {
  const before = await ok(["images", "-q", "--no-trunc"]);
  const r = await cli(
    ["import", "-", "t-c21/notatar"],
    "hello, this is not a tarball\n".repeat(40),
  );
  assertEquals(r.code, 125, r.stderr);
  assertStringIncludes(r.stderr, "archive/tar: invalid tar header");
  const missing = await cli(["import", "/nonexistent/t-c21.tar"]);
  assertEquals(missing.code, 125);
  assertStringIncludes(missing.stderr, "open /nonexistent/t-c21.tar: no such file or directory");
  const bad = await cli(["import", "-c", "RUN true", "-", "t-c21/notatar"], "x");
  assertEquals(bad.code, 125);
  assertStringIncludes(bad.stderr, "run is not a valid change command");
  assertEquals(await ok(["images", "-q", "--no-trunc"]), before);
});
