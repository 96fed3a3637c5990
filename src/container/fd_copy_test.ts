import { join } from "node:path";
import { assertEquals, assertOk, assertThrows } from "../../tests/assert.ts";
import {
  AT_FDCWD,
  AT_SYMLINK_NOFOLLOW,
  close,
  fchownat,
  lsetxattr,
  mknodat,
  O_CLOEXEC,
  O_DIRECTORY,
  O_NOFOLLOW,
  O_PATH,
  O_RDONLY,
  openat,
  S_IFIFO,
  utimensat,
} from "../../ffi/fs.ts";
import { SyscallError } from "../../ffi/errors.ts";
import { CopyConflictError, copyDirContents, copyNode } from "./fd_copy.ts";
import { listDir, nodeOf, openChild, openInRoot, reopen, withNode, xattrsOf } from "./fd_tree.ts";

const isRoot = Deno.uid() === 0;

async function withTemp(fn: (dir: string) => Promise<void> | void): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "tsbox-fdcopy-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function openDir(path: string): number {
  return openat(AT_FDCWD, path, O_PATH | O_DIRECTORY | O_CLOEXEC);
}

Deno.test("openInRoot keeps absolute links inside; listDir lists by getdents, sorted", async () => {
  await withTemp((base) => {
    const root = join(base, "root");
    Deno.mkdirSync(join(root, "etc"), { recursive: true });
    Deno.writeTextFileSync(join(root, "etc/passwd"), "inside");
    Deno.symlinkSync("/etc", join(root, "link"));
    Deno.symlinkSync("../../../../etc/passwd", join(root, "climb"));
    const fd = openDir(root);
    try {
      for (const path of ["/link/passwd", "climb", "/../../etc/passwd"]) {
        const node = nodeOf(openInRoot(fd, path, O_PATH));
        withNode(node, (n) => assertEquals(n.st.size, "inside".length, path));
      }
      const names = withNode(nodeOf(openInRoot(fd, "/", O_PATH)), (n) => listDir(n));
      assertEquals(names.map((e) => e.name), ["climb", "etc", "link"]);
    } finally {
      close(fd);
    }
  });
});

Deno.test("reopen reads a pinned file and refuses a fifo; openChild does not follow", async () => {
  await withTemp((base) => {
    Deno.writeTextFileSync(join(base, "f"), "data");
    Deno.symlinkSync(join(base, "f"), join(base, "l"));
    const dir = openDir(base);
    try {
      mknodat(dir, "p", S_IFIFO | 0o600);
      const link = openChild(dir, "l")!;
      withNode(link, (n) => {
        assertEquals(n.st.mode & 0o170000, 0o120000, "the link itself");
        assertThrows(() => reopen(n), SyscallError);
      });
      withNode(openChild(dir, "p")!, (n) => assertThrows(() => reopen(n), SyscallError));
      assertEquals(openChild(dir, "missing"), undefined);
      withNode(openChild(dir, "f")!, (n) => {
        const fd = reopen(n);
        try {
          assertEquals(Deno.readTextFileSync(`/proc/self/fd/${fd}`), "data");
        } finally {
          close(fd);
        }
      });
    } finally {
      close(dir);
    }
  });
});

Deno.test({
  name: "xattrsOf reads a symlink's own xattrs, even a dangling one's (root)",
  ignore: !isRoot,
  fn: () =>
    withTemp((base) => {
      Deno.symlinkSync("/nonexistent/target", join(base, "l"));
      lsetxattr(join(base, "l"), "trusted.tsbox", new TextEncoder().encode("v"));
      lsetxattr(join(base, "l"), "trusted.overlay.opaque", new TextEncoder().encode("y"));
      const fd = openat(AT_FDCWD, join(base, "l"), O_PATH | O_NOFOLLOW | O_CLOEXEC);
      withNode(nodeOf(fd), (n) => {
        const x = xattrsOf(n);
        assertEquals([...x.keys()], ["trusted.tsbox"], "overlayfs' own are left out");
        assertEquals(new TextDecoder().decode(x.get("trusted.tsbox")!), "v");
      });
    }),
});

