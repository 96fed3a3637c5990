import { createHash } from "node:crypto";
import { assertEquals, assertOk, assertRejects } from "../../tests/assert.ts";
import { TarFormatError, type TarHeader, TarReader } from "./tar.ts";

/**
 * Builds archives with Python's tarfile and prints what Python itself reads back from them, so
 * the reader is checked against an independent implementation.
 */
const MAKE_ARCHIVES = String.raw`
import io, json, os, sys, tarfile, hashlib, random
out = sys.argv[1]
random.seed(7)

def add(tf, name, type=tarfile.REGTYPE, data=b"", **kw):
    ti = tarfile.TarInfo(name)
    ti.type = type
    ti.size = len(data) if type == tarfile.REGTYPE else 0
    ti.mode = kw.pop("mode", 0o644)
    ti.mtime = kw.pop("mtime", 1700000000)
    for k, v in kw.items():
        setattr(ti, k, v)
    tf.addfile(ti, io.BytesIO(data) if type == tarfile.REGTYPE else None)

def build(path, fmt, **tfkw):
    with tarfile.open(path, "w", format=fmt, **tfkw) as tf:
        add(tf, "dir/", tarfile.DIRTYPE, mode=0o1775, uid=1000, gid=1000, uname="u", gname="g")
        add(tf, "dir/file.bin", data=random.randbytes(70000), mode=0o4755)
        add(tf, "dir/empty", data=b"")
        add(tf, "dir/" + "x" * 150 + "/long-name-" + "y" * 120, data=b"long")
        add(tf, "pre/" + "p" * 90 + "/" + "n" * 90, data=b"prefix split")
        add(tf, "dir/link", tarfile.LNKTYPE, linkname="dir/file.bin")
        add(tf, "dir/sym", tarfile.SYMTYPE, linkname="/" + "t" * 200)
        add(tf, "dir/fifo", tarfile.FIFOTYPE, mode=0o600)
        add(tf, "dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3, mode=0o666)
        add(tf, "dev/sda", tarfile.BLKTYPE, devmajor=8, devminor=0)
        add(tf, "big-ids", data=b"ids", uid=3000000, gid=2**31, mtime=2**36)
        add(tf, "uni-\u00e9\u4e2d", data="caf\u00e9".encode())
        for i in range(3):
            add(tf, "n/%d" % i, data=random.randbytes(random.randrange(0, 3000)))
        if fmt == tarfile.PAX_FORMAT:
            ti = tarfile.TarInfo("xattrs")
            ti.size = 1
            ti.pax_headers = {
                "SCHILY.xattr.user.note": "h\u00e9llo",
                "SCHILY.xattr.security.capability": "cap",
                "mtime": "1700000000.123456789",
            }
            ti.mtime = 1700000000.5
            tf.addfile(ti, io.BytesIO(b"!"))
        else:
            add(tf, "old", data=b"neg", mtime=-1000)

build(out + "/pax.tar", tarfile.PAX_FORMAT, pax_headers={"comment": "global header"})
build(out + "/gnu.tar", tarfile.GNU_FORMAT)

types = {tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.LNKTYPE: "hardlink",
         tarfile.SYMTYPE: "symlink", tarfile.CHRTYPE: "char", tarfile.BLKTYPE: "block",
         tarfile.DIRTYPE: "directory", tarfile.FIFOTYPE: "fifo"}
result = {}
for name in ("pax", "gnu"):
    entries = []
    with tarfile.open(out + "/%s.tar" % name) as tf:
        for m in tf:
            data = tf.extractfile(m).read() if m.isreg() else b""
            entries.append(dict(
                name=m.name, type=types[m.type], mode=m.mode, uid=m.uid, gid=m.gid,
                uname=m.uname, gname=m.gname, size=m.size if m.isreg() else 0,
                mtime=int(m.mtime // 1), linkname=m.linkname,
                devmajor=m.devmajor, devminor=m.devminor,
                xattrs={k[13:]: v for k, v in m.pax_headers.items() if k.startswith("SCHILY.xattr.")},
                sha256=hashlib.sha256(data).hexdigest()))
    result[name] = entries
print(json.dumps(result))
`;

interface Expected {
  name: string;
  type: string;
  mode: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  size: number;
  mtime: number;
  linkname: string;
  devmajor: number;
  devminor: number;
  xattrs: Record<string, string>;
  sha256: string;
}

async function makeArchives(): Promise<{ dir: string; expected: Record<string, Expected[]> }> {
  const dir = await Deno.makeTempDir({ prefix: "tsbox-tar-" });
  const out = await new Deno.Command("python3", { args: ["-c", MAKE_ARCHIVES, dir] }).output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
  return { dir, expected: JSON.parse(new TextDecoder().decode(out.stdout)) };
}

/** A stream of `data` cut into chunks of the given sizes, cycling. */
function chunked(data: Uint8Array, sizes: number[]): ReadableStream<Uint8Array> {
  let off = 0;
  let i = 0;
  return new ReadableStream({
    pull(ctrl) {
      if (off >= data.length) return ctrl.close();
      const n = sizes[i++ % sizes.length];
      ctrl.enqueue(data.slice(off, off + n));
      off += n;
    },
  });
}

