/**
 * `cp` with `-` (root, real containers): a tar on stdin extracted into a container directory
 * (owners as the archive says, as docker's daemon extracts it), a tar of a container path on
 * stdout, `-a` giving copies the container user's ids, and hostile archives (a symlink entry
 * followed by an entry below it, `..` names) refused without touching the host.
 */
import { join } from "node:path";
import { sharedBusyboxRoot } from "./busybox_store.ts";
import { assertEquals, assertOk, assertStringIncludes } from "./assert.ts";
import { tsbox } from "./cli.ts";

const isRoot = Deno.uid() === 0;
const MKTAR = new URL("./fixtures/mktar.py", import.meta.url).pathname;

function rootTest(name: string, fn: () => Promise<void>) {
  Deno.test({ name, ignore: !isRoot, sanitizeResources: false, sanitizeOps: false, fn });
}

async function cli(args: string[], stdin?: Uint8Array) {
  return await tsbox(args, { root: await sharedBusyboxRoot(), ...(stdin ? { stdin } : {}) });
}

async function ok(args: string[], stdin?: Uint8Array): Promise<string> {
  const r = await cli(args, stdin);
  assertEquals(r.code, 0, `tsbox ${args.join(" ")}: ${r.stderr}`);
  return r.stdout.trim();
}

/** A tar made by tests/fixtures/mktar.py from `entries`. */
async function mktar(dir: string, entries: unknown[]): Promise<Uint8Array> {
  await Deno.writeTextFile(join(dir, "spec.json"), JSON.stringify(entries));
  const out = await new Deno.Command("python3", {
    args: [MKTAR, join(dir, "spec.json"), join(dir, "out.tar")],
  }).output();
  assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
  return await Deno.readFile(join(dir, "out.tar"));
}

async function sleeper(name: string, flags: string[] = []): Promise<void> {
  await ok(["run", "-d", "--name", name, ...flags, "busybox", "sleep", "1000"]);
}

rootTest(
  "cp - CTR:DIR extracts a tar from stdin with its owners; -a=false is accepted",
  async () => {
    const name = "t-cp-stdin";
    const dir = await Deno.makeTempDir();
    try {
      await sleeper(name);
      const tar = await mktar(dir, [
        { path: "d", type: "dir", mode: 0o750, uid: 1042, gid: 1043 },
        { path: "d/f", type: "file", mode: 0o640, uid: 1042, gid: 1043, text: "from a tar\n" },
        { path: "d/l", type: "symlink", target: "f", uid: 7, gid: 8 },
        { path: "d/h", type: "hardlink", target: "d/f" },
      ]);
      assertEquals(await ok(["cp", "-", `${name}:/tmp`], tar), "");
      assertEquals(
        await ok(["exec", name, "stat", "-c", "%n %u:%g %a", "/tmp/d", "/tmp/d/f"]),
        "/tmp/d 1042:1043 750\n/tmp/d/f 1042:1043 640",
      );
      assertEquals(await ok(["exec", name, "cat", "/tmp/d/l"]), "from a tar");
      assertEquals(await ok(["exec", name, "readlink", "/tmp/d/l"]), "f");
      assertEquals(await ok(["exec", name, "cat", "/tmp/d/h"]), "from a tar");
      // gzip-compressed, as docker's daemon takes it.
      await ok(["exec", name, "rm", "-r", "/tmp/d"]);
      const gz = await new Deno.Command("gzip", { args: ["-c", join(dir, "out.tar")] }).output();
      await ok(["cp", "-", `${name}:/tmp`], gz.stdout);
      assertEquals(await ok(["exec", name, "cat", "/tmp/d/f"]), "from a tar");
      // Not a tar at all.
      const junk = await cli(["cp", "-", `${name}:/tmp`], new TextEncoder().encode("just text\n"));
      assertEquals(junk.code, 125, junk.stderr);
      assertStringIncludes(junk.stderr, "source must be a (compressed) tar archive");
      // pflag's spelling of the default.
      await ok(["exec", name, "rm", "-r", "/tmp/d"]);
      await ok(["cp", "-a=false", "-", `${name}:/tmp/`], tar);
      assertEquals(await ok(["exec", name, "stat", "-c", "%u:%g", "/tmp/d/f"]), "1042:1043");
      // The destination must be a directory, as docker's.
      const r = await cli(["cp", "-", `${name}:/tmp/d/f`], tar);
      assertEquals(r.code, 125, r.stderr);
      assertStringIncludes(r.stderr, `destination "${name}:/tmp/d/f" must be a directory`);
    } finally {
      await cli(["rm", "-f", name]);
      await Deno.remove(dir, { recursive: true });
    }
  },
);

