/**
 * Housekeeping against real things (root): the busybox fixture pulled from a real registry,
 * images built from Dockerfiles, real containers and volumes; then `image prune`, `builder
 * prune`, `system prune` and `system df`, checked against the store's database and against what
 * `du` sees the store lose.
 */
import { join } from "node:path";
import { Store } from "../src/store/mod.ts";
import { assertEquals, assertOk, assertStringIncludes } from "./assert.ts";
import { tempRoot, tsbox } from "./cli.ts";
import { fixtureRegistry } from "./fixtures/images.ts";

const isRoot = Deno.uid() === 0;
const MAIN = new URL("../main.ts", import.meta.url).pathname;

function rootTest(name: string, fn: () => Promise<void>) {
  Deno.test({ name, ignore: !isRoot, sanitizeResources: false, sanitizeOps: false, fn });
}

type Cli = (args: string[], stdin?: string) => ReturnType<typeof tsbox>;

async function setup() {
  const fx = await fixtureRegistry();
  const { root, cleanup } = await tempRoot();
  const t: Cli = (args, stdin) => tsbox(args, { root, stdin });
  await ok(t(["pull", "-q", fx.refs.busybox]));
  await ok(t(["tag", fx.refs.busybox, "busybox"]));
  return { root, t, cleanup };
}

