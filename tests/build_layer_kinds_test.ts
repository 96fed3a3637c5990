/**
 * A RUN step's layer keeps what the step left (issue 23, item 5): a fifo, a device node, one
 * inode with two names (a hard link entry) and a file capability (the `security.capability`
 * xattr, written by a tiny static helper since busybox has no setcap), checked in the layer tar
 * `save` writes (PAX `SCHILY.xattr.` records, as docker's layers), in a container of the built
 * image, and in the layer the unpacker makes when the archive is loaded into another store.
 */
import { join } from "node:path";
import { lgetxattr } from "../ffi/fs.ts";
import { TarReader } from "../src/image/tar.ts";
import { Store } from "../src/store/mod.ts";
import { assertEquals, assertMatch, assertOk } from "./assert.ts";
import { purgeRootSync } from "./cleanup.ts";
import { tempRoot, tsbox } from "./cli.ts";
import { fixtureRegistry } from "./fixtures/images.ts";

const isRoot = Deno.uid() === 0;
const dec = new TextDecoder();
/** VFS_CAP_REVISION_2 with the effective bit, permitting CAP_NET_BIND_SERVICE (bit 10). */
const CAP = new Uint8Array([1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);

const SETCAP_C = `#include <sys/xattr.h>
static const unsigned char cap[20] = {${CAP.join(",")}};
int main(int argc, char **argv) {
  return argc == 2 && setxattr(argv[1], "security.capability", cap, sizeof cap, 0) == 0 ? 0 : 1;
}
`;

async function mustRun(root: string, args: string[]): Promise<string> {
  const r = await tsbox(args, { root });
  if (r.code !== 0) throw new Error(`tsbox ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

/** The entries of the built image's top layer, from the docker archive `save` wrote. */
async function topLayerEntries(archive: string) {
  const outer = new TarReader((await Deno.open(archive)).readable);
  const files = new Map<string, Uint8Array>();
  for await (const e of outer) files.set(e.header.name, await e.bytes());
  const manifest = JSON.parse(dec.decode(files.get("manifest.json")!)) as { Layers: string[] }[];
  const top = files.get(manifest[0].Layers.at(-1)!)!;
  const out = new Map<
    string,
    { type: string; linkname: string; dev: string; xattrs: Map<string, Uint8Array> }
  >();
  for await (const e of new TarReader(ReadableStream.from([top]))) {
    const h = e.header;
    out.set(h.name.replace(/^\.?\//, ""), {
      type: h.type,
      linkname: h.linkname.replace(/^\.?\//, ""),
      dev: `${h.devmajor},${h.devminor}`,
      xattrs: h.xattrs,
    });
  }
  return out;
}

Deno.test({
  name: "build: a RUN's fifo, device node, hard link and file capability reach the image",
  ignore: !isRoot,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const fx = await fixtureRegistry();
    const { root } = await tempRoot();
    const { root: other } = await tempRoot();
    const ctx = await Deno.makeTempDir({ prefix: "tsbox-ctx-" });
    try {
      await mustRun(root, ["pull", "-q", fx.refs.busybox]);
      await Deno.writeTextFile(join(ctx, "setcap.c"), SETCAP_C);
      const cc = await new Deno.Command("cc", {
        args: ["-static", "-Os", "-o", join(ctx, "setcap"), join(ctx, "setcap.c")],
      }).output();
      assertOk(cc.success, dec.decode(cc.stderr));
      await Deno.writeTextFile(
        join(ctx, "Dockerfile"),
        `FROM ${fx.refs.busybox}
COPY setcap /usr/local/bin/setcap
RUN mkfifo /ff && echo x > /a && ln /a /b && mknod /nul c 1 3 && setcap /a
`,
      );
      await mustRun(root, ["build", "-q", "-t", "kinds:1", ctx]);

      // The layer tar, as save writes it.
      const archive = join(ctx, "kinds.tar");
      await mustRun(root, ["save", "-o", archive, "kinds:1"]);
      const entries = await topLayerEntries(archive);
      assertEquals(entries.get("ff")?.type, "fifo");
      assertEquals([entries.get("nul")?.type, entries.get("nul")?.dev], ["char", "1,3"]);
      const a = entries.get("a");
      const b = entries.get("b");
      assertOk(a && b, `a and b in ${[...entries.keys()].join(" ")}`);
      // One inode, two names: the first a file, the second a hard link to it.
      assertEquals([a.type, b.type, b.linkname], ["file", "hardlink", "a"]);
      assertEquals(a.xattrs.get("security.capability"), CAP);

      // A container of the built image.
      const out = await mustRun(root, [
        "run",
        "--rm",
        "kinds:1",
        "sh",
        "-c",
        "[ -p /ff ] && [ -c /nul ] && stat -c '%h %i' /a /b && ls -li /a /b && cat /b",
      ]);
      const [statA, statB] = out.split("\n");
      assertMatch(statA, /^2 \d+$/);
      assertEquals(statB, statA, "/a and /b are one inode with two links");
      assertOk(out.trimEnd().endsWith("x"), out);

      // The unpacker restores all of it from the archive in another store.
      await mustRun(other, ["load", "-q", "-i", archive]);
      const store = await Store.open(other);
      try {
        const image = store.findImage("kinds:1");
        assertOk(image);
        const dir = store.layers.dir(image.layers.at(-1)!.diffId);
        const [fa, fb] = [await Deno.lstat(join(dir, "a")), await Deno.lstat(join(dir, "b"))];
        assertEquals([fa.ino, fa.nlink], [fb.ino, 2]);
        assertOk((await Deno.lstat(join(dir, "ff"))).isFifo);
        const nul = await Deno.lstat(join(dir, "nul"));
        assertEquals([nul.isCharDevice, nul.rdev], [true, 259]);
        assertEquals(lgetxattr(join(dir, "a"), "security.capability"), CAP);
      } finally {
        store.close();
      }
      const loaded = await mustRun(other, ["run", "--rm", "kinds:1", "stat", "-c", "%h", "/b"]);
      assertEquals(loaded.trim(), "2");
    } finally {
      await Deno.remove(ctx, { recursive: true }).catch(() => {});
      purgeRootSync(root);
      purgeRootSync(other);
    }
  },
});
