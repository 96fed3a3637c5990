import { assertEquals, assertOk, assertRejects } from "../../tests/assert.ts";
import { lgetxattr, llistxattr } from "../../ffi/fs.ts";
import { cleanPath, LayerError, unpackLayer, UnsafeLayerError } from "./unpack.ts";
import { compareTrees } from "../../tests/tree_compare.ts";

const isRoot = Deno.uid() === 0;

/**
 * Runs `body` (Python) with `tf` an open PAX tarfile at argv[1] and `add(name, type, data,
 * **attrs)` adding one entry; the archive is closed afterwards.
 */
async function pyTar(path: string, body: string): Promise<void> {
  const script = String.raw`
import io, sys, tarfile
tf = tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT)
def add(name, type=tarfile.REGTYPE, data=b"", pax=None, **kw):
    ti = tarfile.TarInfo(name)
    ti.type = type
    ti.size = len(data) if type == tarfile.REGTYPE else 0
    ti.mode = kw.pop("mode", 0o644)
    ti.mtime = kw.pop("mtime", 1600000000)
    if pax: ti.pax_headers = pax
    for k, v in kw.items(): setattr(ti, k, v)
    tf.addfile(ti, io.BytesIO(data) if type == tarfile.REGTYPE else None)
R, D, S, L, F, C, B = (tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE,
                       tarfile.FIFOTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE)
${body}
tf.close()
`;
  const out = await new Deno.Command("python3", { args: ["-c", script, path] }).output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
}

async function unpackPy(body: string, options = {}) {
  const tmp = await Deno.makeTempDir({ prefix: "tsbox-unpack-" });
  await pyTar(`${tmp}/layer.tar`, body);
  const dir = `${tmp}/root`;
  await Deno.mkdir(dir);
  const file = await Deno.open(`${tmp}/layer.tar`);
  const size = (await file.stat()).size;
  try {
    const stats = await unpackLayer(file.readable, dir, options);
    return { tmp, dir, stats, size };
  } catch (err) {
    await Deno.remove(tmp, { recursive: true });
    throw err;
  }
}

function type(info: Deno.FileInfo): string {
  if (info.isFile) return "file";
  if (info.isDirectory) return "dir";
  if (info.isSymlink) return "symlink";
  if (info.isFifo) return "fifo";
  if (info.isCharDevice) return "char";
  if (info.isBlockDevice) return "block";
  return "other";
}

const text = (b: Uint8Array | null) => b === null ? null : new TextDecoder().decode(b);

Deno.test("cleanPath roots paths lexically", () => {
  assertEquals(cleanPath("./a//b/./c/"), ["a", "b", "c"]);
  assertEquals(cleanPath("/etc/passwd"), ["etc", "passwd"]);
  assertEquals(cleanPath("../../x/../y"), ["y"]);
  assertEquals(cleanPath("."), []);
});