async function ok(p: ReturnType<typeof tsbox>): Promise<string> {
  const r = await p;
  assertEquals(r.code, 0, `${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** Builds `dockerfile` as `tag` and returns the image id. */
async function build(t: Cli, tag: string, dockerfile: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "tsbox-ctx-" });
  try {
    await Deno.writeTextFile(join(dir, "Dockerfile"), dockerfile);
    await ok(t(["build", "-q", "-t", tag, dir]));
    return (await ok(t(["image", "inspect", tag]))).match(/"Id": "(sha256:[0-9a-f]{64})"/)![1];
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Runs `fn` on the store's database (read-only use). */
async function db<T>(root: string, fn: (store: Store) => T): Promise<T> {
  const store = await Store.open(root);
  try {
    return fn(store);
  } finally {
    store.close();
  }
}

const imageIds = (root: string) => db(root, (s) => s.listImages().map((i) => i.id).sort());

/**
 * Bytes the store takes on disk as du counts them; the database and the event log, which grow
 * as the prune records what it did, left out.
 */
async function du(root: string): Promise<number> {
  const out = await new Deno.Command("du", {
    args: ["-s", "-x", "-B1", "--exclude=tsbox.db*", "--exclude=events.jsonl*", root],
    stdout: "piped",
  }).output();
  assertEquals(out.code, 0);
  return Number(new TextDecoder().decode(out.stdout).split(/\s/)[0]);
}

const UNITS: Record<string, number> = { B: 1, kB: 1e3, MB: 1e6, GB: 1e9 };

/** Parses docker's human size ("2.157MB") into bytes and the half step of its last digit. */
function parseSize(text: string): { bytes: number; slack: number } {
  const m = /^([0-9.]+)(B|kB|MB|GB)$/.exec(text);
  assertOk(m, `a size: ${text}`);
  const value = Number(m[1]);
  const unit = UNITS[m[2]];
  if (unit === 1) return { bytes: value, slack: 0 };
  const digits = m[1].replace(".", "").replace(/^0+/, "").length;
  const step = 10 ** (Math.floor(Math.log10(value)) - (digits - 1)) * unit;
  return { bytes: value * unit, slack: step / 2 };
}

/** Checks that the "Total reclaimed space" printed is what du saw the store lose. */
function assertReclaimed(stdout: string, before: number, after: number): number {
  const m = /^Total reclaimed space: (\S+)$/m.exec(stdout);
  assertOk(m, stdout);
  const { bytes, slack } = parseSize(m[1]);
  const freed = before - after;
  assertOk(
    Math.abs(freed - bytes) <= slack + 0.5,
    `printed ${m[1]}, du saw ${freed} bytes freed\n${stdout}`,
  );
  return freed;
}

/** docker's `units.HumanSize` (4 significant digits), written out independently. */
function human(bytes: number): string {
  const units = ["B", "kB", "MB", "GB"];
  let v = bytes;
  let i = 0;
  for (; v >= 1000 && i < units.length - 1; i++) v /= 1000;
  return `${parseFloat(v.toPrecision(4))}${units[i]}`;
}

/** Rows of the `system df` summary by TYPE. */
function dfRows(stdout: string): Map<string, string[]> {
  const rows = new Map<string, string[]>();
  for (const line of stdout.trim().split("\n").slice(1)) {
    const cells = line.split(/\s{2,}/);
    rows.set(cells[0], cells.slice(1));
  }
  return rows;
}

/** Bytes of the regular files under `dir`, as docker counts a container's or volume's size. */
function fileBytes(dir: string): number {
  let total = 0;
  for (const e of Deno.readDirSync(dir)) {
    const p = join(dir, e.name);
    if (e.isDirectory) total += fileBytes(p);
    else if (e.isFile) total += Deno.lstatSync(p).size;
  }
  return total;
}

function variant(n: number, kb = 200): string {
  return `FROM busybox\nRUN echo v${n} > /v && dd if=/dev/urandom of=/blob bs=1k count=${kb}\n`;
}

rootTest("image prune takes dangling images only; -a keeps what containers use", async () => {
  const { root, t, cleanup } = await setup();
  try {
    const busybox = (await imageIds(root))[0];
    const a1 = await build(t, "app:1", variant(1));
    const a1b = await build(t, "app:1", variant(2)); // a1 is now dangling
    const a2 = await build(t, "app:2", variant(3));
    await ok(t(["run", "--name", "t-pr1", "app:2", "true"]));
    const a2b = await build(t, "app:2", variant(4)); // a2: untagged, but t-pr1 uses it
    assertEquals(new Set([a1, a1b, a2, a2b]).size, 4);
    const a1Top = await db(root, (s) => s.getImage(a1)!.layers.at(-1)!.diffId);

    // Without -f the answer comes from stdin: "n" keeps everything.
    const declined = await t(["image", "prune"], "n\n");
    assertEquals(declined.code, 1);
    assertStringIncludes(declined.stdout, "WARNING! This will remove all dangling images.");
    assertEquals((await imageIds(root)).length, 5);

    let before = await du(root);
    let out = await ok(t(["image", "prune"], "y\n"));
    const freed = assertReclaimed(out, before, await du(root));
    assertOk(freed >= 200 * 1024, `the 200k layer of ${a1} was freed (${freed})`);
    assertStringIncludes(out, `Deleted Images:\ndeleted: ${a1}\ndeleted: ${a1Top}\n`);
    assertEquals(await imageIds(root), [busybox, a1b, a2, a2b].sort());
    assertOk(!(await exists(await db(root, (s) => s.layers.dir(a1Top)))), "a1's layer dir");

    // -a: every image no container uses, but not busybox, which a2 (used) is built on.
    before = await du(root);
    out = await ok(t(["image", "prune", "-a", "-f"]));
    assertReclaimed(out, before, await du(root));
    assertStringIncludes(out, `untagged: app:1\ndeleted: ${a1b}\n`);
    assertStringIncludes(out, `untagged: app:2\ndeleted: ${a2b}\n`);
    assertEquals(await imageIds(root), [busybox, a2].sort());
    assertEquals((await ok(t(["start", "-a", "t-pr1"]))).trim(), "");

    // Once the container is gone nothing holds them.
    await ok(t(["rm", "t-pr1"]));
    before = await du(root);
    out = await ok(t(["image", "prune", "-a", "-f"]));
    assertReclaimed(out, before, await du(root));
    assertEquals(await imageIds(root), []);
    assertEquals(await db(root, (s) => s.db.all("SELECT diff_id FROM layers")), []);
    assertEquals([...Deno.readDirSync(join(root, "layers"))].map((e) => e.name), []);
  } finally {
    await cleanup();
  }
});

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

const MULTI_STAGE = `FROM busybox AS b
RUN dd if=/dev/urandom of=/big bs=1k count=300 && echo data > /data
FROM busybox
COPY --from=b /data /data
`;

/** Sizes the store records: layers of images (each once), layers only the cache holds. */
function recorded(store: Store): { images: number; cache: number; entries: number } {
  const one = (sql: string) => store.db.get<{ n: number }>(sql)!.n;
  return {
    images: one(`SELECT COALESCE(SUM(size), 0) AS n FROM layers
                 WHERE diff_id IN (SELECT diff_id FROM image_layers)`),
    cache: one(`SELECT COALESCE(SUM(size), 0) AS n FROM layers
                WHERE diff_id NOT IN (SELECT diff_id FROM image_layers)`),
    entries: one("SELECT COUNT(*) AS n FROM build_cache"),
  };
}

rootTest(
  "builder prune removes the layers only the cache holds; the image keeps working",
  async () => {
    const { root, t, cleanup } = await setup();
    try {
      await build(t, "ms:1", MULTI_STAGE);
      const rec = await db(root, recorded);
      assertOk(rec.cache >= 300 * 1024, `the discarded stage's layer is cache only (${rec.cache})`);
      const df = dfRows(await ok(t(["system", "df"])));
      assertEquals(df.get("Build Cache"), [
        String(rec.entries),
        "0",
        human(rec.cache),
        human(rec.cache),
      ]);
      assertEquals(df.get("Images")?.slice(0, 3), ["2", "0", human(rec.images)]);

      let before = await du(root);
      let out = await ok(t(["builder", "prune"], "y\n"));
      assertStringIncludes(out, "WARNING! This will remove all dangling build cache.");
      assertStringIncludes(out, "Deleted build cache objects:\n");
      const freed = assertReclaimed(out, before, await du(root));
      assertOk(freed >= 300 * 1024, `freed ${freed}`);
      const after = await db(root, recorded);
      assertEquals(after.cache, 0);
      assertEquals(after.images, rec.images);
      // Entries whose layers all belong to images stay (they hold no bytes of their own).
      assertOk(after.entries > 0 && after.entries < rec.entries, JSON.stringify(after));
      assertEquals(dfRows(await ok(t(["system", "df"]))).get("Build Cache")?.[2], "0B");

      before = await du(root);
      out = await ok(t(["builder", "prune", "-a", "-f"]));
      assertReclaimed(out, before, await du(root));
      assertEquals((await db(root, recorded)).entries, 0);
      assertEquals((await ok(t(["run", "--rm", "ms:1", "cat", "/data"]))).trim(), "data");
      // The next build runs its steps again, from nothing the prune left half there.
      const rebuilt = await ok(t(["build", "-t", "ms:1", await writeContext(MULTI_STAGE)]));
      assertOk(!rebuilt.includes("Using cache"), rebuilt);
    } finally {
      await cleanup();
    }
  },
);

