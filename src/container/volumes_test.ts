/**
 * Volume flags, mount planning, the volume table and the seeding copy, against a real state
 * database and real directories (copying owners needs root; those tests say so).
 */
import { join } from "node:path";
import { lgetxattr, lsetxattr } from "../../ffi/fs.ts";
import { NotFoundError, UsageError } from "../errors.ts";
import { parseMountFlag, parseVolume } from "./flag_values.ts";
import { Store } from "../store/mod.ts";
import {
  assertEquals,
  assertMatch,
  assertOk,
  assertRejects,
  assertThrows,
} from "../../tests/assert.ts";
import {
  attachVolumes,
  copyImagePath,
  createVolume,
  listVolumes,
  planMounts,
  pruneVolumes,
  removeVolume,
  volumeData,
  VolumeInUseError,
  volumeMountsOf,
  volumeUsers,
} from "./volumes.ts";
import { createContainer, deleteContainerRow, type RunConfig } from "./state.ts";

const isRoot = Deno.uid() === 0;

Deno.test("-v forms: bind, named volume, anonymous volume, modes", () => {
  assertEquals(parseVolume("/host:/c:ro"), {
    kind: "bind",
    source: "/host",
    target: "/c",
    readOnly: true,
    createSource: true,
  });
  assertEquals(parseVolume("data:/c"), {
    kind: "volume",
    name: "data",
    target: "/c",
    readOnly: false,
    noCopy: false,
  });
  assertEquals(parseVolume("data:/c:ro,nocopy"), {
    kind: "volume",
    name: "data",
    target: "/c",
    readOnly: true,
    noCopy: true,
  });
  assertEquals(parseVolume("/only"), {
    kind: "volume",
    target: "/only",
    readOnly: false,
    noCopy: false,
  });
  assertThrows(() => parseVolume("./rel:/c"), UsageError, "invalid characters");
  assertThrows(() => parseVolume("x:/c"), UsageError, "invalid characters");
  assertThrows(() => parseVolume("data:rel"), UsageError, "absolute");
  assertThrows(() => parseVolume("data:/c:rx"), UsageError, "invalid mode");
  assertThrows(() => parseVolume("/h:/c:nocopy"), UsageError, "nocopy");
  assertThrows(() => parseVolume("a:/b:ro:x"), UsageError, "invalid volume specification");
});

Deno.test("--mount type=volume: named, anonymous, readonly, volume-nocopy", () => {
  assertEquals(parseMountFlag("type=volume,source=v1,target=/d,readonly"), {
    kind: "volume",
    name: "v1",
    target: "/d",
    readOnly: true,
    noCopy: false,
  });
  assertEquals(parseMountFlag("type=volume,dst=/d,volume-nocopy"), {
    kind: "volume",
    target: "/d",
    readOnly: false,
    noCopy: true,
  });
  assertEquals(parseMountFlag("src=v2,target=/d,volume-nocopy=false"), {
    kind: "volume",
    name: "v2",
    target: "/d",
    readOnly: false,
    noCopy: false,
  });
  assertThrows(
    () => parseMountFlag("type=volume,source=v9,target=/d,volume-driver=nfs"),
    UsageError,
    "local",
  );
});

Deno.test("planMounts: volumes become binds of their data dirs, parents first, image VOLUMEs", () => {
  const { mounts, volumes } = planMounts(
    "/r",
    [
      parseVolume("/host/sub:/data/sub"),
      parseVolume("named:/data"),
      parseVolume("/anon"),
    ],
    ["/data", "/var/lib/db/"],
  );
  assertEquals(volumes.map((v) => [v.target, v.anonymous, v.copy]), [
    ["/data", false, true],
    ["/anon", true, true],
    ["/var/lib/db", true, true],
  ]);
  assertEquals(volumes[0].name, "named");
  for (const v of volumes.slice(1)) assertMatch(v.name, /^[0-9a-f]{64}$/);
  assertOk(volumes[1].name !== volumes[2].name);
  // /data (a user volume) is not doubled by the image's VOLUME /data; depth orders the mounts.
  assertEquals(mounts.map((m) => m.target), ["/data", "/anon", "/data/sub", "/var/lib/db"]);
  assertEquals(mounts[0], {
    kind: "bind",
    source: "/r/volumes/named/_data",
    target: "/data",
    readOnly: false,
  });
  assertThrows(
    () => planMounts("/r", [parseVolume("a1:/x"), parseVolume("/h:/x/")]),
    UsageError,
    "Duplicate mount point: /x",
  );
});

const CONFIG: RunConfig = {
  argv: ["true"],
  env: [],
  cwd: "/",
  user: "",
  hostname: "h",
  network: "none",
  resources: {},
  mounts: [],
  readOnly: false,
  tty: false,
  interactive: false,
  layers: [],
  restart: { name: "no", maxRetries: 0 },
  autoRemove: false,
  stopSignal: 15,
  stopTimeout: 10,
};