Deno.test({
  name: "unpacks every entry kind with owners, modes, times, links and xattrs",
  ignore: !isRoot,
  async fn() {
    const { tmp, dir, stats, size } = await unpackPy(String.raw`
add("d/", D, mode=0o2775, uid=1000, gid=1001, mtime=1400000000)
add("d/f", data=b"hello\n", mode=0o4755, uid=1, gid=2, mtime=1500000000,
    pax={"mtime": "1500000000.25", "SCHILY.xattr.user.color": "blue",
         "SCHILY.xattr.trusted.overlay.opaque": "y"})
add("d/sticky/", D, mode=0o1777)
add("d/s", S, linkname="f", uid=3, gid=4, mtime=1300000000)
add("d/abs", S, linkname="/etc/passwd")
add("d/h", L, linkname="d/f")
add("p", F, mode=0o640, uid=5, gid=6)
add("dev/null", C, devmajor=1, devminor=3, mode=0o666)
add("dev/loop0", B, devmajor=7, devminor=0, mode=0o660, gid=6)
add("long/" + "n" * 200 + "/file", data=b"x" * 100000)
add("auto/x/y", data=b"parents were missing")
`);
    try {
      assertEquals(stats.bytes, size);
      assertEquals(stats.files, 11);
      const st = (p: string) => Deno.lstatSync(`${dir}/${p}`);
      const d = st("d");
      assertEquals([type(d), d.mode! & 0o7777, d.uid, d.gid], ["dir", 0o2775, 1000, 1001]);
      // Entries created inside d after it did not disturb its recorded mtime.
      assertEquals(d.mtime?.getTime(), 1400000000_000);
      const f = st("d/f");
      assertEquals([type(f), f.mode! & 0o7777, f.uid, f.gid], ["file", 0o4755, 1, 2]);
      assertEquals(f.mtime?.getTime(), 1500000000_250);
      assertEquals(Deno.readTextFileSync(`${dir}/d/f`), "hello\n");
      assertEquals(text(lgetxattr(`${dir}/d/f`, "user.color")), "blue");
      assertEquals(lgetxattr(`${dir}/d/f`, "trusted.overlay.opaque"), null, "stripped");
      assertEquals(st("d/sticky").mode! & 0o7777, 0o1777);
      const s = st("d/s");
      assertEquals([type(s), s.uid, s.gid, s.mtime?.getTime()], ["symlink", 3, 4, 1300000000_000]);
      assertEquals(Deno.readLinkSync(`${dir}/d/s`), "f");
      assertEquals(Deno.readLinkSync(`${dir}/d/abs`), "/etc/passwd");
      const h = st("d/h");
      assertEquals([h.ino, h.nlink], [f.ino, 2]);
      const p = st("p");
      assertEquals([type(p), p.mode! & 0o7777, p.uid, p.gid], ["fifo", 0o640, 5, 6]);
      const nul = st("dev/null");
      assertEquals([type(nul), nul.mode! & 0o7777, nul.rdev], ["char", 0o666, 0x103]);
      const loop = st("dev/loop0");
      assertEquals([type(loop), loop.mode! & 0o7777, loop.rdev, loop.gid], [
        "block",
        0o660,
        0x700,
        6,
      ]);
      assertEquals(Deno.readFileSync(`${dir}/long/${"n".repeat(200)}/file`).length, 100000);
      assertEquals(Deno.readTextFileSync(`${dir}/auto/x/y`), "parents were missing");
      assertEquals(st("auto/x").mode! & 0o7777, 0o755);
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});

Deno.test({
  name: "whiteouts become 0/0 char devices and opaque markers an xattr",
  ignore: !isRoot,
  async fn() {
    const { tmp, dir, stats } = await unpackPy(String.raw`
add(".wh.gone")
add("a/", D, mode=0o750, mtime=1200000000)
add("a/kept", data=b"k")
add("a/.wh..wh..opq")
add("b/c/.wh.x")
add("./.wh..wh.plnk")
`);
    try {
      assertEquals(stats.files, 5);
      const gone = Deno.lstatSync(`${dir}/gone`);
      assertEquals([type(gone), gone.rdev, gone.mode! & 0o7777], ["char", 0, 0]);
      assertEquals(text(lgetxattr(`${dir}/a`, "trusted.overlay.opaque")), "y");
      assertEquals(Deno.readTextFileSync(`${dir}/a/kept`), "k");
      assertEquals(Deno.lstatSync(`${dir}/a`).mtime?.getTime(), 1200000000_000);
      assertEquals(Deno.lstatSync(`${dir}/a`).mode! & 0o7777, 0o750);
      assertEquals(type(Deno.lstatSync(`${dir}/b/c/x`)), "char");
      assertEquals(Deno.lstatSync(`${dir}/b/c/x`).rdev, 0);
      assertEquals([...Deno.readDirSync(dir)].map((e) => e.name).sort(), ["a", "b", "gone"]);
      assertEquals(llistxattr(`${dir}/b`).filter((n) => n.includes("overlay")), []);
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});

Deno.test({
  name: "later entries replace earlier ones; a directory over a directory merges",
  ignore: !isRoot,
  async fn() {
    const { tmp, dir } = await unpackPy(String.raw`
add("f", data=b"was a file")
add("f/", D, mode=0o711)
add("g/", D)
add("g/deep/", D)
add("g/deep/x", data=b"x")
add("g", data=b"now a file")
add("l", S, linkname="target")
add("target", data=b"untouched")
add("l", data=b"replaced the link")
add("m/", D, mode=0o700, uid=7)
add("m/old", data=b"old")
add("m/", D, mode=0o755, uid=8, mtime=1100000000)
add("w", data=b"w")
add(".wh.w")
`);
    try {
      assertEquals(type(Deno.lstatSync(`${dir}/f`)), "dir");
      assertEquals(Deno.lstatSync(`${dir}/f`).mode! & 0o7777, 0o711);
      assertEquals(Deno.readTextFileSync(`${dir}/g`), "now a file");
      assertEquals(Deno.readTextFileSync(`${dir}/l`), "replaced the link");
      assertEquals(type(Deno.lstatSync(`${dir}/l`)), "file");
      assertEquals(Deno.readTextFileSync(`${dir}/target`), "untouched");
      const m = Deno.lstatSync(`${dir}/m`);
      assertEquals([m.mode! & 0o7777, m.uid, m.mtime?.getTime()], [0o755, 8, 1100000000_000]);
      assertEquals(Deno.readTextFileSync(`${dir}/m/old`), "old");
      assertEquals(type(Deno.lstatSync(`${dir}/w`)), "char");
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});

Deno.test("rootless: no chown, no device nodes, user.overlay.opaque", async () => {
  const { tmp, dir, stats } = await unpackPy(
    String.raw`
add("o/", D, uid=4321, gid=4321, mode=0o555)
add("o/file", data=b"in a read-only dir", uid=4321)
add("o/.wh..wh..opq")
add("dev/null", C, devmajor=1, devminor=3)
add("fifo", F)
`,
    { rootless: true },
  );
  try {
    assertEquals(stats.files, 4); // o, o/file, the opaque marker, fifo (dev/ itself is implicit)
    const o = Deno.lstatSync(`${dir}/o`);
    assertEquals([o.uid, o.mode! & 0o7777], [Deno.uid(), 0o555]);
    assertEquals(Deno.lstatSync(`${dir}/o/file`).uid, Deno.uid());
    assertEquals(text(lgetxattr(`${dir}/o`, "user.overlay.opaque")), "y");
    assertEquals(lgetxattr(`${dir}/o`, "trusted.overlay.opaque"), null);
    let devExists = true;
    try {
      Deno.lstatSync(`${dir}/dev/null`);
    } catch {
      devExists = false;
    }
    assertOk(!devExists, "device nodes are skipped");
    assertEquals(type(Deno.lstatSync(`${dir}/fifo`)), "fifo");
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("errors name the entry: a hard link to a missing file", async () => {
  const err = await assertRejects(
    () =>
      unpackPy(String.raw`
add("ok", data=b"1")
add("bad-link", L, linkname="does/not/exist")
`),
    LayerError,
    "bad-link",
  );
  assertEquals(err.entry, "bad-link");
  assertOk(!(err instanceof UnsafeLayerError));
});

/** Three layers with whiteouts, an opaque dir and replacements, written as an OCI layout. */
const MAKE_OCI = String.raw`
import hashlib, io, json, os, sys, tarfile
out = sys.argv[1]
os.makedirs(out + "/blobs/sha256", exist_ok=True)

def layer(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, type, data, kw in entries:
            ti = tarfile.TarInfo(name)
            ti.type = type
            ti.size = len(data) if type == tarfile.REGTYPE else 0
            ti.mode = kw.pop("mode", 0o755 if type == tarfile.DIRTYPE else 0o644)
            ti.mtime = kw.pop("mtime", 1600000000)
            ti.pax_headers = kw.pop("pax", {})
            for k, v in kw.items(): setattr(ti, k, v)
            tf.addfile(ti, io.BytesIO(data) if type == tarfile.REGTYPE else None)
    return buf.getvalue()

def e(name, type=tarfile.REGTYPE, data=b"", **kw): return (name, type, data, kw)
R, D, S, L, F, C = (tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE,
                    tarfile.FIFOTYPE, tarfile.CHRTYPE)
layers = [
    layer([e("etc/", D), e("etc/conf", data=b"v1\n", mode=0o600, uid=10, gid=20),
           e("bin/", D), e("bin/tool", data=b"#!/bin/sh\n" * 500, mode=0o4755,
             pax={"SCHILY.xattr.user.origin": "layer1"}),
           e("bin/alias", L, linkname="bin/tool"), e("bin/sh", S, linkname="/bin/tool"),
           e("opq/", D, mode=0o750, uid=3, gid=4), e("opq/a", data=b"a"), e("opq/b", data=b"b"),
           e("gone", data=b"x"), e("gonedir/", D), e("gonedir/deep", data=b"d"),
           e("run/", D, mode=0o1777), e("run/fifo", F, mode=0o600),
           e("replaced", data=b"file in layer 1")]),
    layer([e(".wh.gone"), e(".wh.gonedir"), e("opq/", D, mode=0o700, uid=5, gid=6),
           e("opq/.wh..wh..opq"), e("opq/c", data=b"c"),
           e("etc/", D), e("etc/conf", data=b"v2\n", mode=0o640, uid=11, gid=21),
           e("usr/share/doc/", D), e("usr/share/doc/readme", data=b"r" * 70000)]),
    layer([e("replaced", S, linkname="etc/conf"), e("etc/", D, mode=0o711),
           e("dev/", D), e("dev/null", C, devmajor=1, devminor=3, mode=0o666),
           e("usr/share/doc/.wh.readme"), e("usr/share/doc/new", data=b"n", uid=1000)]),
]

def blob(data):
    d = hashlib.sha256(data).hexdigest()
    with open(out + "/blobs/sha256/" + d, "wb") as f: f.write(data)
    return {"digest": "sha256:" + d, "size": len(data)}

config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
    "rootfs": {"type": "layers", "diff_ids": [blob(l)["digest"] for l in layers]}}).encode()
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": dict(mediaType="application/vnd.oci.image.config.v1+json", **blob(config)),
    "layers": [dict(mediaType="application/vnd.oci.image.layer.v1.tar", **blob(l)) for l in layers]}).encode()
index = {"schemaVersion": 2, "manifests": [dict(mediaType="application/vnd.oci.image.manifest.v1+json",
    annotations={"org.opencontainers.image.ref.name": "test"}, **blob(manifest))]}
json.dump(index, open(out + "/index.json", "w"))
json.dump({"imageLayoutVersion": "1.0.0"}, open(out + "/oci-layout", "w"))
print(json.dumps([hashlib.sha256(l).hexdigest() for l in layers]))
`;

async function run(cmd: string, ...args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args }).output();
  const dec = new TextDecoder();
  if (!out.success) throw new Error(`${cmd} ${args.join(" ")}: ${dec.decode(out.stderr)}`);
  return dec.decode(out.stdout);
}

Deno.test({
  name: "an overlay of unpacked layers equals umoci's unpack of the same OCI image",
  ignore: !isRoot,
  async fn() {
    const tmp = await Deno.makeTempDir({ prefix: "tsbox-umoci-" });
    let mounted = false;
    try {
      const oci = `${tmp}/oci`;
      const layers: string[] = JSON.parse(await run("python3", "-c", MAKE_OCI, oci));
      const dirs: string[] = [];
      for (const [i, digest] of layers.entries()) {
        const dir = `${tmp}/l${i}`;
        await Deno.mkdir(dir);
        using file = await Deno.open(`${oci}/blobs/sha256/${digest}`);
        const stats = await unpackLayer(file.readable, dir);
        assertEquals(stats.bytes, (await Deno.stat(`${oci}/blobs/sha256/${digest}`)).size);
        dirs.unshift(dir); // overlay wants the top layer first
      }
      await Deno.mkdir(`${tmp}/merged`);
      await run(
        "mount",
        "-t",
        "overlay",
        "overlay",
        "-o",
        `ro,lowerdir=${dirs.join(":")}`,
        `${tmp}/merged`,
      );
      mounted = true;
      await run("umoci", "unpack", "--image", `${oci}:test`, `${tmp}/bundle`);
      const options = { mtime: true, xattrs: (name: string) => name.startsWith("user.") };
      const diffs = await compareTrees(`${tmp}/merged`, `${tmp}/bundle/rootfs`, options);
      // Parents that a layer creates implicitly (no entry of their own in it) get the time of
      // the unpack, in each layer dir as in umoci's single tree; only those mtimes may differ.
      const implicit = /^(\/|usr|usr\/share|usr\/share\/doc): mtime /;
      assertEquals(diffs.filter((d) => !implicit.test(d)), []);
      assertEquals(text(lgetxattr(`${tmp}/merged/bin/tool`, "user.origin")), "layer1");
      // And the comparison is not vacuous: the merged view has what the layers say it should.
      assertEquals(Deno.readTextFileSync(`${tmp}/merged/etc/conf`), "v2\n");
      assertEquals([...Deno.readDirSync(`${tmp}/merged/opq`)].map((e) => e.name), ["c"]);
      assertEquals(Deno.readLinkSync(`${tmp}/merged/replaced`), "etc/conf");
      assertOk(!existsSync(`${tmp}/merged/gone`) && !existsSync(`${tmp}/merged/gonedir`));
    } finally {
      if (mounted) await run("umount", `${tmp}/merged`);
      await Deno.remove(tmp, { recursive: true });
    }
  },
});

function existsSync(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Lists the merged tree of an overlay (`userxattr`) over `lowers`, mounted in a private ns. */
async function mergedListing(tmp: string, lowers: string[]): Promise<string[]> {
  for (const d of ["upper", "work", "merged"]) await Deno.mkdir(`${tmp}/${d}`);
  const opts = `lowerdir=${lowers.join(":")},upperdir=${tmp}/upper,workdir=${tmp}/work,userxattr`;
  const out = await new Deno.Command("unshare", {
    args: [
      "-m",
      "--propagation",
      "private",
      "sh",
      "-c",
      `mount -t overlay overlay -o "${opts}" "${tmp}/merged" && cd "${tmp}/merged" && find . | sort`,
    ],
  }).output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
  return new TextDecoder().decode(out.stdout).trim().split("\n");
}

for (const xattrWhiteouts of [false, true]) {
  Deno.test({
    name: `rootless whiteouts (${xattrWhiteouts ? "xattr" : "0/0 device"}) hide lower files ` +
      `in an overlay mounted with userxattr`,
    ignore: !isRoot,
    fn: async () => {
      const base = await unpackPy(
        String.raw`
add("a", data=b"gone")
add("keep", data=b"stays")
add("d/", D, mode=0o755)
add("d/x", data=b"gone too")
add("d/y", data=b"stays too")
add("o/", D, mode=0o755)
add("o/old", data=b"hidden by opaque")
`,
        { rootless: true },
      );
      const top = await unpackPy(
        String.raw`
add(".wh.a")
add("d/.wh.x")
add("o/", D, mode=0o755)
add("o/.wh.old")
add("o/.wh..wh..opq")
add("o/.wh.other")
add("o/new", data=b"new")
`,
        { rootless: true, xattrWhiteouts },
      );
      try {
        const wh = Deno.lstatSync(`${top.dir}/a`);
        if (xattrWhiteouts) {
          assertOk(wh.isFile && wh.size === 0, "an xattr whiteout is an empty regular file");
          assertEquals(text(lgetxattr(`${top.dir}/a`, "user.overlay.whiteout")), "y");
          assertEquals(text(lgetxattr(top.dir, "user.overlay.opaque")), "x");
          assertEquals(text(lgetxattr(`${top.dir}/d`, "user.overlay.opaque")), "x");
        } else {
          assertEquals(type(wh), "char");
        }
        // An opaque directory stays opaque ("y") when it also holds a whiteout.
        assertEquals(text(lgetxattr(`${top.dir}/o`, "user.overlay.opaque")), "y");
        assertEquals(await mergedListing(top.tmp, [top.dir, base.dir]), [
          ".",
          "./d",
          "./d/y",
          "./keep",
          "./o",
          "./o/new",
        ]);
      } finally {
        await Deno.remove(base.tmp, { recursive: true });
        await Deno.remove(top.tmp, { recursive: true });
      }
    },
  });
}

Deno.test("files keep going where their path leads after a directory on it is replaced", async () => {
  // "l/f2" shares its parent's path with "l/f1", but the directory "l" led to was replaced by
  // a file in between: f2 cannot be made (its parent is not a directory), and is never put in
  // the directory that was removed.
  const err = await assertRejects(
    () =>
      unpackPy(`
add("a/", D)
add("l", S, linkname="/a")
add("l/f1", data=b"1")
add("a", data=b"now a file")
add("l/f2", data=b"2")`),
    LayerError,
  );
  assertEquals(err.entry, "l/f2");
});

Deno.test("a file over an existing file, symlink or directory replaces it", async () => {
  const { tmp, dir } = await unpackPy(`
add("d/", D)
add("d/x", data=b"old")
add("d/y", S, linkname="/d/x")
add("d/z/", D)
add("d/z/inner", data=b"i")
add("d/x", data=b"new")
add("d/y", data=b"was a link")
add("d/z", S, linkname="x")
add("d/x", S, linkname="y")`);
  try {
    assertEquals(await Deno.readLink(`${dir}/d/x`), "y");
    assertEquals(await Deno.readTextFile(`${dir}/d/y`), "was a link");
    assertEquals(await Deno.readLink(`${dir}/d/z`), "x");
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
