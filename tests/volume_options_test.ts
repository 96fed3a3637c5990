/**
 * `volume create -o` (root): the local driver's options as docker's. A tmpfs volume is a tmpfs
 * of the given size in the container (a write past it fails), a `type=none,o=bind` volume is
 * the host directory (files go both ways), removing it leaves the host directory's files, and
 * bad options are refused with docker's messages.
 */
import { sharedBusyboxRoot } from "./busybox_store.ts";
import { assertEquals, assertStringIncludes } from "./assert.ts";
import { tsbox } from "./cli.ts";

const isRoot = Deno.uid() === 0;

function rootTest(name: string, fn: () => Promise<void>) {
  Deno.test({ name, ignore: !isRoot, sanitizeResources: false, sanitizeOps: false, fn });
}

async function cli(args: string[]) {
  return await tsbox(args, { root: await sharedBusyboxRoot() });
}

async function ok(args: string[]): Promise<string> {
  const r = await cli(args);
  assertEquals(r.code, 0, `tsbox ${args.join(" ")}: ${r.stderr}`);
  return r.stdout.trim();
}

rootTest("a tmpfs volume is a tmpfs of its size in the container", async () => {
  const opts = ["-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=1m,mode=0770"];
  assertEquals(await ok(["volume", "create", ...opts, "t-c21-tmpfs"]), "t-c21-tmpfs");
  try {
    assertEquals(
      await ok(["volume", "inspect", "-f", "{{json .Options}}", "t-c21-tmpfs"]),
      '{"device":"tmpfs","o":"size=1m,mode=0770","type":"tmpfs"}',
    );
    const line = await ok([
      "run",
      "--rm",
      "-v",
      "t-c21-tmpfs:/data",
      "busybox",
      "grep",
      " /data ",
      "/proc/self/mounts",
    ]);
    assertStringIncludes(line, "tmpfs /data tmpfs");
    assertStringIncludes(line, "size=1024k");
    assertStringIncludes(line, "mode=770");
    const full = await cli([
      "run",
      "--rm",
      "-v",
      "t-c21-tmpfs:/data",
      "busybox",
      "dd",
      "if=/dev/zero",
      "of=/data/big",
      "bs=1024",
      "count=2048",
    ]);
    assertEquals(full.code, 1, full.stderr);
    assertStringIncludes(full.stderr, "No space left on device");
  } finally {
    await cli(["volume", "rm", "t-c21-tmpfs"]);
  }
  assertEquals((await cli(["volume", "inspect", "t-c21-tmpfs"])).code, 1);
});

rootTest("a type=none,o=bind volume is the host directory; rm leaves its files", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tsbox-bindvol-" });
  await Deno.writeTextFile(`${dir}/from-host`, "host\n");
  try {
    await ok([
      "volume",
      "create",
      "-o",
      "type=none",
      "-o",
      "o=bind",
      "-o",
      `device=${dir}`,
      "t-c21-bindvol",
    ]);
    assertEquals(
      await ok([
        "run",
        "--rm",
        "-v",
        "t-c21-bindvol:/data",
        "busybox",
        "sh",
        "-c",
        "cat /data/from-host; echo ctr > /data/from-ctr",
      ]),
      "host",
    );
    assertEquals(await Deno.readTextFile(`${dir}/from-ctr`), "ctr\n");
    await ok(["volume", "rm", "t-c21-bindvol"]);
    // The volume is gone; the host directory it was bound to keeps every file.
    assertEquals(await Deno.readTextFile(`${dir}/from-host`), "host\n");
    assertEquals(await Deno.readTextFile(`${dir}/from-ctr`), "ctr\n");
  } finally {
    await cli(["volume", "rm", "-f", "t-c21-bindvol"]);
    await Deno.remove(dir, { recursive: true });
  }
});

rootTest("bad volume options are refused with docker's messages", async () => {
  for (
    const [opts, message] of [
      [["-o", "bogus=1"], 'invalid option key: "bogus"'],
      [["-o", "type=tmpfs"], 'missing required option: "device"'],
      [["-o", "device=/dev/null"], 'missing required option: "type"'],
    ] as const
  ) {
    const r = await cli(["volume", "create", ...opts, "t-c21-badopts"]);
    assertEquals(r.code !== 0, true);
    assertStringIncludes(r.stderr, message);
  }
  assertEquals((await cli(["volume", "inspect", "t-c21-badopts"])).code, 1);
});
