/**
 * Hostile layers, built with Python's tarfile: each must leave everything outside the target
 * directory unchanged (a sentinel tree beside it, /etc/passwd) and either fail with an error
 * naming the entry or keep the entry inside the target.
 *
 * A regression here would write into the host's /etc, so each unpack runs in a child process
 * (this file in worker mode) inside a private mount namespace where /etc is a bind mount of a
 * copy: an escape changes the copy, which the test then detects.
 */
import { createHash } from "node:crypto";
import { assertEquals, assertOk, assertStringIncludes } from "./assert.ts";
import { diffTrees, scanTree } from "./tree_compare.ts";
import { LayerError, unpackLayer, UnsafeLayerError } from "../src/image/unpack.ts";

const isRoot = Deno.uid() === 0;

interface Case {
  name: string;
  /** Python adding entries with add(name, type, data, **attrs); SENT is the sentinel dir. */
  layer: string;
  /** The entry the unpack must fail on, with the error class; or checks of what landed inside. */
  expect:
    | { fails: string; unsafe?: boolean }
    | { inside: (root: string, sentinel: string) => void };
}

const read = (p: string) => Deno.readTextFileSync(p);

const CASES: Case[] = [
  {
    name: "../ escapes stay inside",
    layer: `
add("../sentinel/evil", data=b"x")
add("a/../../../../../../../.." + SENT + "/evil2", data=b"y")`,
    expect: {
      inside: (root, sent) => {
        assertEquals(read(`${root}/sentinel/evil`), "x");
        assertEquals(read(`${root}${sent}/evil2`), "y");
      },
    },
  },
  {
    name: "absolute paths stay inside",
    layer: `
add(SENT + "/abs", data=b"x")
add(SENT + "/keep", data=b"overwritten?")
add("/etc/passwd", data=b"root::0:0::/:/bin/sh\\n")`,
    expect: {
      inside: (root, sent) => {
        assertEquals(read(`${root}${sent}/abs`), "x");
        assertEquals(read(`${root}${sent}/keep`), "overwritten?");
        assertEquals(read(`${root}/etc/passwd`), "root::0:0::/:/bin/sh\n");
      },
    },
  },
  {
    name: "a symlinked parent pointing outside, then a write through it",
    layer: `
add("a", S, linkname=SENT)
add("a/evil", data=b"x")
add("a/keep", data=b"y", mode=0o777)
add("rel", S, linkname="../../../../../../.." + SENT)
add("rel/evil3", data=b"z")`,
    expect: {
      inside: (root, sent) => {
        assertEquals(Deno.readLinkSync(`${root}/a`), sent);
        assertEquals(read(`${root}${sent}/evil`), "x");
        assertEquals(read(`${root}${sent}/keep`), "y");
        assertEquals(read(`${root}${sent}/evil3`), "z");
      },
    },
  },
  {
    // Inside the layer, `etc -> /etc` points at itself: a loop, refused by the kernel.
    name: "etc -> /etc, then etc/passwd",
    layer: `
add("etc", S, linkname="/etc")
add("etc/passwd", data=b"pwned")`,
    expect: { fails: "etc/passwd" },
  },
  {
    name: "a symlink named .",
    layer: `
add(".", S, linkname=SENT)
add("evil", data=b"x")`,
    expect: { fails: ".", unsafe: true },
  },
  {
    name: "a symlink named ./ inside a directory replaces only that directory",
    layer: `
add("d/", D)
add("d/.", S, linkname=SENT)
add("d/evil", data=b"x")`,
    expect: {
      inside: (root, sent) => {
        assertEquals(Deno.readLinkSync(`${root}/d`), sent);
        assertEquals(read(`${root}${sent}/evil`), "x");
      },
    },
  },
  {
    name: "a hard link to /etc/passwd, then a write through it",
    layer: `
add("pw", L, linkname="/etc/passwd")
add("pw", data=b"pwned")`,
    expect: { fails: "pw" },
  },
  {
    name: "a hard link to the layer's own /etc/passwd, then a write through it",
    layer: `
add("etc/passwd", data=b"inside\\n")
add("pw", L, linkname="/etc/passwd")
add("pw", data=b"pwned")
add("sl", S, linkname=SENT + "/keep")
add("hl", L, linkname="sl")
add("hl", data=b"pwned")`,
    expect: {
      inside: (root) => {
        assertEquals(read(`${root}/etc/passwd`), "inside\n");
        assertEquals(read(`${root}/pw`), "pwned");
        assertEquals(read(`${root}/hl`), "pwned");
      },
    },
  },
  {
    name: "a hard link through a symlinked parent to outside",
    layer: `
add("out", S, linkname=SENT)
add("hl", L, linkname="out/keep")`,
    expect: { fails: "hl" },
  },
  {
    name: "a whiteout of ..",
    layer: `
add("sub/", D)
add("sub/.wh...")`,
    expect: { fails: "sub/.wh...", unsafe: true },
  },
  {
    name: "whiteouts through ../ and symlinked parents stay inside",
    layer: `
add("../.wh.sentinel")
add("s", S, linkname=SENT)
add("s/.wh.keep")
add("s/.wh..wh..opq")`,
    expect: {
      inside: (root, sent) => {
        assertOk(Deno.lstatSync(`${root}/sentinel`).isCharDevice);
        assertOk(Deno.lstatSync(`${root}${sent}/keep`).isCharDevice);
      },
    },
  },
  {
    name: "a symlink chain",
    layer: `
add("l1", S, linkname="l2")
add("l2", S, linkname="l3/../../../../..")
add("l3/", D)
add("l1" + SENT + "/evil", data=b"x")`,
    expect: {
      inside: (root, sent) => assertEquals(read(`${root}${sent}/evil`), "x"),
    },
  },
  {
    name: "a symlink loop in a parent",
    layer: `
add("loop", S, linkname="loop/x")
add("loop/y", data=b"x")`,
    expect: { fails: "loop/y" },
  },
  {
    name: "a directory replaced by a symlink, then written through",
    layer: `
add("d/", D)
add("d/f", data=b"1")
add("d", S, linkname=SENT)
add("d/evil", data=b"x")
add("d/", D, mode=0o777, uid=1234)`,
    expect: {
      inside: (root, sent) => {
        assertEquals(read(`${root}${sent}/evil`), "x");
        const d = Deno.lstatSync(`${root}/d`);
        assertOk(d.isDirectory, "the directory entry replaced the symlink, not followed it");
        assertEquals([d.mode! & 0o777, d.uid], [0o777, 1234]);
      },
    },
  },
  {
    name: "replacing a directory that holds a symlink to outside removes only the symlink",
    layer: `
add("d/", D)
add("d/link", S, linkname=SENT)
add("d/sub/", D)
add("d/sub/link2", S, linkname=SENT + "/keep")
add("d", data=b"now a file")`,
    expect: { inside: (root) => assertEquals(read(`${root}/d`), "now a file") },
  },
  {
    name: "chmod, chown and times through a final symlink",
    layer: `
add("s", S, linkname=SENT + "/keep")
add("s", F, mode=0o777, uid=99)
add("t", S, linkname=SENT)
add("t/", D, mode=0o700, uid=98, mtime=0)`,
    expect: {
      inside: (root) => {
        assertOk(Deno.lstatSync(`${root}/s`).isFifo);
        assertOk(Deno.lstatSync(`${root}/t`).isDirectory);
      },
    },
  },
];

