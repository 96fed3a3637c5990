/**
 * COPY/ADD flags in `tsbox build` (root), on the fixture busybox: `--exclude` and `--parents`
 * honoured, `ADD` of a URL from a loopback HTTP server (name from the URL, mode 0600, mtime
 * from Last-Modified, `--checksum` verified), and the `# syntax=` directive.
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import { assertEquals, assertOk, assertStringIncludes } from "./assert.ts";
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

async function runIn(root: string, image: string, script: string): Promise<string> {
  const r = await tsbox(["run", "--rm", image, "sh", "-c", script], { root });
  assertEquals(r.code, 0, r.stderr);
  return r.stdout;
}

rootTest("COPY --exclude leaves out what it names; --parents keeps the source's path", async () => {
  const root = await sharedBusyboxRoot();
  const ctx = await context({
    Dockerfile: `FROM busybox
COPY --exclude=*.log --exclude=deep/skip.txt sub /d/
COPY --parents sub/deep/f.txt sub/top.txt /p/
COPY --parents ./sub/./deep/f.txt /q/
`,
    "sub/top.txt": "top\n",
    "sub/a.log": "log\n",
    "sub/deep/f.txt": "f\n",
    "sub/deep/skip.txt": "skip\n",
    "sub/deep/b.log": "nested log\n",
  });
  try {
    const r = await tsbox(["build", "-t", "copy-flags", ctx], { root });
    assertEquals(r.code, 0, r.stderr + r.stdout);
    const found = await runIn(root, "copy-flags", "cd / && find d p q -type f | sort");
    assertEquals(found.trim().split("\n"), [
      // *.log is matched relative to the copied directory: top level only, as dockerignore.
      "d/deep/b.log",
      "d/deep/f.txt",
      "d/top.txt",
      "p/sub/deep/f.txt",
      "p/sub/top.txt",
      "q/deep/f.txt",
    ]);
    // The excluded files do not key the cache: changing one keeps the step cached.
    await Deno.writeTextFile(join(ctx, "sub/a.log"), "changed\n");
    const again = await tsbox(["build", "-t", "copy-flags", ctx], { root });
    assertEquals(again.code, 0, again.stderr);
    assertOk(
      /Step 2\/4 : COPY --exclude[^\n]*\n ---> Using cache/.test(again.stdout),
      again.stdout,
    );
  } finally {
    await Deno.remove(ctx, { recursive: true });
  }
});

rootTest("ADD URL from a loopback server: name, mode 0600, mtime, --checksum", async () => {
  const root = await sharedBusyboxRoot();
  const body = "downloaded over http\n";
  const sum = `sha256:${createHash("sha256").update(body).digest("hex")}`;
  const lastModified = "Wed, 21 Oct 2015 07:28:00 GMT";
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    const path = new URL(req.url).pathname;
    if (path === "/files/hello.txt") {
      return new Response(body, { headers: { "last-modified": lastModified } });
    }
    return new Response("no", { status: 404 });
  });
  const base = `http://127.0.0.1:${server.addr.port}`;
  const dockerfile = (checksum: string) =>
    `# syntax=docker/dockerfile:1
FROM busybox
ADD ${checksum} ${base}/files/hello.txt /dl/
ADD ${base}/files/hello.txt /named.txt
`;
  const good = await context({ Dockerfile: dockerfile(`--checksum=${sum}`) });
  const bad = await context({ Dockerfile: dockerfile(`--checksum=sha256:${"0".repeat(64)}`) });
  const missing = await context({ Dockerfile: `FROM busybox\nADD ${base}/nothing /x\n` });
  const other = await context({ Dockerfile: "# syntax=example.com/frontend:1\nFROM busybox\n" });
  try {
    const r = await tsbox(["build", "-t", "add-url", good], { root });
    assertEquals(r.code, 0, r.stderr + r.stdout);
    const shown = await runIn(
      root,
      "add-url",
      "cat /dl/hello.txt /named.txt; stat -c '%a %Y' /dl/hello.txt /named.txt",
    );
    const mtime = Date.parse(lastModified) / 1000;
    assertEquals(shown, `${body}${body}600 ${mtime}\n600 ${mtime}\n`);

    const wrong = await tsbox(["build", bad], { root });
    assertEquals(wrong.code, 125, wrong.stdout);
    assertStringIncludes(wrong.stderr, "checksum mismatch");
    const gone = await tsbox(["build", missing], { root });
    assertEquals(gone.code, 125, gone.stdout);
    assertStringIncludes(gone.stderr, "404");
    const refused = await tsbox(["build", other], { root });
    assertEquals(refused.code, 125, refused.stdout);
    assertStringIncludes(refused.stderr, "the frontend example.com/frontend:1 is not supported");
  } finally {
    await server.shutdown();
    for (const d of [good, bad, missing, other]) await Deno.remove(d, { recursive: true });
  }
});
