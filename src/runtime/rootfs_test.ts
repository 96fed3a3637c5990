import { join } from "node:path";
import { assertEquals, assertOk, assertThrows } from "../../tests/assert.ts";
import {
  ensureMountTarget,
  mountOverlay,
  resolveInRoot,
  RootfsPathError,
  unmountRootfs,
} from "./rootfs.ts";

async function tree(): Promise<string> {
  const root = await Deno.makeTempDir();
  await Deno.mkdir(join(root, "tmp"));
  await Deno.mkdir(join(root, "usr/lib"), { recursive: true });
  await Deno.symlink("/tmp", join(root, "etc")); // absolute: must stay inside
  await Deno.symlink("../../..", join(root, "usr/lib/up")); // climbs: clamped at the root
  await Deno.symlink("/", join(root, "proc"));
  await Deno.symlink("loop2", join(root, "loop1"));
  await Deno.symlink("loop1", join(root, "loop2"));
  return root;
}

Deno.test("symlinks resolve inside the rootfs, never onto the host", async () => {
  const root = await tree();
  try {
    assertEquals(resolveInRoot(root, "/etc/hostname"), `${root}/tmp/hostname`);
    assertEquals(resolveInRoot(root, "/usr/lib/up/etc/passwd"), `${root}/tmp/passwd`);
    assertEquals(resolveInRoot(root, "/../../etc"), `${root}/tmp`);
    assertEquals(resolveInRoot(root, "/proc"), root);
    assertThrows(() => resolveInRoot(root, "/loop1/x"), RootfsPathError);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("mount targets are created inside the rootfs", async () => {
  const root = await tree();
  try {
    const t = ensureMountTarget(root, "/etc/hosts", "file");
    assertEquals(t, `${root}/tmp/hosts`);
    assertOk(Deno.statSync(t).isFile);
    assertEquals(ensureMountTarget(root, "/etc/a/b", "dir"), `${root}/tmp/a/b`);
    assertOk(Deno.statSync(`${root}/tmp/a/b`).isDirectory);
    assertThrows(() => ensureMountTarget(root, "/etc/hosts", "dir"), RootfsPathError);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test({
  name: "an overlay of 150 layers mounts through short links (root)",
  ignore: Deno.uid() !== 0,
  fn: async () => {
    const base = await Deno.makeTempDir({ prefix: "tsbox-layers-with-a-long-directory-name-" });
    try {
      const links = join(base, "l");
      await Deno.mkdir(links);
      const lower: string[] = [];
      for (let i = 0; i < 150; i++) {
        const dir = join(base, "layers", `${"f".repeat(56)}${String(i).padStart(8, "0")}`);
        await Deno.mkdir(dir, { recursive: true });
        await Deno.writeTextFile(join(dir, `file${i}`), `${i}`);
        await Deno.writeTextFile(join(dir, "top"), `${i}`);
        const short = `S${String(i).padStart(9, "0")}`;
        await Deno.symlink(`../layers/${dir.split("/").pop()}`, join(links, short));
        lower.push(short);
      }
      for (const d of ["upper", "work", "rootfs"]) await Deno.mkdir(join(base, d));
      const target = join(base, "rootfs");
      mountOverlay({
        lowerBase: links,
        lower: lower.reverse(),
        upper: join(base, "upper"),
        work: join(base, "work"),
        target,
      });
      try {
        assertEquals(await Deno.readTextFile(join(target, "file0")), "0");
        assertEquals(await Deno.readTextFile(join(target, "file149")), "149");
        assertEquals(await Deno.readTextFile(join(target, "top")), "149");
      } finally {
        assertOk(unmountRootfs(target));
      }
    } finally {
      await Deno.remove(base, { recursive: true });
    }
  },
});