const contexts: string[] = [];
globalThis.addEventListener("unload", () => {
  for (const dir of contexts) Deno.removeSync(dir, { recursive: true });
});

/** A build context holding `dockerfile` (removed when the tests end). */
async function writeContext(dockerfile: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "tsbox-ctx-" });
  contexts.push(dir);
  await Deno.writeTextFile(join(dir, "Dockerfile"), dockerfile);
  return dir;
}

rootTest(
  "system df matches the store; system prune asks, then prunes what docker does",
  async () => {
    const { root, t, cleanup } = await setup();
    try {
      const busybox = (await imageIds(root))[0];
      await ok(
        t([
          "run",
          "--name",
          "t-pr1",
          "busybox",
          "dd",
          "if=/dev/zero",
          "of=/f",
          "bs=1k",
          "count=100",
        ]),
      );
      await ok(
        t(["run", "--name", "t-pr2", "-v", "/vol", "busybox", "sh", "-c", "echo hi > /vol/x"]),
      );
      await ok(t(["volume", "create", "keep1"]));
      await ok(t(["run", "-d", "--name", "t-pr3", "-v", "keep1:/k", "busybox", "sleep", "300"]));
      const dangling = await build(t, "app:1", variant(1, 50));
      const app = await build(t, "app:1", variant(2, 50));
      const [c1, c2, c3] = await db(
        root,
        (s) =>
          ["t-pr1", "t-pr2", "t-pr3"].map((n) =>
            s.db.get<{ id: string }>("SELECT id FROM containers WHERE name = ?", n)!.id
          ),
      );
      const anon = await db(
        root,
        (s) => s.db.get<{ name: string }>("SELECT name FROM volumes WHERE anonymous = 1")!.name,
      );

      // The summary against the store: rows counted, sizes from the records and the files.
      const upper = (id: string) => fileBytes(join(root, "containers", id, "upper"));
      const rec = await db(root, recorded);
      const busyboxSize = await db(root, (s) => s.getImage(busybox)!.size);
      const df = dfRows(await ok(t(["system", "df"])));
      const imagesSize = rec.images;
      assertEquals(df.get("Images"), [
        "3",
        "1",
        human(imagesSize),
        `${human(imagesSize - busyboxSize)} (${
          Math.floor((imagesSize - busyboxSize) * 100 / imagesSize)
        }%)`,
      ]);
      const sizes = [upper(c1), upper(c2), upper(c3)];
      assertOk(sizes[0] >= 100 * 1024, `t-pr1 wrote 100k (${sizes[0]})`);
      const total = sizes[0] + sizes[1] + sizes[2];
      assertEquals(df.get("Containers"), [
        "3",
        "1",
        human(total),
        `${human(sizes[0] + sizes[1])} (${Math.floor((sizes[0] + sizes[1]) * 100 / total)}%)`,
      ]);
      // A stopped container's volume is linked too (docker counts every container).
      assertEquals(df.get("Local Volumes"), ["2", "2", "3B", "0B (0%)"]);
      const verbose = await ok(t(["system", "df", "-v"]));
      assertOk(
        new RegExp(`^${c1.slice(0, 12)} .* ${human(sizes[0])} .* t-pr1$`, "m").test(verbose),
        verbose,
      );
      assertOk(new RegExp(`^${anon}\\s+1\\s+3B$`, "m").test(verbose), verbose);
      assertOk(/^keep1\s+1\s+0B$/m.test(verbose), verbose);
      // docker's --format fields, the same numbers as the table.
      const formatted = await ok(
        t(["system", "df", "--format", "{{.Type}}:{{.TotalCount}}:{{.Active}}:{{.Reclaimable}}"]),
      );
      assertEquals(
        formatted.trim().split("\n"),
        [...df].map(([type, [total, active, , reclaim]]) =>
          `${type}:${total}:${active}:${reclaim}`
        ),
      );
      const json = (await ok(t(["system", "df", "--format", "json"]))).trim().split("\n")
        .map((l) => JSON.parse(l));
      assertEquals(json[2], {
        Active: "2",
        Reclaimable: "0B (0%)",
        Size: "3B",
        TotalCount: "2",
        Type: "Local Volumes",
      });

      const declined = await t(["system", "prune", "--volumes"], "no\n");
      assertEquals(declined.code, 1);
      assertStringIncludes(
        declined.stdout,
        "WARNING! This will remove:\n  - all stopped containers\n" +
          "  - all anonymous volumes not used by at least one container\n" +
          "  - all dangling images\n  - unused build cache\n\nAre you sure you want to continue? [y/N] ",
      );
      assertEquals((await ok(t(["ps", "-aq"]))).trim().split("\n").length, 3);

      const before = await du(root);
      const out = await ok(t(["system", "prune", "--volumes"], "y\n"));
      assertReclaimed(out, before, await du(root));
      const deletedContainers = /Deleted Containers:\n((?:[0-9a-f]{64}\n)+)\n/.exec(out);
      assertOk(deletedContainers, out);
      assertEquals(deletedContainers[1].trim().split("\n").sort(), [c1, c2].sort());
      assertStringIncludes(out, `Deleted Volumes:\n${anon}\n\n`);
      assertStringIncludes(out, `deleted: ${dangling}\n`);
      assertEquals(await imageIds(root), [busybox, app].sort());
      assertEquals((await ok(t(["ps", "-q", "--no-trunc"]))).trim(), c3);
      assertEquals((await ok(t(["volume", "ls", "-q"]))).trim(), "keep1");
    } finally {
      await cleanup();
    }
  },
);

