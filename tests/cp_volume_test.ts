/**
 * `cp` into and out of a path under a volume or bind mount of a container (root), as docker's:
 * running (through the container's mount namespace) and stopped (into the volume's or the bind
 * source's host directory, since nothing is mounted then).
 */
import { sharedBusyboxRoot } from "./busybox_store.ts";
import { assertEquals } from "./assert.ts";
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

rootTest("cp into a volume and a bind mount of a running and a stopped container", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tsbox-cpvol-" });
  const bind = `${dir}/bind`;
  await Deno.mkdir(bind);
  await Deno.writeTextFile(`${dir}/file`, "copied\n");
  await ok([
    "run",
    "-d",
    "--name",
    "t-c21-cpvol",
    "-v",
    "t-c21-cpvol:/tmp/volume",
    "-v",
    `${bind}:/mnt/bind`,
    "busybox",
    "sleep",
    "1000",
  ]);
  try {
    await ok(["cp", `${dir}/file`, "t-c21-cpvol:/tmp/volume/"]);
    await ok(["cp", `${dir}/file`, "t-c21-cpvol:/mnt/bind/b"]);
    assertEquals(
      await ok(["exec", "t-c21-cpvol", "cat", "/tmp/volume/file", "/mnt/bind/b"]),
      "copied\ncopied",
    );
    assertEquals(await Deno.readTextFile(`${bind}/b`), "copied\n");
    await ok(["stop", "-t", "0", "t-c21-cpvol"]);
    await ok(["cp", `${dir}/file`, "t-c21-cpvol:/tmp/volume/stopped"]);
    await ok(["cp", `${dir}/file`, "t-c21-cpvol:/mnt/bind/s"]);
    await ok(["cp", "t-c21-cpvol:/tmp/volume/file", `${dir}/out`]);
    assertEquals(await Deno.readTextFile(`${dir}/out`), "copied\n");
    assertEquals(await Deno.readTextFile(`${bind}/s`), "copied\n");
    await ok(["start", "t-c21-cpvol"]);
    assertEquals(await ok(["exec", "t-c21-cpvol", "cat", "/tmp/volume/stopped"]), "copied");
    // Never started: the volume's mount point is made as its start would make it.
    await ok(["create", "--name", "t-c21-cpnew", "-v", "t-c21-cpvol:/srv/data", "busybox", "true"]);
    await ok(["cp", `${dir}/file`, "t-c21-cpnew:/srv/data/new"]);
    assertEquals(await ok(["exec", "t-c21-cpvol", "cat", "/tmp/volume/new"]), "copied");
  } finally {
    await cli(["rm", "-f", "-v", "t-c21-cpvol", "t-c21-cpnew"]);
    await cli(["volume", "rm", "t-c21-cpvol"]);
    await Deno.remove(dir, { recursive: true });
  }
});
