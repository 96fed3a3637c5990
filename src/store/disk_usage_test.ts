import { assertEquals } from "../../tests/assert.ts";
import { join } from "../path.ts";
import { diskUsage } from "./disk_usage.ts";

async function du(path: string): Promise<number> {
  const out = await new Deno.Command("du", { args: ["-s", "-x", "-B1", path], stdout: "piped" })
    .output();
  return Number(new TextDecoder().decode(out.stdout).split(/\s/)[0]);
}

Deno.test("diskUsage counts what du counts: blocks, directories, long symlinks, hard links once", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tsbox-du-" });
  try {
    await Deno.mkdir(join(dir, "a/b"), { recursive: true });
    await Deno.writeFile(join(dir, "a/b/big"), new Uint8Array(300_000).fill(7));
    await Deno.writeTextFile(join(dir, "a/small"), "x");
    await Deno.link(join(dir, "a/b/big"), join(dir, "a/hard"));
    await Deno.symlink("../" + "l".repeat(100), join(dir, "a/long-link"));
    await Deno.symlink("short", join(dir, "a/short-link"));
    assertEquals(await diskUsage(dir), await du(dir));
    assertEquals(await diskUsage(join(dir, "a/small")), await du(join(dir, "a/small")));
    assertEquals(await diskUsage(join(dir, "missing")), 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
