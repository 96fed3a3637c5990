/**
 * `volume create -o` (the local driver's type, device and o) through the real command line
 * (root): a tmpfs volume with a size limit that containers share and that is bounded; a bind
 * of a host directory whose files survive `volume rm`; docker's errors for unknown options.
 */
import { join } from "node:path";
import { assertEquals, assertOk, assertStringIncludes } from "./assert.ts";
import { sharedBusyboxRoot } from "./busybox_store.ts";
import { tsbox } from "./cli.ts";

const isRoot = Deno.uid() === 0;

function mountedAt(path: string): string | undefined {
  for (const line of Deno.readTextFileSync("/proc/self/mountinfo").split("\n")) {
    const f = line.split(" ");
    if (f[4] === path) return f[f.indexOf("-") + 1];
  }
  return undefined;
}

Deno.test({
  name: "volume create -o: tmpfs with a size, a bind of a host dir; rm unmounts, keeps host files",
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
    const host = await Deno.makeTempDir({ prefix: "tsbox-volopt-" });
    try {
      await ok([
        "volume",
        "create",
        "-o",
        "type=tmpfs",
        "-o",
        "device=tmpfs",
        "-o",
        "o=size=1m",
        "t-tmpvol",
      ]);
      assertEquals(
        JSON.parse(await ok(["volume", "inspect", "-f", "{{json .Options}}", "t-tmpvol"])),
        { device: "tmpfs", o: "size=1m", type: "tmpfs" },
      );
      const data = (await ok(["volume", "inspect", "-f", "{{.Mountpoint}}", "t-tmpvol"])).trim();
      // Containers share it, and its size is bounded.
      await ok([
        "run",
        "--rm",
        "-v",
        "t-tmpvol:/data",
        "busybox",
        "sh",
        "-c",
        "echo kept > /data/f",
      ]);
      assertEquals(
        await ok(["run", "--rm", "-v", "t-tmpvol:/data", "busybox", "cat", "/data/f"]),
        "kept\n",
      );
      const df = await ok(["run", "--rm", "-v", "t-tmpvol:/data", "busybox", "df", "-k", "/data"]);
      assertEquals(df.trim().split("\n")[1].split(/\s+/)[1], "1024", df);
      const big = await t([
        "run",
        "--rm",
        "-v",
        "t-tmpvol:/data",
        "busybox",
        "dd",
        "if=/dev/zero",
        "of=/data/big",
        "bs=1024",
        "count=2048",
      ]);
      assertOk(big.code !== 0, "2 MiB fit into a 1 MiB tmpfs volume");
      await ok(["volume", "rm", "t-tmpvol"]);
      assertEquals(mountedAt(data), undefined);

      // A bind of a host directory: its files are the host's, and stay after volume rm.
      await ok([
        "volume",
        "create",
        "-o",
        "type=none",
        "-o",
        "o=bind",
        "-o",
        `device=${host}`,
        "t-bindvol",
      ]);
      await ok([
        "run",
        "--rm",
        "-v",
        "t-bindvol:/data",
        "busybox",
        "sh",
        "-c",
        "echo host > /data/x",
      ]);
      assertEquals(await Deno.readTextFile(join(host, "x")), "host\n");
      await ok(["volume", "rm", "t-bindvol"]);
      assertEquals(await Deno.readTextFile(join(host, "x")), "host\n");

      const bad = await t(["volume", "create", "-o", "foo=bar", "t-badvol"]);
      assertEquals(bad.code, 125);
      assertStringIncludes(bad.stderr, 'invalid option key: "foo"');
    } finally {
      for (const v of ["t-tmpvol", "t-bindvol", "t-badvol"]) {
        await t(["volume", "rm", "-f", v]);
      }
      await Deno.remove(host, { recursive: true });
    }
  },
});
