/**
 * `tsbox build` against real things (root): the busybox fixture pulled from a real registry,
 * Dockerfiles built through the CLI, the results run as containers, their configs and layers
 * read back, pushed to the registry and accepted by skopeo and podman.
 */
import { join } from "node:path";
import type { ImageConfig } from "../registry/manifest.ts";
import { Store } from "../src/store/mod.ts";
import {
  assertEquals,
  assertMatch,
  assertNotEquals,
  assertOk,
  assertStringIncludes,
} from "./assert.ts";
import { tempRoot, tsbox } from "./cli.ts";
import { fixtureRegistry } from "./fixtures/images.ts";
import { purgeRootSync } from "./cleanup.ts";
import { podmanConfText } from "./podman_conf.ts";

const isRoot = Deno.uid() === 0;
const dec = new TextDecoder();

function rootTest(name: string, fn: () => Promise<void>) {
  Deno.test({ name, ignore: !isRoot, sanitizeResources: false, sanitizeOps: false, fn });
}

let shared: Promise<string> | undefined;
/** A store root holding the fixture busybox, tagged `busybox` as Dockerfiles name it. */
function sharedRoot(): Promise<string> {
  shared ??= (async () => {
    const fx = await fixtureRegistry();
    const { root } = await tempRoot();
    globalThis.addEventListener("unload", () => purgeRootSync(root));
    const pulled = await tsbox(["pull", "-q", fx.refs.busybox], { root });
    if (pulled.code !== 0) throw new Error(pulled.stderr);
    const tagged = await tsbox(["tag", fx.refs.busybox, "busybox"], { root });
    if (tagged.code !== 0) throw new Error(tagged.stderr);
    return root;
  })();
  return shared;
}

/** Writes a context directory from a map of relative paths to contents. */
async function context(files: Record<string, string>): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "tsbox-ctx-" });
  for (const [path, content] of Object.entries(files)) {
    await Deno.mkdir(join(dir, path, ".."), { recursive: true });
    await Deno.writeTextFile(join(dir, path), content);
  }
  return dir;
}

async function build(root: string, args: string[]) {
  return await tsbox(["build", ...args], { root });
}

function stepLines(stdout: string): { instruction: string; cached: boolean }[] {
  const out: { instruction: string; cached: boolean }[] = [];
  for (const line of stdout.split("\n")) {
    const step = /^Step \d+\/\d+ : (.*)$/.exec(line);
    if (step) out.push({ instruction: step[1], cached: false });
    else if (/^ ---> CACHED [0-9a-f]{12}/.test(line)) out.at(-1)!.cached = true;
  }
  return out;
}

async function imageConfig(root: string, name: string): Promise<ImageConfig & { layers: number }> {
  const store = await Store.open(root);
  try {
    const image = store.findImage(name);
    assertOk(image, `image ${name}`);
    return { ...image.config, layers: image.layers.length };
  } finally {
    store.close();
  }
}