rootTest("a prune waits while a build runs in the store, then prunes", async () => {
  const { root, t, cleanup } = await setup();
  try {
    const dangling = await build(t, "app:1", variant(1, 10));
    await build(t, "app:1", variant(2, 10));
    // What a running build keeps in the store while it works: its scratch directory.
    const marker = join(root, "build", "b-running");
    await Deno.mkdir(marker, { recursive: true });
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--quiet",
        MAIN,
        "--root",
        root,
        "image",
        "prune",
        "-f",
      ],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let stderr = "";
    while (!stderr.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      stderr += value;
    }
    assertStringIncludes(stderr, `waiting for a build (${marker}) to finish`);
    assertOk((await imageIds(root)).includes(dangling), "nothing removed while the build runs");
    await Deno.remove(marker);
    const [status, stdout] = await Promise.all([
      child.status,
      new Response(child.stdout).text(),
      (async () => {
        while (!(await reader.read()).done);
      })(),
    ]);
    assertEquals(status.code, 0);
    assertStringIncludes(stdout, `deleted: ${dangling}`);
    assertOk(!(await imageIds(root)).includes(dangling));
  } finally {
    await cleanup();
  }
});

rootTest("container prune reports the bytes its stopped containers took", async () => {
  const { root, t, cleanup } = await setup();
  try {
    await ok(
      t([
        "run",
        "--name",
        "t-cp1",
        "busybox",
        "dd",
        "if=/dev/urandom",
        "of=/f",
        "bs=1k",
        "count=120",
      ]),
    );
    await ok(t(["create", "--name", "t-cp2", "busybox"]));
    const before = await du(root);
    const out = await ok(t(["container", "prune", "-f"]));
    const freed = assertReclaimed(out, before, await du(root));
    assertOk(freed >= 120 * 1024, `freed ${freed}`);
    assertEquals((await ok(t(["ps", "-aq"]))).trim(), "");
  } finally {
    await cleanup();
  }
});

