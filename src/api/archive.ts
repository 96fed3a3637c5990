/**
 * `/containers/{id}/archive` (HEAD, GET, PUT): what `docker cp` uses, over `tsbox cp`'s code
 * (src/container/copy.ts), which resolves container paths inside the container's root and moves
 * files through fds. The tar side is a private temporary directory: GET copies the path out
 * there and tars it; PUT extracts the client's tar there by fd (refusing names that leave it or
 * go through its own symlinks) and copies each top-level entry in.
 *
 * @module
 */
import { basename, join, normalize } from "node:path";
import { close, O_NOFOLLOW, O_PATH, readlinkat, S_IFMT } from "../../ffi/fs.ts";
import { copyFromContainer, extractToContainer } from "../container/copy.ts";
import { ArchiveEntryError } from "../container/tar_extract.ts";
import { adopt, openInRoot } from "../container/fd_tree.ts";
import { withRootfs } from "../container/rootfs_access.ts";
import { reconcile, requireContainer } from "../container/state.ts";
import { NotFoundError } from "../errors.ts";
import { tarStream, type TarWriterEntry } from "../image/tar_writer.ts";
import type { ApiContext } from "./context.ts";
import { badParameter } from "./errors.ts";
import type { ApiRequest, ApiResponse } from "./http.ts";

/** Largest tar a PUT may send (it is held in memory while it is extracted). */
const MAX_ARCHIVE = 256 * 1024 * 1024;

/** Go's os.FileMode bits of a unix st_mode, as docker's path stat carries them. */
function goFileMode(mode: number): number {
  let m = mode & 0o777;
  const type = mode & S_IFMT;
  if (type === 0o040000) m += 2 ** 31; // ModeDir
  else if (type === 0o120000) m += 2 ** 27; // ModeSymlink
  else if (type === 0o010000) m += 2 ** 25; // ModeNamedPipe
  else if (type === 0o140000) m += 2 ** 24; // ModeSocket
  else if (type === 0o020000) m += 2 ** 26 + 2 ** 21; // ModeDevice | ModeCharDevice
  else if (type === 0o060000) m += 2 ** 26; // ModeDevice
  if (mode & 0o4000) m += 2 ** 23;
  if (mode & 0o2000) m += 2 ** 22;
  if (mode & 0o1000) m += 2 ** 20;
  return m;
}

function containerPath(req: ApiRequest): string {
  const path = req.query.get("path");
  if (!path) throw badParameter("path is required");
  return path.startsWith("/") ? path : `/${path}`;
}

/** docker's `X-Docker-Container-Path-Stat` header of `path` in the container (lstat). */
async function pathStat(ctx: ApiContext, name: string, path: string): Promise<string> {
  const c = reconcile(ctx.store, requireContainer(ctx.store, name));
  const stat = await withRootfs(ctx.store, c, (root) => {
    let node;
    try {
      node = adopt(openInRoot(root.fd, path, O_PATH | O_NOFOLLOW));
    } catch {
      throw new NotFoundError("file or directory", `${c.name}:${path}`);
    }
    try {
      const link = (node.st.mode & S_IFMT) === 0o120000 ? readlinkat(node.fd, "") : "";
      return Promise.resolve({
        name: basename(path) || "/",
        size: node.st.size,
        mode: goFileMode(node.st.mode),
        mtime: new Date(node.st.mtime.sec * 1000 + node.st.mtime.nsec / 1e6).toISOString(),
        linkTarget: link,
      });
    } finally {
      close(node.fd);
    }
  });
  return btoa(JSON.stringify(stat));
}

/** `HEAD /containers/{id}/archive?path`: the path's stat header only. */
export async function head(ctx: ApiContext, req: ApiRequest, name: string) {
  const stat = await pathStat(ctx, name, containerPath(req));
  return { status: 200, headers: { "X-Docker-Container-Path-Stat": stat } };
}

/** The entries of host tree `dir/name`, named from `name`, for the tar writer. */
async function* treeEntries(dir: string, name: string): AsyncGenerator<TarWriterEntry> {
  const path = join(dir, name);
  const st = await Deno.lstat(path);
  const common = {
    name,
    mode: (st.mode ?? 0o644) & 0o7777,
    mtime: Math.floor((st.mtime?.getTime() ?? 0) / 1000),
    uid: st.uid ?? 0,
    gid: st.gid ?? 0,
  };
  if (st.isSymlink) {
    yield { ...common, type: "symlink", target: await Deno.readLink(path) };
  } else if (st.isDirectory) {
    yield { ...common, name: `${name}/`, type: "directory" };
    const names: string[] = [];
    for await (const e of Deno.readDir(path)) names.push(e.name);
    for (const n of names.sort()) yield* treeEntries(dir, `${name}/${n}`);
  } else if (st.isFile) {
    const file = await Deno.open(path, { read: true });
    yield { ...common, type: "file", size: st.size, body: file.readable };
  }
  // Devices, fifos and sockets are not copied out (as `tsbox cp`).
}

/** `GET /containers/{id}/archive?path`: a tar of the path, its stat in a header. */
export async function get(ctx: ApiContext, req: ApiRequest, name: string): Promise<ApiResponse> {
  const path = containerPath(req);
  const stat = await pathStat(ctx, name, path);
  const c = reconcile(ctx.store, requireContainer(ctx.store, name));
  const tmp = await Deno.makeTempDir({ prefix: "tsbox-api-cp-" });
  const base = basename(normalize(path)) || ".";
  try {
    await copyFromContainer(ctx.store, c, path, join(tmp, base === "." ? "root" : base));
  } catch (err) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw err;
  }
  async function* body(): AsyncGenerator<Uint8Array> {
    try {
      const reader = tarStream(treeEntries(tmp, base === "." ? "root" : base)).getReader();
      try {
        for (;;) {
          if (req.signal.aborted) return;
          const { value, done } = await reader.read();
          if (done) return;
          yield value;
        }
      } finally {
        await reader.cancel().catch(() => {});
      }
    } finally {
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
    }
  }
  return {
    status: 200,
    headers: { "Content-Type": "application/x-tar", "X-Docker-Container-Path-Stat": stat },
    body: body(),
  };
}

/**
 * `PUT /containers/{id}/archive?path`: extracts the tar into the directory `path` of the
 * container (which must exist). Names that leave the archive's root, and entries below one of
 * its own symlinks, are refused.
 */
export async function put(ctx: ApiContext, req: ApiRequest, name: string) {
  const path = containerPath(req);
  const c = reconcile(ctx.store, requireContainer(ctx.store, name));
  const stat = JSON.parse(atob(await pathStat(ctx, name, path))) as { mode: number };
  if (stat.mode < 2 ** 31) throw badParameter(`extraction point is not a directory: ${path}`);
  const bytes = await req.body(MAX_ARCHIVE);
  // Extracted by fd (tar_extract.ts, as `tsbox cp -`): an entry below one of the archive's own
  // symlinks (`a` -> /etc, then `a/passwd`) or above its root is refused, never followed.
  try {
    await extractToContainer(ctx.store, c, ReadableStream.from([bytes]), path);
  } catch (err) {
    if (err instanceof ArchiveEntryError) throw badParameter(err.message);
    throw err;
  }
  return { status: 200 };
}