Deno.test("volume table: create is idempotent, rm refuses while a container names it", async () => {
  const root = await Deno.makeTempDir({ prefix: "tsbox-vol-" });
  const store = await Store.open(root);
  try {
    const first = createVolume(store, { name: "v1", labels: { a: "b" } });
    assertEquals(first.created, true);
    assertEquals(first.volume.labels, { a: "b" });
    assertOk(Deno.statSync(volumeData(root, "v1")).isDirectory);
    await Deno.writeTextFile(join(volumeData(root, "v1"), "f"), "kept");
    const again = createVolume(store, { name: "v1" });
    assertEquals(again.created, false);
    assertEquals(await Deno.readTextFile(join(volumeData(root, "v1"), "f")), "kept");
    assertThrows(() => createVolume(store, { name: "../x" }), UsageError);

    const id = "a".repeat(64);
    createContainer(store, { id, imageId: "sha256:x", imageName: "x", config: CONFIG });
    const [anon] = planMounts(root, [parseVolume("/anon")]).volumes;
    attachVolumes(store, id, [
      { name: "v1", anonymous: false, target: "/d", readOnly: true, copy: true },
      anon,
    ]);
    assertEquals(volumeUsers(store, "v1"), [id]);
    assertEquals(volumeMountsOf(store, id).map((v) => [v.name, v.readOnly, v.anonymous]), [
      [anon.name, false, true],
      ["v1", true, false],
    ]);
    const refused = await assertRejects(() => removeVolume(store, "v1"), VolumeInUseError);
    assertMatch(refused.message, new RegExp(`volume is in use - \\[${id}\\]`));
    await assertRejects(() => removeVolume(store, "v1", { force: true }), VolumeInUseError);
    // Nothing is pruned while in use.
    assertEquals((await pruneVolumes(store, { all: true })).removed, []);

    deleteContainerRow(store, id);
    assertEquals(volumeUsers(store, "v1"), []);
    // Without --all only the anonymous volume goes.
    const pruned = await pruneVolumes(store);
    assertEquals(pruned.removed, [anon.name]);
    assertEquals(listVolumes(store).map((v) => v.name), ["v1"]);
    await removeVolume(store, "v1");
    assertEquals(listVolumes(store), []);
    await assertRejects(() => Deno.stat(join(root, "volumes", "v1")), Deno.errors.NotFound);
    await assertRejects(() => removeVolume(store, "v1"), NotFoundError);
    await removeVolume(store, "v1", { force: true });
  } finally {
    store.close();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test({
  name: "copyImagePath keeps owners, modes, links and xattrs and never leaves the rootfs",
  ignore: !isRoot,
  fn: async () => {
    const base = await Deno.makeTempDir({ prefix: "tsbox-seed-" });
    try {
      const rootfs = join(base, "rootfs");
      const outside = join(base, "outside");
      await Deno.mkdir(outside);
      await Deno.writeTextFile(join(outside, "secret"), "host file");
      const src = join(rootfs, "srv/data");
      await Deno.mkdir(join(src, "sub"), { recursive: true });
      await Deno.writeTextFile(join(src, "owned"), "x");
      Deno.chownSync(join(src, "owned"), 1000, 1001);
      await Deno.writeTextFile(join(src, "suid"), "#!/bin/sh\n");
      Deno.chmodSync(join(src, "suid"), 0o4755);
      Deno.linkSync(join(src, "owned"), join(src, "sub/hard"));
      Deno.symlinkSync(outside, join(src, "escape"));
      Deno.chmodSync(join(src, "sub"), 0o750);
      Deno.chownSync(src, 33, 33);
      Deno.chmodSync(src, 0o710);
      lsetxattr(join(src, "owned"), "user.tsbox", new TextEncoder().encode("1"));
      Deno.utimeSync(join(src, "sub"), 1_000_000, 1_000_000);
      // The mount point is reached through absolute and relative links that climb above "/".
      Deno.symlinkSync("/srv/../../../srv/data", join(rootfs, "vol"));
      Deno.symlinkSync(`../../../..${outside}`, join(rootfs, "hostile"));

      const dest = join(base, "dest");
      await Deno.mkdir(dest);
      copyImagePath(rootfs, "/vol", dest);
      const names = [...Deno.readDirSync(dest)].map((e) => e.name).sort();
      assertEquals(names, ["escape", "owned", "sub", "suid"]);
      const owned = Deno.lstatSync(join(dest, "owned"));
      assertEquals([owned.uid, owned.gid, owned.nlink], [1000, 1001, 2]);
      assertEquals(Deno.lstatSync(join(dest, "sub/hard")).ino, owned.ino);
      assertEquals(Deno.lstatSync(join(dest, "suid")).mode! & 0o7777, 0o4755);
      assertEquals(Deno.lstatSync(join(dest, "sub")).mode! & 0o7777, 0o750);
      assertEquals(Deno.lstatSync(join(dest, "sub")).mtime?.getTime(), 1_000_000_000);
      assertEquals(Deno.readLinkSync(join(dest, "escape")), outside);
      assertOk(Deno.lstatSync(join(dest, "escape")).isSymlink);
      assertEquals(new TextDecoder().decode(lgetxattr(join(dest, "owned"), "user.tsbox")!), "1");
      // The volume's root takes the image directory's owner and mode.
      const top = Deno.statSync(dest);
      assertEquals([top.uid, top.gid, top.mode! & 0o7777], [33, 33, 0o710]);

      // A link out of the root resolves inside it: nothing of the host is copied.
      const dest2 = join(base, "dest2");
      await Deno.mkdir(dest2);
      copyImagePath(rootfs, "/hostile", dest2);
      assertEquals([...Deno.readDirSync(dest2)], []);
      // A file (not a directory) at the mount point copies nothing either.
      copyImagePath(rootfs, "/srv/data/owned", dest2);
      assertEquals([...Deno.readDirSync(dest2)], []);
    } finally {
      await Deno.remove(base, { recursive: true });
    }
  },
});