Deno.test("copyNode replaces a symlink in the destination instead of writing through it", async () => {
  await withTemp((base) => {
    const outside = join(base, "outside");
    Deno.mkdirSync(join(outside, "dir"), { recursive: true });
    Deno.writeTextFileSync(join(outside, "victim"), "host");
    Deno.chmodSync(join(outside, "victim"), 0o644);
    Deno.chmodSync(join(outside, "dir"), 0o755);
    // The destination tree has links out, as a hostile container would make them.
    const dest = join(base, "dest");
    Deno.mkdirSync(join(dest, "pl"), { recursive: true });
    Deno.symlinkSync(join(outside, "victim"), join(dest, "pl/victim"));
    Deno.symlinkSync(join(outside, "dir"), join(dest, "pl/vd"));
    const src = join(base, "src");
    Deno.mkdirSync(join(src, "pl/vd"), { recursive: true });
    Deno.writeTextFileSync(join(src, "pl/victim"), "copied");
    Deno.writeTextFileSync(join(src, "pl/vd/x"), "copied");
    Deno.chmodSync(join(src, "pl/victim"), 0o777);
    Deno.chmodSync(join(src, "pl/vd"), 0o777);

    const destFd = openDir(dest);
    const srcDir = openDir(src);
    try {
      // vd (a directory) over a symlink is refused, as docker refuses it.
      withNode(openChild(srcDir, "pl")!, (n) => {
        const err = assertThrows(() => copyNode(n, destFd, "pl", "dest/pl"), CopyConflictError);
        assertOk(err.message.includes("dest/pl/vd"), err.message);
      });
      const srcPl = openDir(join(src, "pl"));
      const destPl = openDir(join(dest, "pl"));
      try {
        withNode(openChild(srcPl, "victim")!, (n) => copyNode(n, destPl, "victim", "pl/victim"));
      } finally {
        close(srcPl);
        close(destPl);
      }
    } finally {
      close(destFd);
      close(srcDir);
    }
    assertEquals(Deno.readTextFileSync(join(outside, "victim")), "host");
    assertEquals(Deno.statSync(join(outside, "victim")).mode! & 0o777, 0o644);
    assertEquals(Deno.statSync(join(outside, "dir")).mode! & 0o777, 0o755);
    assertEquals([...Deno.readDirSync(join(outside, "dir"))], []);
    assertOk(Deno.lstatSync(join(dest, "pl/victim")).isFile);
    assertEquals(Deno.readTextFileSync(join(dest, "pl/victim")), "copied");
    assertEquals(Deno.lstatSync(join(dest, "pl/victim")).mode! & 0o777, 0o777);
  });
});

Deno.test("copyDirContents merges directories, keeps hard links, copies absolute links as links", async () => {
  await withTemp((base) => {
    const src = join(base, "src");
    Deno.mkdirSync(join(src, "a/b"), { recursive: true });
    Deno.writeTextFileSync(join(src, "a/f"), "1");
    Deno.linkSync(join(src, "a/f"), join(src, "a/b/h"));
    Deno.symlinkSync("/etc/passwd", join(src, "abs"));
    Deno.mkdirSync(join(base, "dest/a"), { recursive: true });
    Deno.writeTextFileSync(join(base, "dest/a/old"), "kept");
    const srcFd = openDir(src);
    const destFd = openat(AT_FDCWD, join(base, "dest"), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    try {
      withNode(nodeOf(openInRoot(srcFd, "/", O_PATH)), (n) => {
        copyDirContents(n, destFd, "dest", { hardlinks: true, devices: true });
      });
    } finally {
      close(srcFd);
      close(destFd);
    }
    const d = join(base, "dest");
    assertEquals(Deno.readTextFileSync(join(d, "a/old")), "kept");
    assertEquals(Deno.lstatSync(join(d, "a/f")).ino, Deno.lstatSync(join(d, "a/b/h")).ino);
    assertEquals(Deno.readLinkSync(join(d, "abs")), "/etc/passwd");
  });
});

Deno.test({
  name: "copyNode gives a copied symlink and fifo their owner, mode and mtime through an fd (root)",
  ignore: !isRoot,
  fn: () =>
    withTemp((base) => {
      const src = join(base, "src");
      const dest = join(base, "dest");
      Deno.mkdirSync(src);
      Deno.mkdirSync(dest);
      Deno.symlinkSync("/nonexistent/dangling", join(src, "l"));
      const srcFd = openDir(src);
      const destFd = openDir(dest);
      try {
        mknodat(srcFd, "p", S_IFIFO | 0o600);
        Deno.chmodSync(join(src, "p"), 0o640);
        for (const n of ["l", "p"]) {
          fchownat(srcFd, n, 1234, 5678, AT_SYMLINK_NOFOLLOW);
          utimensat(srcFd, n, { sec: 1000, nsec: 0 }, { sec: 1000, nsec: 0 }, AT_SYMLINK_NOFOLLOW);
          withNode(openChild(srcFd, n)!, (node) => copyNode(node, destFd, n, n, { devices: true }));
        }
      } finally {
        close(srcFd);
        close(destFd);
      }
      const l = Deno.lstatSync(join(dest, "l"));
      assertOk(l.isSymlink);
      assertEquals([l.uid, l.gid, l.mtime?.getTime()], [1234, 5678, 1_000_000]);
      const p = Deno.lstatSync(join(dest, "p"));
      assertOk(p.isFifo);
      assertEquals([p.uid, p.gid, p.mode! & 0o7777, p.mtime?.getTime()], [
        1234,
        5678,
        0o640,
        1_000_000,
      ]);
    }),
});