rootTest("builder prune during a build waits for it; the build's image is whole", async () => {
  const { root, t, cleanup } = await setup();
  // The build's second RUN fetches from here and is held until the prune is seen waiting.
  let release!: () => void;
  const released = new Promise<void>((r) => release = r);
  let reached!: () => void;
  const inRun = new Promise<void>((r) => reached = r);
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async () => {
    reached();
    await released;
    return new Response("go\n");
  });
  try {
    const dir = await writeContext(
      `FROM busybox\nRUN echo one > /one\n` +
        `RUN wget -q -O /go http://127.0.0.1:${server.addr.port}/\nRUN cat /one /go > /both\n`,
    );
    const building = t(["build", "-t", "held:1", dir]);
    await inRun; // "RUN echo one" is a layer no image names yet
    const pruner = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--quiet", MAIN, "--root", root, "builder", "prune", "-a", "-f"],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const reader = pruner.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let stderr = "";
    while (!stderr.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      stderr += value;
    }
    assertStringIncludes(stderr, "waiting for a build");
    release();
    const built = await building;
    assertEquals(built.code, 0, built.stdout + built.stderr);
    const [status] = await Promise.all([
      pruner.status,
      pruner.stdout.cancel(),
      (async () => {
        while (!(await reader.read()).done);
      })(),
    ]);
    assertEquals(status.code, 0);
    assertEquals((await ok(t(["run", "--rm", "held:1", "cat", "/both"]))).trim(), "one\ngo");
  } finally {
    release();
    await server.shutdown();
    await cleanup();
  }
});

rootTest("builder prune removes RUN --mount=type=cache caches and counts their bytes", async () => {
  const { root, t, cleanup } = await setup();
  try {
    const dockerfile = "FROM busybox\n" +
      "RUN --mount=type=cache,id=pkgs,target=/c head -c 300000 /dev/zero > /c/blob && echo ok\n";
    await build(t, "cm:1", dockerfile);
    const caches = async () => {
      const out: string[] = [];
      for await (const e of Deno.readDir(join(root, "cache-mounts"))) {
        if (await exists(join(root, "cache-mounts", e.name, "data", "blob"))) out.push(e.name);
      }
      return out;
    };
    assertEquals((await caches()).length, 1, "the build filled its cache mount");
    const before = await du(root);
    const out = await ok(t(["builder", "prune", "-f"]));
    assertStringIncludes(out, "pkgs");
    const freed = assertReclaimed(out, before, await du(root));
    assertOk(freed >= 300_000, `freed ${freed}`);
    assertEquals(await caches(), []);
  } finally {
    await cleanup();
  }
});
