/**
 * Volumes end to end (root): the fixture images from the registry on 127.0.0.1, containers run
 * through the CLI, what they leave in `<root>/volumes` read back from the host.
 */
import { join } from "node:path";
import { lgetxattr } from "../ffi/fs.ts";
import { fixtureRegistry } from "./fixtures/images.ts";
import { assertEquals, assertMatch, assertOk, assertStringIncludes } from "./assert.ts";
import { tempRoot, tsbox } from "./cli.ts";

const isRoot = Deno.uid() === 0;

function rootTest(name: string, fn: () => Promise<void>) {
  Deno.test({ name, ignore: !isRoot, sanitizeResources: false, sanitizeOps: false, fn });
}

type Cli = (args: string[]) => ReturnType<typeof tsbox>;

async function setup() {
  const fx = await fixtureRegistry();
  const { root, cleanup } = await tempRoot();
  const t: Cli = (args) => tsbox(args, { root });
  for (const name of ["busybox", "layered"] as const) {
    const r = await t(["pull", "-q", fx.refs[name]]);
    assertEquals(r.code, 0, r.stderr);
  }
  return { root, t, cleanup, refs: fx.refs };
}

async function ok(p: ReturnType<typeof tsbox>): Promise<string> {
  const r = await p;
  assertEquals(r.code, 0, `${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

async function until(what: string, cond: () => Promise<boolean>, ms = 20_000) {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function volumeNames(t: Cli): Promise<string[]> {
  return (await ok(t(["volume", "ls", "-q"]))).split("\n").filter(Boolean);
}

interface MountInfo {
  Type: string;
  Name?: string;
  Source: string;
  Destination: string;
  RW: boolean;
}

async function mountsOf(t: Cli, name: string): Promise<MountInfo[]> {
  return (JSON.parse(await ok(t(["inspect", name]))) as [{ Mounts: MountInfo[] }])[0].Mounts;
}

rootTest("a named volume carries files from one container to the next", async () => {
  const { root, t, cleanup, refs } = await setup();
  try {
    await ok(
      t(["run", "--rm", "-v", "shared:/vol", refs.busybox, "sh", "-c", "echo hello > /vol/f"]),
    );
    assertEquals(await volumeNames(t), ["shared"]);
    const data = join(root, "volumes/shared/_data");
    assertEquals(await Deno.readTextFile(join(data, "f")), "hello\n");
    // Another container, another path, --mount spelling, read-only.
    const r = await t([
      "run",
      "--rm",
      "--mount",
      "type=volume,source=shared,target=/other,readonly",
      refs.busybox,
      "sh",
      "-c",
      "cat /other/f; echo x > /other/g",
    ]);
    assertEquals(r.code, 1);
    assertEquals(r.stdout, "hello\n");
    assertStringIncludes(r.stderr, "Read-only file system");
    // Named volumes outlive --rm.
    assertEquals(await volumeNames(t), ["shared"]);
    const [info] = JSON.parse(await ok(t(["volume", "inspect", "shared"]))) as [
      Record<string, unknown>,
    ];
    assertEquals(info.Name, "shared");
    assertEquals(info.Driver, "local");
    assertEquals(info.Mountpoint, data);
    assertMatch(String(info.CreatedAt), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  } finally {
    await cleanup();
  }
});

rootTest("a new volume is seeded from the image; an existing one is not copied over", async () => {
  const { root, t, cleanup, refs } = await setup();
  try {
    // busybox: a volume on /etc shows the image's passwd.
    const passwd = await ok(
      t(["run", "--rm", "-v", "etc:/etc", refs.busybox, "cat", "/etc/passwd"]),
    );
    assertStringIncludes(passwd, "root:x:0:0:");
    assertStringIncludes(
      await Deno.readTextFile(join(root, "volumes/etc/_data/passwd")),
      "www-data:x:33:33:",
    );

    // layered: what the unpacker got right survives the copy (whiteouts stay gone).
    await ok(t(["run", "--rm", "-v", "dv:/data", refs.layered, "true"]));
    const data = join(root, "volumes/dv/_data");
    const names = [...Deno.readDirSync(data)].map((e) => e.name).sort();
    assertEquals(names, [
      "hard",
      "keep.txt",
      "layer3.txt",
      "link",
      "owned",
      "ownedDir",
      "suid",
      "xattr",
    ]);
    const keep = Deno.lstatSync(join(data, "keep.txt"));
    assertEquals(Deno.lstatSync(join(data, "hard")).ino, keep.ino, "hard link kept");
    assertEquals(Deno.readLinkSync(join(data, "link")), "keep.txt");
    assertEquals(Deno.lstatSync(join(data, "suid")).mode! & 0o7777, 0o4755);
    const owned = Deno.lstatSync(join(data, "owned"));
    assertEquals([owned.uid, owned.gid], [1000, 1000]);
    const dir = Deno.lstatSync(join(data, "ownedDir"));
    assertEquals([dir.uid, dir.mode! & 0o7777], [1000, 0o750]);
    assertEquals(new TextDecoder().decode(lgetxattr(join(data, "xattr"), "user.tsbox")!), "1");

    // Not empty any more: a later container sees the volume as it was left, not the image.
    await ok(t(["run", "--rm", "-v", "dv:/data", refs.layered, "rm", "/data/keep.txt"]));
    const ls = await ok(t(["run", "--rm", "-v", "dv:/data", refs.layered, "ls", "/data"]));
    assertOk(!ls.split("\n").includes("keep.txt"), ls);
    assertOk(ls.split("\n").includes("layer3.txt"), ls);

    // nocopy: nothing seeded.
    const empty = await ok(
      t(["run", "--rm", "-v", "nv:/data:nocopy", refs.layered, "ls", "-A", "/data"]),
    );
    assertEquals(empty, "");
  } finally {
    await cleanup();
  }
});

rootTest("volume rm refuses a volume a container uses, running or stopped", async () => {
  const { t, cleanup, refs } = await setup();
  try {
    assertEquals((await ok(t(["volume", "create", "busy"]))).trim(), "busy");
    const id =
      (await ok(t(["run", "-d", "--name", "user", "-v", "busy:/b", refs.busybox, "sleep", "60"])))
        .trim();
    for (const args of [["volume", "rm", "busy"], ["volume", "rm", "-f", "busy"]]) {
      const r = await t(args);
      assertEquals(r.code, 1);
      assertStringIncludes(r.stderr, `remove busy: volume is in use - [${id}]`);
    }
    await ok(t(["stop", "-t", "1", "user"]));
    const stopped = await t(["volume", "rm", "busy"]);
    assertEquals(stopped.code, 1, "a stopped container still uses its volumes");
    assertStringIncludes(stopped.stderr, "volume is in use");
    // prune -a leaves it too.
    await ok(t(["volume", "prune", "-f", "-a"]));
    assertEquals(await volumeNames(t), ["busy"]);

    await ok(t(["rm", "user"]));
    assertEquals((await ok(t(["volume", "rm", "busy"]))).trim(), "busy");
    assertEquals(await volumeNames(t), []);
    const missing = await t(["volume", "rm", "busy"]);
    assertEquals(missing.code, 1);
    assertStringIncludes(missing.stderr, "No such volume: busy");
    await ok(t(["volume", "rm", "-f", "busy"]));
  } finally {
    await cleanup();
  }
});

rootTest("anonymous volumes: removed with --rm and rm -v, kept by rm, pruned", async () => {
  const { root, t, cleanup, refs } = await setup();
  try {
    // --rm: the anonymous volume goes with the container; a named one in the same run stays.
    await ok(t([
      "run",
      "--rm",
      "-v",
      "/anon",
      "-v",
      "keepme:/named",
      refs.busybox,
      "sh",
      "-c",
      "echo x > /anon/f && echo y > /named/f",
    ]));
    assertEquals(await volumeNames(t), ["keepme"]);
    // Detached --rm: the supervisor removes both when the container ends.
    await ok(t(["run", "-d", "--rm", "-v", "/anon", refs.busybox, "sleep", "1"]));
    assertEquals((await volumeNames(t)).length, 2);
    await until("the detached --rm container and its volume to go", async () => {
      const ps = await ok(t(["ps", "-a", "-q"]));
      return ps.trim() === "" && (await volumeNames(t)).join() === "keepme";
    });

    // Without --rm it stays, is listed in inspect, and plain rm leaves it.
    await ok(t(["run", "--name", "t-a1", "-v", "/anon", refs.busybox, "touch", "/anon/f"]));
    const [mount] = await mountsOf(t, "t-a1");
    assertEquals(mount.Type, "volume");
    assertMatch(mount.Name!, /^[0-9a-f]{64}$/);
    assertEquals(mount.Source, join(root, "volumes", mount.Name!, "_data"));
    assertEquals(mount.Destination, "/anon");
    assertEquals(mount.RW, true);
    assertOk(Deno.statSync(join(mount.Source, "f")).isFile);
    await ok(t(["rm", "t-a1"]));
    assertEquals((await volumeNames(t)).sort(), [mount.Name!, "keepme"].sort());
    // prune without -a takes anonymous volumes only.
    const pruned = await ok(t(["volume", "prune", "-f"]));
    assertStringIncludes(pruned, `Deleted Volumes:\n${mount.Name}\n`);
    assertEquals(await volumeNames(t), ["keepme"]);

    // rm -v removes the container's anonymous volumes, not its named ones.
    await ok(t(["create", "--name", "t-a2", "-v", "/anon", "-v", "keepme:/k:ro", refs.busybox]));
    const mounts = await mountsOf(t, "t-a2");
    assertEquals(mounts.map((m) => [m.Destination, m.Type, m.RW]), [
      ["/anon", "volume", true],
      ["/k", "volume", false],
    ]);
    assertEquals((await volumeNames(t)).length, 2);
    await ok(t(["rm", "-v", "t-a2"]));
    assertEquals(await volumeNames(t), ["keepme"]);
    await Deno.stat(join(root, "volumes", mounts[0].Name!)).then(
      () => assertOk(false, "the anonymous volume's directory is gone"),
      (err) => assertOk(err instanceof Deno.errors.NotFound),
    );
  } finally {
    await cleanup();
  }
});

rootTest(
  "an image's VOLUME becomes a seeded anonymous volume unless a mount covers it",
  async () => {
    const { t, cleanup } = await setup();
    const fx = await fixtureRegistry();
    const ctx = await Deno.makeTempDir({ prefix: "tsbox-volctx-" });
    try {
      await Deno.writeTextFile(
        join(ctx, "Dockerfile"),
        `FROM ${fx.refs.busybox}\nRUN mkdir /data && echo from-image > /data/seed && chown -R 33:33 /data\nVOLUME /data\n`,
      );
      await ok(t(["build", "-q", "-t", "withvol", ctx]));
      const out = await ok(t([
        "run",
        "--name",
        "v1",
        "withvol",
        "sh",
        "-c",
        "cat /data/seed; stat -c %u /data; grep ' /data ' /proc/self/mountinfo | wc -l",
      ]));
      assertEquals(out.split("\n").slice(0, 3), ["from-image", "33", "1"]);
      const [mount] = await mountsOf(t, "v1");
      assertEquals([mount.Type, mount.Destination], ["volume", "/data"]);
      assertMatch(mount.Name!, /^[0-9a-f]{64}$/);
      // A named volume on the same path replaces the anonymous one (and is seeded the same way).
      await ok(t(["run", "--name", "v2", "-v", "mine:/data", "withvol", "true"]));
      assertEquals((await mountsOf(t, "v2")).map((m) => m.Name), ["mine"]);
      await ok(t(["rm", "-v", "v1", "v2"]));
      assertEquals(await volumeNames(t), ["mine"]);
    } finally {
      await Deno.remove(ctx, { recursive: true });
      await cleanup();
    }
  },
);