async function readAll(
  stream: ReadableStream<Uint8Array>,
  readBody: (i: number) => boolean = () => true,
): Promise<{ headers: TarHeader[]; digests: (string | null)[]; bytes: number }> {
  const tar = new TarReader(stream);
  const headers: TarHeader[] = [];
  const digests: (string | null)[] = [];
  for await (const entry of tar) {
    headers.push(entry.header);
    if (!readBody(headers.length - 1)) {
      digests.push(null);
      continue;
    }
    const h = createHash("sha256");
    for await (const chunk of entry.chunks()) h.update(chunk);
    digests.push(h.digest("hex"));
  }
  return { headers, digests, bytes: tar.bytesRead };
}

function comparable(h: TarHeader, digest: string | null): Expected {
  const dec = new TextDecoder();
  return {
    name: h.name.replace(/\/+$/, ""), // Python drops a directory's trailing slash
    type: h.type,
    mode: h.mode,
    uid: h.uid,
    gid: h.gid,
    uname: h.uname,
    gname: h.gname,
    size: h.size,
    mtime: h.mtime.sec,
    linkname: h.linkname,
    devmajor: h.devmajor,
    devminor: h.devminor,
    xattrs: Object.fromEntries([...h.xattrs].map(([k, v]) => [k, dec.decode(v)])),
    sha256: digest ?? "",
  };
}

Deno.test("reads PAX and GNU archives exactly as Python's tarfile does", async () => {
  const { dir, expected } = await makeArchives();
  try {
    for (const kind of ["pax", "gnu"]) {
      const data = await Deno.readFile(`${dir}/${kind}.tar`);
      // Odd chunk sizes put headers and bodies across chunk boundaries.
      for (const sizes of [[data.length], [1, 7, 511, 513, 4096], [65536]]) {
        const { headers, digests, bytes } = await readAll(chunked(data, sizes));
        assertEquals(headers.map((h, i) => comparable(h, digests[i])), expected[kind]);
        assertEquals(bytes, data.length, "bytesRead counts the whole stream");
      }
      const { headers } = await readAll(chunked(data, [1000]));
      if (kind === "pax") {
        const x = headers.find((h) => h.name === "xattrs")!;
        assertEquals(x.mtime, { sec: 1700000000, nsec: 123456789 });
        assertEquals(x.xattrs.get("security.capability"), new TextEncoder().encode("cap"));
      } else {
        assertEquals(headers.find((h) => h.name === "old")!.mtime, { sec: -1000, nsec: 0 });
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("skips bodies the caller does not read", async () => {
  const { dir, expected } = await makeArchives();
  try {
    const data = await Deno.readFile(`${dir}/pax.tar`);
    const { headers, digests } = await readAll(chunked(data, [333]), (i) => i % 2 === 1);
    assertEquals(headers.map((h) => h.name.replace(/\/+$/, "")), expected.pax.map((e) => e.name));
    digests.forEach((d, i) => {
      if (d !== null) assertEquals(d, expected.pax[i].sha256);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("rejects a corrupted header checksum and a truncated archive", async () => {
  const { dir } = await makeArchives();
  try {
    const data = await Deno.readFile(`${dir}/gnu.tar`);
    const corrupt = data.slice();
    corrupt[5] ^= 0x20; // a byte of the first entry's name
    const err = await assertRejects(
      () => readAll(chunked(corrupt, [4096])),
      TarFormatError,
      "checksum",
    );
    assertEquals(err.offset, 0);
    await assertRejects(
      () => readAll(chunked(data.slice(0, 512 + 30000), [4096])),
      TarFormatError,
      "unexpected end of archive",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("reads a GNU tar archive of a real directory (xattrs, posix format)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tsbox-tar-" });
  try {
    await Deno.mkdir(`${dir}/src/sub`, { recursive: true });
    await Deno.writeTextFile(`${dir}/src/sub/a.txt`, "alpha\n");
    await Deno.symlink("sub/a.txt", `${dir}/src/s`);
    const setx = await new Deno.Command("python3", {
      args: ["-c", `import os; os.setxattr("${dir}/src/sub/a.txt", "user.k", b"v1")`],
    }).output();
    assertOk(setx.success);
    const tar = await new Deno.Command("tar", {
      args: ["--format=posix", "--xattrs", "-C", `${dir}/src`, "-cf", `${dir}/t.tar`, "."],
    }).output();
    assertOk(tar.success, new TextDecoder().decode(tar.stderr));
    const data = await Deno.readFile(`${dir}/t.tar`);
    const { headers, bytes } = await readAll(chunked(data, [10240]));
    assertEquals(bytes, data.length);
    const byName = new Map(headers.map((h) => [h.name, h]));
    assertEquals(byName.get("./sub/a.txt")?.xattrs.get("user.k"), new TextEncoder().encode("v1"));
    assertEquals(byName.get("./sub/a.txt")?.size, 6);
    assertEquals(byName.get("./s")?.linkname, "sub/a.txt");
    assertEquals(byName.get("./sub/")?.type, "directory");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