async function makeLayer(path: string, sentinel: string, body: string): Promise<void> {
  const script = `
import io, sys, tarfile
SENT = sys.argv[2]
tf = tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT)
def add(name, type=tarfile.REGTYPE, data=b"", **kw):
    ti = tarfile.TarInfo(name)
    ti.type = type
    ti.size = len(data) if type == tarfile.REGTYPE else 0
    ti.mode = kw.pop("mode", 0o644)
    for k, v in kw.items(): setattr(ti, k, v)
    tf.addfile(ti, io.BytesIO(data) if type == tarfile.REGTYPE else None)
R, D, S, L, F = tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.FIFOTYPE
${body}
tf.close()
`;
  const out = await new Deno.Command("python3", { args: ["-c", script, path, sentinel] }).output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
}

interface WorkerResult {
  name: string;
  message: string;
  entry?: string;
}

/** Unpacks in a child process whose /etc is `etc`; returns the error it reported, if any. */
async function unpackIsolated(
  tar: string,
  root: string,
  etc: string,
): Promise<WorkerResult | null> {
  const script = 'mount --bind "$1" /etc && shift && exec "$@"';
  const args = [
    "--mount",
    "--propagation",
    "private",
    "sh",
    "-c",
    script,
    "sh",
    etc,
    Deno.execPath(),
    "run",
    "-A",
    new URL(import.meta.url).pathname,
    tar,
    root,
  ];
  const out = await new Deno.Command("unshare", { args }).output();
  const stdout = new TextDecoder().decode(out.stdout).trim();
  if (!out.success || stdout === "") {
    throw new Error(`worker failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return JSON.parse(stdout);
}

if (import.meta.main) {
  // Worker mode: unpack Deno.args[0] into Deno.args[1], report the outcome as JSON.
  using file = await Deno.open(Deno.args[0]);
  let result: WorkerResult | null = null;
  try {
    await unpackLayer(file.readable, Deno.args[1]);
  } catch (err) {
    const e = err as Error;
    result = { name: e.name, message: e.message };
    if (err instanceof LayerError) result.entry = err.entry;
    if (err instanceof UnsafeLayerError) result.name = "UnsafeLayerError";
  }
  console.log(JSON.stringify(result));
}

async function fingerprint(path: string): Promise<string> {
  const info = await Deno.lstat(path);
  const data = await Deno.readFile(path);
  const sum = createHash("sha256").update(data).digest("hex");
  return JSON.stringify([info.mode, info.uid, info.gid, info.mtime?.getTime(), sum]);
}

for (const c of import.meta.main ? [] : CASES) {
  Deno.test({
    name: `hostile layer: ${c.name}`,
    ignore: !isRoot,
    async fn() {
      const tmp = await Deno.makeTempDir({ prefix: "tsbox-hostile-" });
      try {
        const sentinel = `${tmp}/sentinel`;
        await Deno.mkdir(sentinel);
        await Deno.writeTextFile(`${sentinel}/keep`, "keep me\n");
        await Deno.chmod(`${sentinel}/keep`, 0o600);
        const root = `${tmp}/root`;
        await Deno.mkdir(root);
        await makeLayer(`${tmp}/layer.tar`, sentinel, c.layer);
        const etcCopy = `${tmp}/etc`;
        // Another process (useradd, a package install) may replace a file of /etc during the
        // copy, which fails cp: try again on a fresh copy.
        let copied = false;
        for (let attempt = 0; attempt < 5 && !copied; attempt++) {
          await Deno.remove(etcCopy, { recursive: true }).catch(() => {});
          copied = (await new Deno.Command("cp", { args: ["-a", "/etc", etcCopy] }).output())
            .success;
        }
        assertOk(copied, "copy /etc");
        const before = await scanTree(tmp, {
          mtime: true,
          ignore: (p) => p.startsWith("root") || p === "etc",
        });
        const passwd = await fingerprint("/etc/passwd");

        const error = await unpackIsolated(`${tmp}/layer.tar`, root, etcCopy);

        const after = await scanTree(tmp, {
          mtime: true,
          ignore: (p) => p.startsWith("root") || p === "etc",
        });
        // The tmp dir's own mtime changes only by the creation of root and layer.tar, before.
        assertEquals(diffTrees(before, after, ["before", "after"]), []);
        assertEquals(await fingerprint(`${etcCopy}/passwd`), passwd, "the /etc the unpack saw");
        assertEquals(await fingerprint("/etc/passwd"), passwd);
        if ("fails" in c.expect) {
          assertOk(error !== null, "expected the unpack to fail");
          assertOk(["LayerError", "UnsafeLayerError"].includes(error.name), error.message);
          assertEquals(error.entry, c.expect.fails);
          assertStringIncludes(error.message, JSON.stringify(c.expect.fails));
          if (c.expect.unsafe) assertEquals(error.name, "UnsafeLayerError", error.message);
        } else {
          if (error !== null) throw new Error(`unexpected ${error.name}: ${error.message}`);
          c.expect.inside(root, sentinel);
        }
      } finally {
        await Deno.remove(tmp, { recursive: true });
      }
    },
  });
}
