import { assertEquals, assertOk, assertThrows } from "../tests/assert.ts";
import { SyscallError } from "./errors.ts";
import { statvfs } from "./statvfs.ts";

/** `stat -f` (coreutils) of the same filesystem: block size, blocks, free, available, inodes. */
async function statF(path: string): Promise<number[]> {
  const out = await new Deno.Command("stat", {
    args: ["-f", "-c", "%S %b %f %a %c", path],
    stdout: "piped",
  }).output();
  return new TextDecoder().decode(out.stdout).trim().split(" ").map(Number);
}

Deno.test("statvfs reports what coreutils' stat -f reports", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const s = statvfs(dir);
    const [bsize, blocks, , , inodes] = await statF(dir);
    assertEquals(s.totalBytes, blocks * bsize);
    assertEquals(s.totalInodes, inodes);
    assertOk(s.availableBytes > 0 && s.availableBytes <= s.freeBytes, JSON.stringify(s));
    assertOk(s.freeBytes <= s.totalBytes, JSON.stringify(s));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("statvfs sees a file written on a tmpfs of its own (root)", async () => {
  const dir = await Deno.makeTempDir();
  const mount = await new Deno.Command("mount", {
    args: ["-t", "tmpfs", "-o", "size=8m", "tmpfs", dir],
  }).output();
  assertOk(mount.success, new TextDecoder().decode(mount.stderr));
  try {
    const before = statvfs(dir);
    assertEquals(before.totalBytes, 8 * 1024 * 1024);
    await Deno.writeFile(`${dir}/f`, new Uint8Array(4 * 1024 * 1024).fill(1));
    const after = statvfs(dir);
    assertEquals(before.availableBytes - after.availableBytes, 4 * 1024 * 1024);
    assertEquals(before.availableInodes - after.availableInodes, 1);
  } finally {
    await new Deno.Command("umount", { args: [dir] }).output();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("statvfs of a missing path throws SyscallError ENOENT naming it", () => {
  const err = assertThrows(() => statvfs("/nonexistent/tsbox-statvfs"), SyscallError);
  assertEquals(err.code, "ENOENT");
  assertOk(err.message.includes("/nonexistent/tsbox-statvfs"), err.message);
});
