/**
 * `tsbox cp` to and from paths under a container's volumes and bind mounts, as docker's (root):
 * a created (never started) container's `-v` targets lead to the volume's data and the bind's
 * host directory, a read-only mount refuses writes, a symlink a container left in a volume does
 * not lead to the host, and a running container is reached through its own mounts.
 */
import { join } from "node:path";
import { assertEquals, assertMatch, assertOk } from "./assert.ts";
import { sharedBusyboxRoot } from "./busybox_store.ts";
import { tsbox } from "./cli.ts";

const isRoot = Deno.uid() === 0;

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

Deno.test({
  name: "cp into and out of volumes and bind mounts of created and running containers",
  ignore: !isRoot,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const root = await sharedBusyboxRoot();
    const t = (args: string[]) => tsbox(args, { root });
    const ok = async (args: string[]) => {
      const r = await t(args);
      assertEquals(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
      return r.stdout;
    };
    const work = await Deno.makeTempDir({ prefix: "tsbox-cpm-" });
    const bind = join(work, "bind");
    const ro = join(work, "ro");
    const src = join(work, "src");
    const marker = `/etc/tsbox-cp-escape-${crypto.randomUUID().slice(0, 8)}`;
    try {
      await Deno.mkdir(bind);
      await Deno.mkdir(ro);
      await Deno.mkdir(join(src, "tree"), { recursive: true });
      await Deno.writeTextFile(join(src, "file.txt"), "hello volume\n");
      await Deno.writeTextFile(join(src, "tree", "leaf"), "leaf\n");
      await ok(["volume", "create", "t-cpvol"]);
      const data = (await ok(["volume", "inspect", "-f", "{{.Mountpoint}}", "t-cpvol"])).trim();
      await ok([
        "create",
        "--name",
        "t-cp1",
        "-v",
        "t-cpvol:/tmp/volume",
        "-v",
        `${bind}:/mnt/bind`,
        "-v",
        `${ro}:/mnt/ro:ro`,
        "busybox",
        "true",
      ]);

      // Into the volume (the mount point itself, and a new name under it).
      await ok(["cp", join(src, "file.txt"), "t-cp1:/tmp/volume"]);
      assertEquals(await Deno.readTextFile(join(data, "file.txt")), "hello volume\n");
      await ok(["cp", join(src, "file.txt"), "t-cp1:/tmp/volume/renamed.txt"]);
      assertEquals(await Deno.readTextFile(join(data, "renamed.txt")), "hello volume\n");
      // A directory into the bind mount.
      await ok(["cp", join(src, "tree"), "t-cp1:/mnt/bind/"]);
      assertEquals(await Deno.readTextFile(join(bind, "tree", "leaf")), "leaf\n");
      // Out of the volume and the bind.
      await ok(["cp", "t-cp1:/tmp/volume/renamed.txt", join(work, "out.txt")]);
      assertEquals(await Deno.readTextFile(join(work, "out.txt")), "hello volume\n");
      await ok(["cp", "t-cp1:/mnt/bind/tree", join(work, "tree-out")]);
      assertEquals(await Deno.readTextFile(join(work, "tree-out", "leaf")), "leaf\n");

      // A read-only mount refuses, and nothing is written there.
      const refused = await t(["cp", join(src, "file.txt"), "t-cp1:/mnt/ro/"]);
      assertEquals(refused.code, 125);
      assertMatch(refused.stderr, /read-only/i);
      assertEquals([...Deno.readDirSync(ro)].length, 0);

      // A symlink in the volume (as a container could leave) resolves inside the volume.
      await Deno.symlink("/etc", join(data, "escape"));
      const escape = await t([
        "cp",
        join(src, "file.txt"),
        `t-cp1:/tmp/volume/escape/${marker.slice(5)}`,
      ]);
      // Resolved in the container (its own /etc, as docker's) or refused: never the host's.
      assertOk(!(await exists(marker)), `${marker} was written on the host (${escape.stderr})`);

      // The container sees what was copied.
      assertEquals(
        await ok(["run", "--rm", "-v", "t-cpvol:/v", "busybox", "cat", "/v/file.txt"]),
        "hello volume\n",
      );

      // A running container: through its own mounts.
      await ok([
        "run",
        "-d",
        "--name",
        "t-cp2",
        "-v",
        "t-cpvol:/tmp/volume",
        "busybox",
        "sleep",
        "600",
      ]);
      await ok(["cp", join(src, "file.txt"), "t-cp2:/tmp/volume/live.txt"]);
      assertEquals(await Deno.readTextFile(join(data, "live.txt")), "hello volume\n");
      assertEquals(await ok(["exec", "t-cp2", "cat", "/tmp/volume/live.txt"]), "hello volume\n");
    } finally {
      await t(["rm", "-f", "t-cp1", "t-cp2"]);
      await t(["volume", "rm", "t-cpvol"]);
      await Deno.remove(marker).catch(() => {});
      await Deno.remove(work, { recursive: true });
    }
  },
});
