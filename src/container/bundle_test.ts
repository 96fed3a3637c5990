import { join } from "node:path";
import { assertEquals, assertOk } from "../../tests/assert.ts";
import { nofileCeiling, readImageFile, specUser } from "./bundle.ts";
import type { RunConfig } from "./state.ts";

Deno.test("readImageFile: the top-most layer wins; whiteouts, symlinks and odd parents hide", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const layer = (name: string) => join(dir, name);
    for (const l of ["a", "b", "c", "d"]) {
      await Deno.mkdir(join(layer(l), "etc"), { recursive: true });
    }
    await Deno.writeTextFile(join(layer("a"), "etc/passwd"), "bottom");
    await Deno.writeTextFile(join(layer("b"), "etc/passwd"), "middle");
    assertEquals(readImageFile([layer("a"), layer("b"), layer("c")], "etc/passwd"), "middle");
    assertEquals(readImageFile([layer("a")], "etc/group"), "");
    // A symlink is never followed: a hostile layer cannot make create read a host file.
    await Deno.symlink("/etc/hostname", join(layer("d"), "etc/passwd"));
    assertEquals(readImageFile([layer("a"), layer("d")], "etc/passwd"), "");
    if (Deno.uid() === 0) {
      // overlayfs' whiteout (a 0/0 character device) deletes the lower file.
      await Deno.mkdir(join(layer("e"), "etc"), { recursive: true });
      const made = await new Deno.Command("mknod", {
        args: [join(layer("e"), "etc/passwd"), "c", "0", "0"],
      }).output();
      assertOk(made.success);
      assertEquals(readImageFile([layer("a"), layer("e")], "etc/passwd"), "");
    }
    // etc replaced by a file in a higher layer hides the lower etc/passwd.
    await Deno.remove(join(layer("c"), "etc"));
    await Deno.writeTextFile(join(layer("c"), "etc"), "");
    assertEquals(readImageFile([layer("a"), layer("c")], "etc/passwd"), "");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("nofileCeiling reads the hard limit from /proc/self/limits text", () => {
  const text = "Limit                     Soft Limit           Hard Limit           Units\n" +
    "Max open files            1024                 20000                files\n";
  assertEquals(nofileCeiling(text), 20000);
  assertEquals(nofileCeiling("Max open files  unlimited  unlimited  files\n"), 1048576);
  assertOk(nofileCeiling() > 0);
});

Deno.test("specUser: resolved ids and groups, or the start's error kept", () => {
  const config = { user: "app", groupAdd: ["9"] } as Partial<RunConfig> as RunConfig;
  const passwd = "app:x:1000:1000::/home/app:/bin/sh\n";
  const group = "extra:x:2000:app\n";
  const u = specUser(config, passwd, group);
  assertOk(u.resolved);
  assertEquals([u.user.uid, u.user.gid, u.user.groups, u.extraGids], [1000, 1000, [1000, 2000], [
    9,
  ]]);
  const missing = specUser({ ...config, user: "ghost" }, passwd, group);
  assertOk(!missing.resolved);
  assertEquals(missing.error, "unable to find user ghost: no matching entries in passwd file");
});
