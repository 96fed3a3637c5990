/**
 * `ADD http(s)://...`: the file is downloaded once per build into the build's own directory
 * (hashed while it streams), its sha256 checked against `--checksum=sha256:...` before any
 * layer is made, and placed as docker places it: named after the URL's last path component
 * when the destination is a directory, mode 0600 (unless `--chmod`), mtime from the
 * response's Last-Modified. The download's digest is the step's cache input, as the classic
 * builder keys it.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { posix } from "node:path";
import { AT_FDCWD, AT_SYMLINK_NOFOLLOW, fchownat } from "../../ffi/fs.ts";
import { TsboxError } from "../errors.ts";
import { resolveInRoot } from "../runtime/rootfs.ts";
import { CopyError, type CopyOptions, mkdirInRoot } from "./copy.ts";

/** A download that failed or did not match its checksum. */
export class AddUrlError extends TsboxError {
  constructor(message: string) {
    super(message);
    this.name = "AddUrlError";
  }
}

/** Whether an ADD source is a URL to download. */
export function isUrl(source: string): boolean {
  return /^https?:\/\//i.test(source);
}

/** A downloaded ADD source. */
export interface Download {
  readonly url: string;
  /** The file in the build's directory. */
  readonly path: string;
  /** `sha256:<hex>` of its bytes. */
  readonly digest: string;
  /** Base name from the URL's path ("" when the path names none). */
  readonly name: string;
  readonly lastModified?: Date;
}

/** The file name docker gives a URL's download: the last component of its path. */
export function urlFileName(url: string): string {
  const path = new URL(url).pathname;
  return decodeURIComponent(path.slice(path.lastIndexOf("/") + 1));
}

/** Downloads `url` to `path`, hashing it; `checksum` (`sha256:<hex>`) must match when given. */
export async function download(url: string, path: string, checksum?: string): Promise<Download> {
  if (checksum !== undefined && !/^sha256:[0-9a-f]{64}$/.test(checksum)) {
    throw new AddUrlError(`invalid checksum ${checksum}: expected sha256:<64 hex digits>`);
  }
  let res: Response;
  try {
    res = await fetch(url, { redirect: "follow" });
  } catch (err) {
    throw new AddUrlError(`failed to download ${url}: ${(err as Error).message}`);
  }
  if (!res.ok || !res.body) {
    await res.body?.cancel();
    throw new AddUrlError(`failed to download ${url}: ${res.status} ${res.statusText}`);
  }
  const h = createHash("sha256");
  const file = await Deno.open(path, { write: true, createNew: true, mode: 0o600 });
  try {
    for await (const chunk of res.body) {
      h.update(chunk);
      let done = 0;
      while (done < chunk.length) done += await file.write(chunk.subarray(done));
    }
  } finally {
    file.close();
  }
  const digest = `sha256:${h.digest("hex")}`;
  if (checksum !== undefined && digest !== checksum) {
    throw new AddUrlError(`checksum mismatch for ${url}: expected ${checksum}, got ${digest}`);
  }
  const lm = res.headers.get("last-modified");
  const lastModified = lm ? new Date(lm) : undefined;
  return {
    url,
    path,
    digest,
    name: urlFileName(url),
    lastModified: lastModified && !Number.isNaN(lastModified.getTime()) ? lastModified : undefined,
  };
}

/** Places a download at container path `dest` in `rootfs` (inside it when a directory). */
export async function placeDownload(
  rootfs: string,
  dl: Download,
  dest: string,
  destIsDir: boolean,
  options: CopyOptions,
): Promise<void> {
  const intoDir = destIsDir || (await lstat(resolveInRoot(rootfs, dest)))?.isDirectory === true;
  let target = dest;
  if (intoDir) {
    if (dl.name === "") {
      throw new CopyError(`cannot determine a file name from ${dl.url}: name the destination file`);
    }
    target = posix.join(dest, dl.name);
  }
  const parent = mkdirInRoot(rootfs, posix.dirname(target), options.owner);
  const host = `${parent}/${posix.basename(target)}`;
  const existing = await lstat(host);
  if (existing?.isDirectory) {
    throw new CopyError(`cannot overwrite directory ${target} with a file`);
  }
  if (existing) await Deno.remove(host);
  await Deno.copyFile(dl.path, host);
  // Owner before mode: chown clears setuid and setgid bits a --chmod gives.
  fchownat(AT_FDCWD, host, options.owner?.uid ?? 0, options.owner?.gid ?? 0, AT_SYMLINK_NOFOLLOW);
  await Deno.chmod(host, options.mode ?? 0o600);
  if (dl.lastModified) await Deno.utime(host, dl.lastModified, dl.lastModified);
}

async function lstat(path: string): Promise<Deno.FileInfo | undefined> {
  try {
    return await Deno.lstat(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}

/** The downloads of one build: each URL (with its checksum) fetched once, into `dir()`. */
export class Downloads {
  readonly #done = new Map<string, Promise<Download>>();

  constructor(private readonly dir: () => string) {}

  /** The download of `url`, fetched on first use. */
  get(url: string, checksum?: string): Promise<Download> {
    const key = `${url}\n${checksum ?? ""}`;
    let dl = this.#done.get(key);
    if (!dl) {
      dl = download(url, this.dir(), checksum);
      this.#done.set(key, dl);
      dl.catch(() => {}); // whoever asked gets the failure; it is not "unhandled"
    }
    return dl;
  }
}