rootTest("cp - refuses an archive that would write through its own symlink or above", async () => {
  const name = "t-cp-hostile";
  const dir = await Deno.makeTempDir();
  const victim = await Deno.makeTempDir({ prefix: "tsbox-cp-victim-" });
  try {
    await sleeper(name);
    const through = await mktar(dir, [
      { path: "a", type: "symlink", target: victim },
      { path: "a/pwned", type: "file", mode: 0o644, text: "escaped\n" },
    ]);
    const r = await cli(["cp", "-", `${name}:/tmp`], through);
    assertOk(r.code !== 0, "an entry below a symlink entry was extracted");
    assertStringIncludes(r.stderr, `archive entry "a/pwned" goes through the symlink a`);
    const above = await mktar(dir, [{ path: "../up", type: "file", mode: 0o644, text: "x" }]);
    const r2 = await cli(["cp", "-", `${name}:/tmp`], above);
    assertOk(r2.code !== 0, "a .. entry was extracted");
    assertStringIncludes(r2.stderr, `archive entry "../up" leaves the archive`);
    assertEquals([...Deno.readDirSync(victim)], []);
    // Nothing of either archive reached the container.
    assertEquals(await ok(["exec", name, "ls", "/tmp"]), "");
  } finally {
    await cli(["rm", "-f", name]);
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(victim, { recursive: true });
  }
});

rootTest("cp CTR:PATH - writes a tar of the path named by its last part", async () => {
  const name = "t-cp-stdout";
  const dir = await Deno.makeTempDir();
  try {
    await sleeper(name);
    await ok(["exec", name, "sh", "-c", "mkdir -p /tmp/d/e && echo one > /tmp/d/e/f"]);
    const r = await tsbox(["cp", `${name}:/tmp/d`, "-"], { root: await sharedBusyboxRoot() });
    assertEquals(r.code, 0, r.stderr);
    // The test's tsbox helper decodes stdout as text: the archive here is all ASCII.
    await Deno.writeTextFile(join(dir, "out.tar"), r.stdout);
    const list = await new Deno.Command("tar", { args: ["-tf", join(dir, "out.tar")] }).output();
    assertEquals(new TextDecoder().decode(list.stdout).trim().split("\n"), ["d/", "d/e/", "d/e/f"]);
    const cat = await new Deno.Command("tar", { args: ["-xOf", join(dir, "out.tar"), "d/e/f"] })
      .output();
    assertEquals(new TextDecoder().decode(cat.stdout), "one\n");
  } finally {
    await cli(["rm", "-f", name]);
    await Deno.remove(dir, { recursive: true });
  }
});

rootTest("cp -a gives what is copied in the container user's uid and gid", async () => {
  const name = "t-cp-archive";
  const dir = await Deno.makeTempDir();
  try {
    await sleeper(name, ["--user", "1000:1001"]);
    const file = join(dir, "hostfile");
    await Deno.writeTextFile(file, "x");
    await Deno.chown(file, 1234, 1235);
    await ok(["cp", file, `${name}:/tmp/kept`]);
    await ok(["cp", "-a", file, `${name}:/tmp/archived`]);
    await ok(["cp", "--archive=true", file, `${name}:/tmp/archived2`]);
    assertEquals(
      await ok([
        "exec",
        name,
        "stat",
        "-c",
        "%u:%g",
        "/tmp/kept",
        "/tmp/archived",
        "/tmp/archived2",
      ]),
      "1234:1235\n1000:1001\n1000:1001",
    );
  } finally {
    await cli(["rm", "-f", name]);
    await Deno.remove(dir, { recursive: true });
  }
});