async function run(cmd: string, args: string[], env?: Record<string, string>) {
  const out = await new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped" })
    .output();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

const APP_DOCKERFILE = `# a comment, and a continuation below
FROM busybox
WORKDIR /app
COPY dir ./dir/
COPY file.txt .
RUN echo built > /app/run.txt \\
    && rm /etc/group
ENV GREETING="hello world"
EXPOSE 8080
USER www-data
CMD ["sh", "-c", "echo \\"$GREETING\\"; pwd; id -u; cat dir/a.txt dir/sub/b.txt file.txt run.txt; cat /etc/group || echo no-group"]
`;

const APP_EXPECTED = [
  "hello world",
  "/app",
  "33",
  "a-contents",
  "b-contents",
  "file-contents",
  "built",
  "no-group",
  "",
].join("\n");

function appContext(): Promise<string> {
  return context({
    Dockerfile: APP_DOCKERFILE,
    "dir/a.txt": "a-contents\n",
    "dir/sub/b.txt": "b-contents\n",
    "file.txt": "file-contents\n",
  });
}

rootTest(
  "build: COPY, RUN with a deletion, ENV, EXPOSE, USER, CMD; run shows them all",
  async () => {
    const root = await sharedRoot();
    const ctx = await appContext();
    try {
      const r = await build(root, ["-t", "app:1", ctx]);
      assertEquals(r.code, 0, r.stderr + r.stdout);
      assertMatch(r.stdout, /^Step 1\/9 : FROM busybox$/m);
      assertMatch(r.stdout, /^Successfully built [0-9a-f]{12}$/m);
      assertMatch(r.stdout, /^Successfully tagged app:1$/m);
      const ran = await tsbox(["run", "--rm", "app:1"], { root });
      assertEquals(ran.code, 0, ran.stderr);
      assertEquals(ran.stdout.replace(/^cat: .*\n/m, ""), APP_EXPECTED);

      const config = await imageConfig(root, "app:1");
      assertEquals(config.config?.User, "www-data");
      assertEquals(config.config?.WorkingDir, "/app");
      assertEquals(config.config?.ExposedPorts, { "8080/tcp": {} });
      assertOk(config.config?.Env?.includes("GREETING=hello world"));
      // One layer per filesystem step (WORKDIR, COPY, COPY, RUN) on the base's one.
      assertEquals(config.layers, 5);
      assertEquals(config.rootfs.diff_ids.length, 5);
      const history = config.history ?? [];
      assertEquals(history.filter((h) => !h.empty_layer).length, 5);
      assertEquals(history.filter((h) => h.empty_layer).length, 4);
      assertEquals(config.created, history.at(-1)?.created);

      const hist = await tsbox(["history", "--no-trunc", "app:1"], { root });
      assertEquals(hist.code, 0, hist.stderr);
      const rows = hist.stdout.trim().split("\n").slice(1);
      assertEquals(rows.length, history.length);
      assertMatch(
        rows.find((l) => l.includes("RUN /bin/sh -c echo built")) ?? "",
        /\d+(\.\d+)?k?B\s*$/,
      );
    } finally {
      await Deno.remove(ctx, { recursive: true });
    }
  },
);

rootTest(
  "build cache: nothing changed is all CACHED with the same id; a changed file rebuilds from its COPY",
  async () => {
    const root = await sharedRoot();
    const ctx = await appContext();
    try {
      const first = await build(root, ["-q", "-t", "cache:1", ctx]);
      assertEquals(first.code, 0, first.stderr);
      const id = first.stdout.trim();
      assertMatch(id, /^sha256:[0-9a-f]{64}$/);

      await Deno.utime(join(ctx, "file.txt"), new Date(), new Date(Date.now() + 5000));
      const again = await build(root, ["-t", "cache:1", ctx]);
      assertEquals(again.code, 0, again.stderr);
      const steps = stepLines(again.stdout);
      assertEquals(steps.length, 9);
      assertEquals(steps.slice(1).every((s) => s.cached), true, again.stdout);
      assertStringIncludes(again.stdout, `Successfully built ${id.slice(7, 19)}`);

      await Deno.writeTextFile(join(ctx, "file.txt"), "changed-contents\n");
      const changed = await build(root, ["-t", "cache:2", ctx]);
      assertEquals(changed.code, 0, changed.stderr);
      assertEquals(
        stepLines(changed.stdout).map((s) => s.cached),
        [false, true, true, false, false, false, false, false, false],
        changed.stdout,
      );
      const ran = await tsbox(["run", "--rm", "cache:2", "cat", "file.txt"], { root });
      assertEquals(ran.stdout, "changed-contents\n");

      const noCache = await build(root, ["--no-cache", "-t", "cache:3", ctx]);
      assertEquals(noCache.code, 0, noCache.stderr);
      assertEquals(stepLines(noCache.stdout).some((s) => s.cached), false);
    } finally {
      await Deno.remove(ctx, { recursive: true });
    }
  },
);

rootTest("build: multi-stage, the final stage copies only the artifact", async () => {
  const root = await sharedRoot();
  const ctx = await context({
    Dockerfile: `FROM busybox AS builder
RUN mkdir /out && echo artifact-data > /out/artifact.txt && echo junk > /junk.txt
FROM busybox
COPY --from=builder /out/artifact.txt /artifact.txt
CMD ["sh", "-c", "cat /artifact.txt; ls /junk.txt /out 2>&1 >/dev/null | wc -l"]
`,
  });
  try {
    const r = await build(root, ["-t", "multi:1", ctx]);
    assertEquals(r.code, 0, r.stderr + r.stdout);
    const ran = await tsbox(["run", "--rm", "multi:1"], { root });
    assertEquals(ran.stdout.trim().split("\n").map((l) => l.trim()), ["artifact-data", "2"]);
    assertEquals((await imageConfig(root, "multi:1")).layers, 2);

    const target = await build(root, ["-q", "--target", "builder", "-t", "multi:builder", ctx]);
    assertEquals(target.code, 0, target.stderr);
    const t = await tsbox(["run", "--rm", "multi:builder", "cat", "/junk.txt"], { root });
    assertEquals(t.stdout, "junk\n");
  } finally {
    await Deno.remove(ctx, { recursive: true });
  }
});

rootTest("build: .dockerignore excludes what it names (with exceptions)", async () => {
  const root = await sharedRoot();
  const ctx = await context({
    Dockerfile: "FROM busybox\nCOPY . /ctx/\nCMD find /ctx -type f\n",
    ".dockerignore": "*.log\n!keep.log\nsecret\n**/*.tmp\n",
    "app.txt": "x",
    "debug.log": "x",
    "keep.log": "x",
    "secret/key": "x",
    "deep/dir/file.tmp": "x",
    "deep/dir/file.txt": "x",
  });
  try {
    const r = await build(root, ["-q", "-t", "ignore:1", ctx]);
    assertEquals(r.code, 0, r.stderr);
    const ran = await tsbox(["run", "--rm", "ignore:1"], { root });
    assertEquals(ran.stdout.trim().split("\n").sort(), [
      "/ctx/.dockerignore",
      "/ctx/Dockerfile",
      "/ctx/app.txt",
      "/ctx/deep/dir/file.txt",
      "/ctx/keep.log",
    ]);
  } finally {
    await Deno.remove(ctx, { recursive: true });
  }
});

rootTest(
  "build: ARG before FROM, --build-arg, RUN heredoc, COPY --chown/--chmod, ADD of a tar",
  async () => {
    const root = await sharedRoot();
    const ctx = await context({
      Dockerfile: `ARG BASE=busybox
FROM \${BASE}
ARG MSG=default
ENV FROM_ARG=\${MSG:-unset}
RUN <<EOF
echo "heredoc $MSG" > /h.txt
EOF
COPY --chown=www-data:www-data --chmod=640 f.txt /owned/
ADD files.tar.gz /unpacked/
CMD ["sh", "-c", "cat /h.txt; echo $FROM_ARG; stat -c '%U:%G %a' /owned/f.txt; cat /unpacked/inner/t.txt"]
`,
      "f.txt": "f",
      "inner/t.txt": "from-tar\n",
    });
    try {
      const tar = await run("tar", ["-czf", join(ctx, "files.tar.gz"), "-C", ctx, "inner"]);
      assertEquals(tar.code, 0, tar.stderr);
      const r = await build(root, ["--build-arg", "MSG=given", "-t", "args:1", ctx]);
      assertEquals(r.code, 0, r.stderr + r.stdout);
      const ran = await tsbox(["run", "--rm", "args:1"], { root });
      assertEquals(ran.stdout, "heredoc given\ngiven\nwww-data:www-data 640\nfrom-tar\n");

      const other = await build(root, ["--build-arg", "MSG=other", "-t", "args:2", ctx]);
      assertEquals(other.code, 0, other.stderr);
      // FROM, ARG, then ENV and RUN: the changed value reaches both.
      assertEquals(stepLines(other.stdout).map((s) => s.cached).slice(2, 4), [false, false]);
      const again = await build(root, ["--build-arg", "MSG=other", "-t", "args:2", ctx]);
      assertEquals(stepLines(again.stdout).slice(1).every((s) => s.cached), true, again.stdout);
    } finally {
      await Deno.remove(ctx, { recursive: true });
    }
  },
);

rootTest(
  "build: a failing RUN stops with exit 1 naming its command and code, and leaves no image",
  async () => {
    const root = await sharedRoot();
    const ctx = await context({
      Dockerfile: "FROM busybox\nRUN echo before-failure && exit 3\nCMD true\n",
    });
    try {
      const r = await build(root, ["-t", "broken:1", ctx]);
      // docker exits 1 (the RUN's own code is in the message, not the exit status).
      assertEquals(r.code, 1, r.stdout + r.stderr);
      assertStringIncludes(r.stdout, "before-failure");
      assertStringIncludes(
        r.stderr,
        "The command '/bin/sh -c echo before-failure && exit 3' returned a non-zero code: 3",
      );
      const images = await tsbox(["images", "-q", "broken"], { root });
      assertEquals(images.stdout.trim(), "");
      const leftovers = [...Deno.readDirSync(join(root, "build"))];
      assertEquals(leftovers.length, 0);
    } finally {
      await Deno.remove(ctx, { recursive: true });
    }
  },
);

rootTest("build: a syntax error names the file, line and instruction", async () => {
  const root = await sharedRoot();
  const ctx = await context({ Dockerfile: "FROM busybox\n\nBOGUS something\n" });
  try {
    const r = await build(root, [ctx]);
    assertEquals(r.code, 125);
    assertStringIncludes(r.stderr, "Dockerfile:3: BOGUS: unknown instruction: BOGUS");
  } finally {
    await Deno.remove(ctx, { recursive: true });
  }
});

rootTest(
  "build: the pushed image is accepted by skopeo and podman runs it like tsbox does",
  async () => {
    const root = await sharedRoot();
    const fx = await fixtureRegistry();
    const ctx = await appContext();
    const podmanDir = await Deno.makeTempDir({ prefix: "tsbox-podman-" });
    const target = `${fx.registry.host}/built/app:1`;
    try {
      assertEquals((await build(root, ["-q", "-t", target, ctx])).code, 0);
      const pushed = await tsbox(["push", target], { root });
      assertEquals(pushed.code, 0, pushed.stderr + pushed.stdout);
      const inspect = await run("skopeo", ["inspect", "--tls-verify=false", `docker://${target}`]);
      assertEquals(inspect.code, 0, inspect.stderr);
      const info = JSON.parse(inspect.stdout);
      assertEquals(info.Layers.length, 5);
      assertEquals(info.Architecture, "amd64");

      const ours = await tsbox(["run", "--rm", target], { root });
      assertEquals(ours.code, 0, ours.stderr);
      await Deno.writeTextFile(
        join(podmanDir, "containers.conf"),
        podmanConfText(podmanDir),
      );
      const ran = await run("podman", [
        "--root",
        join(podmanDir, "root"),
        "--runroot",
        join(podmanDir, "runroot"),
        "run",
        "--rm",
        "--tls-verify=false",
        "--network",
        "none",
        "--runtime",
        "runc",
        target,
      ], { ...Deno.env.toObject(), CONTAINERS_CONF: join(podmanDir, "containers.conf") });
      assertEquals(ran.code, 0, ran.stderr);
      assertEquals(ran.stdout, ours.stdout);
      assertNotEquals(ran.stdout, "");
    } finally {
      await run("podman", [
        "--root",
        join(podmanDir, "root"),
        "--runroot",
        join(podmanDir, "runroot"),
        "system",
        "reset",
        "-f",
      ]);
      await Deno.remove(podmanDir, { recursive: true }).catch(() => {});
      await Deno.remove(ctx, { recursive: true });
    }
  },
);

rootTest("build -f -: the Dockerfile from stdin, the context from the directory", async () => {
  const root = await sharedRoot();
  // The context's own Dockerfile would fail: only the one on stdin may be used.
  const ctx = await context({ Dockerfile: "FROM busybox\nRUN exit 9\n", "file.txt": "ctx-file\n" });
  try {
    const r = await tsbox(["build", "-q", "-t", "stdin-df:1", "-f", "-", ctx], {
      root,
      stdin: 'FROM busybox\nCOPY file.txt /f\nCMD ["cat", "/f"]\n',
    });
    assertEquals(r.code, 0, r.stderr);
    const ran = await tsbox(["run", "--rm", "stdin-df:1"], { root });
    assertEquals(ran.stdout, "ctx-file\n", ran.stderr);
  } finally {
    await Deno.remove(ctx, { recursive: true });
  }
});

rootTest("build -: a Dockerfile alone on stdin builds with an empty context", async () => {
  const root = await sharedRoot();
  const ok = await tsbox(["build", "-q", "-t", "stdin-only:1", "-"], {
    root,
    stdin: 'FROM busybox\nRUN echo from-stdin > /s\nCMD ["cat", "/s"]\n',
  });
  assertEquals(ok.code, 0, ok.stderr);
  const ran = await tsbox(["run", "--rm", "stdin-only:1"], { root });
  assertEquals(ran.stdout, "from-stdin\n", ran.stderr);
  // Nothing to COPY from: the context is empty, not the current directory.
  const copy = await tsbox(["build", "-"], { root, stdin: "FROM busybox\nCOPY deno.json /x\n" });
  assertEquals(copy.code, 125, copy.stdout);
  assertStringIncludes(copy.stderr, "deno.json");
  const both = await tsbox(["build", "-f", "-", "-"], { root, stdin: "FROM busybox\n" });
  assertEquals(both.code, 125);
  assertStringIncludes(both.stderr, "can't use stdin for both build context and dockerfile");
});

/** A tar of `files` (name -> text, or a symlink target after `->`), gzip-compressed or not. */
async function tarOf(files: Record<string, string>, gzip: boolean): Promise<Uint8Array> {
  const dir = await Deno.makeTempDir({ prefix: "tsbox-tar-" });
  try {
    for (const [name, content] of Object.entries(files)) {
      await Deno.mkdir(join(dir, name, ".."), { recursive: true });
      if (content.startsWith("->")) await Deno.symlink(content.slice(2), join(dir, name));
      else await Deno.writeTextFile(join(dir, name), content);
    }
    const out = await new Deno.Command("tar", {
      args: [gzip ? "-czf" : "-cf", "-", "-C", dir, ...Object.keys(files)],
      stdout: "piped",
    }).output();
    assertEquals(out.code, 0);
    return out.stdout;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

rootTest(
  "build -: a tar context on stdin, plain or gzip, with -f naming a file inside",
  async () => {
    const root = await sharedRoot();
    for (const gzip of [false, true]) {
      const tar = await tarOf({
        "Dockerfile": "FROM busybox\nRUN exit 9\n",
        "docker/alt.Dockerfile": 'FROM busybox\nCOPY app/data.txt /d\nCMD ["cat", "/d"]\n',
        "app/data.txt": `from-tar gzip=${gzip}\n`,
      }, gzip);
      const r = await tsbox([
        "build",
        "-q",
        "-t",
        "stdin-tar:1",
        "-f",
        "docker/alt.Dockerfile",
        "-",
      ], {
        root,
        stdin: tar,
      });
      assertEquals(r.code, 0, r.stderr);
      const ran = await tsbox(["run", "--rm", "stdin-tar:1"], { root });
      assertEquals(ran.stdout, `from-tar gzip=${gzip}\n`, ran.stderr);
    }
    const plain = await tsbox(["build", "-q", "-t", "stdin-tar:2", "-"], {
      root,
      stdin: await tarOf({ "Dockerfile": "FROM busybox\nCOPY x /x\n", "x": "x\n" }, true),
    });
    assertEquals(plain.code, 0, plain.stderr);
    assertEquals([...Deno.readDirSync(join(root, "build"))], []);
  },
);

rootTest(
  "build -: a hostile tar context writes nothing outside and reads no host file",
  async () => {
    const root = await sharedRoot();
    const host = await Deno.makeTempDir({ prefix: "tsbox-host-" });
    const escaped = `escaped-${host.split("/").pop()}`;
    try {
      // A valid Dockerfile on the host that an absolute symlink in the archive points at.
      await Deno.writeTextFile(join(host, "Dockerfile"), "FROM busybox\nLABEL leaked=yes\n");
      const made = await new Deno.Command("python3", {
        args: [
          "-c",
          `import io,sys,tarfile
buf=io.BytesIO()
t=tarfile.open(fileobj=buf,mode="w",format=tarfile.PAX_FORMAT)
def link(name,target):
  i=tarfile.TarInfo(name); i.type=tarfile.SYMTYPE; i.linkname=target; t.addfile(i)
def file(name,data):
  i=tarfile.TarInfo(name); i.size=len(data); t.addfile(i, io.BytesIO(data))
link("Dockerfile", sys.argv[1]+"/Dockerfile")
link("out", sys.argv[1])
file("out/pwned", b"pwned\\n")
file("../${escaped}", b"escaped\\n")
file("safe.Dockerfile", b"FROM busybox\\nCOPY . /ctx/\\nCMD [\\"find\\", \\"/ctx\\"]\\n")
t.close(); sys.stdout.buffer.write(buf.getvalue())`,
          host,
        ],
        stdout: "piped",
      }).output();
      assertEquals(made.code, 0);
      const r = await tsbox(["build", "-t", "hostile-ctx:1", "-"], { root, stdin: made.stdout });
      // The Dockerfile link resolves inside the context, where nothing is: no host file is read.
      assertEquals(r.code, 125, r.stdout);
      assertStringIncludes(
        r.stderr,
        "unable to read the Dockerfile: Dockerfile in the context archive",
      );

      const safe = await tsbox(
        ["build", "-q", "-t", "hostile-ctx:2", "-f", "safe.Dockerfile", "-"],
        {
          root,
          stdin: made.stdout,
        },
      );
      assertEquals(safe.code, 0, safe.stderr);
      const found = await tsbox(["run", "--rm", "hostile-ctx:2"], { root });
      const paths = found.stdout.trim().split("\n");
      // What went through the link and up with ".." stayed inside the context.
      assertOk(paths.includes(`/ctx/${escaped}`), found.stdout);
      assertOk(paths.includes(`/ctx${host}/pwned`), found.stdout);
      assertEquals([...Deno.readDirSync(host)].map((e) => e.name), ["Dockerfile"]);
      for (const dir of [root, join(root, "build"), join(host, "..")]) {
        const names = [...Deno.readDirSync(dir)].map((e) => e.name);
        assertEquals(names.filter((n) => n.startsWith("escaped-")), [], dir);
      }
      assertEquals([...Deno.readDirSync(join(root, "build"))], []);
    } finally {
      await Deno.remove(host, { recursive: true });
    }
  },
);

rootTest("build --label: labels on the image config, over the Dockerfile's", async () => {
  const root = await sharedRoot();
  const ctx = await context({ Dockerfile: "FROM busybox\nLABEL a=from-file c=3\n" });
  try {
    const r = await build(root, [
      "-q",
      "-t",
      "labels:1",
      "--label",
      "a=1",
      "--label",
      "b",
      "--label",
      "with.dots=x=y",
      ctx,
    ]);
    assertEquals(r.code, 0, r.stderr);
    const config = await imageConfig(root, "labels:1");
    assertEquals(config.config?.Labels, { a: "1", b: "", c: "3", "with.dots": "x=y" });
    const inspect = await tsbox(["image", "inspect", "labels:1"], { root });
    assertEquals(JSON.parse(inspect.stdout)[0].Config.Labels.a, "1");
    const bad = await build(root, ["--label", "=v", ctx]);
    assertEquals(bad.code, 125);
    assertStringIncludes(bad.stderr, "invalid label");
  } finally {
    await Deno.remove(ctx, { recursive: true });
  }
});

rootTest("build --iidfile: the id alone; a failed build removes an earlier file", async () => {
  const root = await sharedRoot();
  const ctx = await context({ Dockerfile: "FROM busybox\nENV IID=1\n" });
  const iid = join(ctx, "..", `${ctx.split("/").pop()}.iid`);
  try {
    const r = await build(root, ["-t", "iid:1", "--iidfile", iid, ctx]);
    assertEquals(r.code, 0, r.stderr);
    const id = await Deno.readTextFile(iid);
    assertMatch(id, /^sha256:[0-9a-f]{64}$/);
    const listed = await tsbox(["images", "-q", "--no-trunc", "iid:1"], { root });
    assertEquals(listed.stdout.trim(), id);
    await Deno.writeTextFile(join(ctx, "Dockerfile"), "FROM busybox\nRUN exit 4\n");
    const failed = await build(root, ["--iidfile", iid, ctx]);
    assertEquals(failed.code, 1);
    let exists = true;
    try {
      await Deno.stat(iid);
    } catch {
      exists = false;
    }
    assertEquals(exists, false, "the earlier id file is gone");
  } finally {
    await Deno.remove(iid).catch(() => {});
    await Deno.remove(ctx, { recursive: true });
  }
});

rootTest(
  "build --network none: a RUN sees only lo and cannot reach the host's server; by default it can",
  async () => {
    const root = await sharedRoot();
    let hits = 0;
    const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, () => {
      hits++;
      return new Response("host-server-answered\n");
    });
    const ctx = await context({
      Dockerfile: `FROM busybox
RUN sed 1,2d /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort > /ifaces; \\
    (printf "GET / HTTP/1.0\\r\\n\\r\\n" | nc -w 5 127.0.0.1 ${server.addr.port} 2>&1 || echo unreachable) > /got
CMD ["cat", "/ifaces", "/got"]
`,
    });
    try {
      const none = await build(root, ["--no-cache", "--network", "none", "-t", "net:none", ctx]);
      assertEquals(none.code, 0, none.stderr + none.stdout);
      const isolated = await tsbox(["run", "--rm", "net:none"], { root });
      // Only lo, and the host's 127.0.0.1 is not this namespace's: nothing listens there.
      assertEquals(
        isolated.stdout,
        "lo\nnc: can't connect to remote host (127.0.0.1): Connection refused\nunreachable\n",
        isolated.stderr,
      );
      assertEquals(hits, 0);

      const host = await build(root, ["--no-cache", "-t", "net:host", ctx]);
      assertEquals(host.code, 0, host.stderr + host.stdout);
      const reached = await tsbox(["run", "--rm", "net:host"], { root });
      const lines = reached.stdout.trim().split("\n");
      assertEquals(lines.at(-1), "host-server-answered", reached.stdout);
      assertOk(lines.length > 2, `the host's interfaces besides lo: ${reached.stdout}`);
      assertEquals(hits, 1);
    } finally {
      await server.shutdown();
      await Deno.remove(ctx, { recursive: true });
    }
  },
);

rootTest(
  "build --platform: the host's is accepted, another is chosen from a multi-arch base or refused",
  async () => {
    const root = await sharedRoot();
    const fx = await fixtureRegistry();
    const files = { "f.txt": "f\n" };
    const stage = "COPY f.txt /f.txt\nARG TARGETARCH\nLABEL target=$TARGETARCH\n";
    const local = await context({ Dockerfile: `FROM busybox\n${stage}`, ...files });
    const multi = await context({ Dockerfile: `FROM ${fx.refs.multiOci}\n${stage}`, ...files });
    const single = await context({ Dockerfile: `FROM ${fx.refs.busybox}\n${stage}`, ...files });
    try {
      // The local busybox (not in any registry under that name) suits the host's platform.
      const host = await build(root, ["-q", "--platform", "linux/amd64", "-t", "plat:host", local]);
      assertEquals(host.code, 0, host.stderr);
      const hostConfig = await imageConfig(root, "plat:host");
      assertEquals([hostConfig.os, hostConfig.architecture], ["linux", "amd64"]);
      assertEquals(hostConfig.config?.Labels?.target, "amd64");

      for (
        const [platform, arch, layers] of [["linux/arm64", "arm64", 2], [
          "linux/amd64",
          "amd64",
          3,
        ]] as const
      ) {
        const tag = `plat:multi-${arch}`;
        const r = await build(root, ["-q", "--platform", platform, "-t", tag, multi]);
        assertEquals(r.code, 0, r.stderr);
        const config = await imageConfig(root, tag);
        assertEquals(config.architecture, arch);
        assertEquals(config.config?.Labels?.target, arch);
        // The arm64 image is its /arch layer alone; amd64's has busybox under its /arch layer.
        assertEquals(config.layers, layers);
      }

      // A RUN in the arm64 stage runs under the host's qemu-aarch64 handler
      // (tests/build_platforms_test.ts); this arm64 image has no shell, and the message says so.
      await Deno.writeTextFile(join(multi, "Dockerfile"), `FROM ${fx.refs.multiOci}\nRUN true\n`);
      const foreign = await build(root, ["--platform", "linux/arm64", multi]);
      assertEquals(foreign.code, 127, foreign.stdout);
      assertStringIncludes(
        foreign.stderr,
        'exec: "/bin/sh": stat /bin/sh: no such file or directory',
      );

      const refused = await build(root, ["--platform", "linux/arm64", "-t", "plat:no", single]);
      assertEquals(refused.code, 125, refused.stdout);
      assertStringIncludes(
        refused.stderr,
        "does not match the specified platform: wanted linux/arm64, actual: linux/amd64",
      );
      assertEquals((await tsbox(["images", "-q", "plat:no"], { root })).stdout, "");
      const invalid = await build(root, ["--platform", "linux/amd64/v3/extra", local]);
      assertEquals(invalid.code, 125);
      assertStringIncludes(invalid.stderr, "invalid platform");
    } finally {
      for (const dir of [local, multi, single]) await Deno.remove(dir, { recursive: true });
    }
  },
);
