/**
 * The change set of a container (its overlay upper dir) as the tar entries of an image layer,
 * for `commit`. The upper dir is what the container writes: a running one (`--pause=false`)
 * may swap a file for a symlink to a host path while it is read, so the tree is walked by fd
 * only (fd_tree.ts) and a file's bytes come from the pinned file itself, never from a path.
 *
 * Overlay whiteouts become `.wh.NAME`, opaque directories get `.wh..wh..opq`; the mount targets
 * the runtime adds to every container (/dev, /proc, /sys, /etc/hosts, ...) are left out when
 * the image lacked them, as docker keeps them in an init layer that commit does not take.
 *
 * @module
 */
import { close, read, readlinkat, S_IFDIR, S_IFLNK, S_IFREG } from "../../ffi/fs.ts";
import type { TarWriterEntry } from "../image/tar_writer.ts";
import { hasXattr, isWhiteout, OPAQUE_XATTRS, RUNTIME_TARGETS } from "./diff.ts";
import { existsIn } from "./diff.ts";
import { listDir, type Node, nodeOf, openChild, reopen, typeOf } from "./fd_tree.ts";

/** Reads at most `size` bytes of regular file `node`, padded to `size` if it shrank meanwhile. */
async function* fileData(node: Node, size: number): AsyncGenerator<Uint8Array> {
  const fd = reopen(node);
  try {
    const buf = new Uint8Array(256 * 1024);
    let written = 0;
    while (written < size) {
      const n = read(fd, buf.subarray(0, Math.min(buf.length, size - written)));
      if (n === 0) break;
      written += n;
      yield buf.slice(0, n);
    }
    if (written < size) yield new Uint8Array(size - written);
  } finally {
    close(fd);
  }
}

/**
 * The layer entries of the upper dir open as `upper` (an fd, not taken over), parents before
 * children, in name order. `lower` are fds of the image's layer dirs, top first, to tell a
 * runtime mount target the container added from one the image had. `owner` maps the host ids
 * found in the upper dir to the image's (a container in a user namespace writes shifted ids).
 */
export async function* upperEntries(
  upper: number,
  lower: readonly number[],
  owner: (uid: number, gid: number) => { uid: number; gid: number } = (uid, gid) => ({ uid, gid }),
): AsyncGenerator<TarWriterEntry> {
  async function* walk(dir: Node, prefix: string): AsyncGenerator<TarWriterEntry> {
    for (const { name } of listDir(dir)) {
      const node = openChild(dir.fd, name);
      if (!node) continue; // removed since it was listed
      try {
        yield* entry(node, prefix ? `${prefix}/${name}` : name, prefix, name);
      } finally {
        close(node.fd);
      }
    }
  }
  async function* entry(
    node: Node,
    rel: string,
    prefix: string,
    name: string,
  ): AsyncGenerator<TarWriterEntry> {
    const st = node.st;
    const mtime = st.mtime.sec;
    if (isWhiteout(node)) {
      const wh = prefix ? `${prefix}/.wh.${name}` : `.wh.${name}`;
      yield { type: "file", name: wh, size: 0, body: new Uint8Array(), mode: 0o644, mtime };
      return;
    }
    if (RUNTIME_TARGETS.has(rel) && !existsIn(lower, rel)) return;
    const ids = owner(st.uid, st.gid);
    const mode = st.mode & 0o7777;
    const type = typeOf(node);
    if (type === S_IFDIR) {
      yield { type: "directory", name: rel, mode, mtime, ...ids };
      if (hasXattr(node, OPAQUE_XATTRS)) {
        yield { type: "file", name: `${rel}/.wh..wh..opq`, size: 0, body: new Uint8Array(), mtime };
      }
      yield* walk(node, rel);
    } else if (type === S_IFLNK) {
      yield { type: "symlink", name: rel, target: readlinkat(node.fd, ""), mtime, ...ids };
    } else if (type === S_IFREG) {
      yield {
        type: "file",
        name: rel,
        size: st.size,
        body: fileData(node, st.size),
        mode,
        mtime,
        ...ids,
      };
    }
    // Sockets, fifos and device nodes are not carried into images (as the builder's layers).
  }
  yield* walk(nodeOf(upper), "");
}
