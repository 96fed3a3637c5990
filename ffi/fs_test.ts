import { assertEquals, assertOk, assertThrows } from "../tests/assert.ts";
import { SyscallError } from "./errors.ts";
import {
  AT_EMPTY_PATH,
  AT_FDCWD,
  AT_REMOVEDIR,
  AT_SYMLINK_NOFOLLOW,
  close,
  fchmod,
  fchmodat,
  fchownat,
  fsetxattr,
  fstatat,
  futimens,
  lgetxattr,
  linkat,
  llistxattr,
  lsetxattr,
  makedev,
  mkdirat,
  mknodat,
  O_CLOEXEC,
  O_CREAT,
  O_DIRECTORY,
  O_EXCL,
  O_NOFOLLOW,
  O_PATH,
  O_RDONLY,
  O_WRONLY,
  openat,
  openat2,
  readlinkat,
  renameat,
  RESOLVE_BENEATH,
  RESOLVE_IN_ROOT,
  RESOLVE_NO_MAGICLINKS,
  S_IFCHR,
  S_IFIFO,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  symlinkat,
  unlinkat,
  utimensat,
  writeAll,
} from "./fs.ts";

const isRoot = Deno.uid() === 0;

async function withDir(fn: (dir: string, fd: number) => void | Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "tsbox-fs-" });
  const fd = openat(AT_FDCWD, dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  try {
    await fn(dir, fd);
  } finally {
    close(fd);
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("openat2 RESOLVE_IN_ROOT keeps absolute symlinks and .. inside the root", () =>
  withDir(async (dir, root) => {
    mkdirat(root, "etc", 0o755);
    await Deno.writeTextFile(`${dir}/etc/passwd`, "inside\n");
    symlinkat("/etc", root, "link");
    symlinkat("../../../../etc/passwd", root, "up");
    for (const path of ["link/passwd", "up", "/etc/passwd", "../../etc/passwd"]) {
      const fd = openat2(root, path, O_RDONLY | O_CLOEXEC, 0, RESOLVE_IN_ROOT);
      const st = fstatat(fd, "", AT_EMPTY_PATH);
      close(fd);
      assertEquals(st.ino, fstatat(root, "etc/passwd").ino, path);
    }
  }));

Deno.test("openat2 RESOLVE_BENEATH refuses escapes with EXDEV", () =>
  withDir((_dir, root) => {
    symlinkat("/etc", root, "link");
    const err = assertThrows(
      () => openat2(root, "link/passwd", O_RDONLY, 0, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS),
      SyscallError,
    );
    assertEquals(err.code, "EXDEV");
    assertEquals(err.call, "openat2");
    assertThrows(() => openat2(root, "../x", O_RDONLY, 0, RESOLVE_BENEATH), SyscallError, "EXDEV");
  }));

Deno.test("create, write in chunks, chmod, times and stat a file relative to a dir fd", () =>
  withDir(async (dir, root) => {
    const fd = openat(root, "f", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600);
    const big = new Uint8Array(3 << 20).map((_, i) => i & 0xff);
    writeAll(fd, big.subarray(0, 1000));
    writeAll(fd, big.subarray(1000));
    fchmod(fd, 0o4750);
    futimens(fd, { sec: 1000, nsec: 5 }, { sec: 1234567890, nsec: 123456789 });
    close(fd);
    const data = await Deno.readFile(`${dir}/f`);
    assertEquals(data.length, big.length);
    assertOk(data.every((b, i) => b === big[i]));
    const st = fstatat(root, "f", AT_SYMLINK_NOFOLLOW);
    assertEquals(st.mode, S_IFREG | 0o4750);
    assertEquals(st.size, big.length);
    assertEquals(st.mtime, { sec: 1234567890, nsec: 123456789 });
    assertEquals((await Deno.lstat(`${dir}/f`)).mtime?.getTime(), 1234567890123);
    // O_EXCL refuses an existing name, including a symlink, so nothing is written through it.
    symlinkat("/etc/passwd", root, "s");
    assertThrows(
      () => openat(root, "s", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600),
      SyscallError,
      "EEXIST",
    );
  }));

Deno.test("symlinks: readlinkat, times and chmod without following", () =>
  withDir(async (dir, root) => {
    symlinkat("x".repeat(300), root, "long");
    assertEquals(readlinkat(root, "long"), "x".repeat(300));
    await Deno.writeTextFile(`${dir}/target`, "t");
    symlinkat("target", root, "s");
    utimensat(root, "s", { sec: 7, nsec: 0 }, { sec: 42, nsec: 0 }, AT_SYMLINK_NOFOLLOW);
    assertEquals(fstatat(root, "s", AT_SYMLINK_NOFOLLOW).mtime.sec, 42);
    assertOk(fstatat(root, "target").mtime.sec !== 42);
    const err = assertThrows(() => fchmodat(root, "s", 0o600, AT_SYMLINK_NOFOLLOW), SyscallError);
    assertOk(["EOPNOTSUPP", "ENOTSUP"].includes(err.code), err.code);
    assertEquals(fstatat(root, "s", AT_SYMLINK_NOFOLLOW).mode & S_IFMT, S_IFLNK);
  }));

Deno.test("mknodat fifo, fchmodat, linkat, renameat, unlinkat", () =>
  withDir((_dir, root) => {
    mknodat(root, "p", S_IFIFO | 0o600);
    fchmodat(root, "p", 0o1644, AT_SYMLINK_NOFOLLOW);
    assertEquals(fstatat(root, "p", AT_SYMLINK_NOFOLLOW).mode, S_IFIFO | 0o1644);
    linkat(root, "p", root, "q");
    assertEquals(fstatat(root, "q", AT_SYMLINK_NOFOLLOW).nlink, 2);
    renameat(root, "q", root, "r");
    assertEquals(fstatat(root, "r", AT_SYMLINK_NOFOLLOW).ino, fstatat(root, "p").ino);
    unlinkat(root, "r");
    assertThrows(() => fstatat(root, "r", AT_SYMLINK_NOFOLLOW), SyscallError, "ENOENT");
    mkdirat(root, "d", 0o700);
    unlinkat(root, "d", AT_REMOVEDIR);
    assertThrows(() => unlinkat(root, "missing"), SyscallError, "unlinkat");
  }));

Deno.test({
  name: "mknodat char device 0/0 and fchownat (root)",
  ignore: !isRoot,
  fn: () =>
    withDir((_dir, root) => {
      mknodat(root, "wh", S_IFCHR, makedev(0, 0));
      mknodat(root, "null", S_IFCHR | 0o666, makedev(1, 3));
      fchownat(root, "null", 12, 34, AT_SYMLINK_NOFOLLOW);
      const st = fstatat(root, "null", AT_SYMLINK_NOFOLLOW);
      assertEquals([st.mode & S_IFMT, st.rdevMajor, st.rdevMinor], [S_IFCHR, 1, 3]);
      assertEquals([st.uid, st.gid], [12, 34]);
      const wh = fstatat(root, "wh", AT_SYMLINK_NOFOLLOW);
      assertEquals([wh.mode & S_IFMT, wh.rdevMajor, wh.rdevMinor], [S_IFCHR, 0, 0]);
    }),
});

Deno.test("makedev matches glibc's encoding (checked against python's os.makedev)", async () => {
  const pairs: [number, number][] = [[1, 3], [259, 65536], [0x1234, 0x5678], [4095, 255]];
  const script = `import os\nfor a, b in ${JSON.stringify(pairs)}: print(os.makedev(a, b))`;
  const out = await new Deno.Command("python3", { args: ["-c", script] }).output();
  const expected = new TextDecoder().decode(out.stdout).trim().split("\n").map(BigInt);
  assertEquals(pairs.map(([a, b]) => makedev(a, b)), expected);
});

Deno.test("xattrs: fsetxattr, lsetxattr, lgetxattr, llistxattr", () =>
  withDir(async (dir, root) => {
    await Deno.writeTextFile(`${dir}/f`, "");
    const fd = openat(root, "f", O_RDONLY | O_CLOEXEC);
    fsetxattr(fd, "user.bin", new Uint8Array([0, 1, 255]));
    close(fd);
    lsetxattr(`${dir}/f`, "user.long", new Uint8Array(1000).fill(7));
    assertEquals(lgetxattr(`${dir}/f`, "user.bin"), new Uint8Array([0, 1, 255]));
    assertEquals(lgetxattr(`${dir}/f`, "user.long")?.length, 1000);
    assertEquals(lgetxattr(`${dir}/f`, "user.none"), null);
    assertEquals(llistxattr(`${dir}/f`).sort(), ["user.bin", "user.long"]);
  }));
