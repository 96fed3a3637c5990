/**
 * What `load` reads an archive into and the checks both archive formats share: the spool (each
 * regular file written to disk and hashed on the way in, links kept as aliases), the plans a
 * format's reader makes (load_docker.ts, load_oci.ts), and small bounded readers of its files.
 *
 * @module
 */
import { join, posix } from "node:path";
import { createHash } from "node:crypto";
import { type Compression, MediaType, parseImageConfig } from "../../registry/manifest.ts";
import { parseReference } from "../../registry/reference.ts";
import { TsboxError } from "../errors.ts";
import { DigestMismatchError } from "../store/digest.ts";
import { TarReader } from "./tar.ts";

/** The archive cannot be loaded: malformed, incomplete, or its content does not match its digests. */
export class ArchiveError extends TsboxError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ArchiveError";
  }
}

/** A regular file of the archive, spooled to disk. */
export interface Spooled {
  path: string;
  size: number;
  digest: string;
}

/** What the archive holds: files by cleaned name, links as aliases. */
export interface Spool {
  dir: string;
  files: Map<string, Spooled>;
  aliases: Map<string, string>;
}

/** A layer of an image to load, found in the archive. */
export interface LayerPlan {
  diffId: string;
  file: Spooled;
  compression: Compression;
  /** The blob as recorded for the image (digest, type, size). */
  blobDigest: string;
  mediaType: string;
  blobSize: number;
  /** Whether the archive's file becomes the blob (false: the store has a blob for it). */
  storeBlob: boolean;
}

/** An image to load. */
export interface ImagePlan {
  configBytes: Uint8Array;
  id: string;
  layers: LayerPlan[];
  manifest?: { bytes: Uint8Array; digest: string; mediaType: string };
  tags: string[];
}

/**
 * An image index of an archive under its names (an OCI archive of a multi-platform image, as
 * `save --platform a,b --format oci` or `skopeo copy --all ... oci-archive:` write it): recorded
 * as the store's image index of its variants, the names tagged to `tagged`.
 */
export interface IndexPlan {
  /** Full references naming the index. */
  tags: string[];
  /** One image (a plan's id) per platform, `os/architecture[/variant]`, in index order. */
  entries: { platform: string; imageId: string }[];
  /** The variant the names' tags point at: the host's, else the first. */
  tagged: string;
}

/** The largest JSON file of an archive read. */
const MAX_JSON = 16 << 20;
const decoder = new TextDecoder();

/** Cleans an archive path: no leading `/` or `./`, no `.` or `..` components. */
export function clean(name: string): string {
  const normal = posix.normalize(`/${name}`);
  return normal.replace(/^\/+/, "").replace(/\/+$/, "");
}

/** Spools every regular file of the archive into `dir`, hashing it on the way in. */
export async function spoolArchive(input: ReadableStream<Uint8Array>, dir: string): Promise<Spool> {
  const files = new Map<string, Spooled>();
  const aliases = new Map<string, string>();
  let n = 0;
  try {
    for await (const entry of new TarReader(input)) {
      const name = clean(entry.header.name);
      if (!name) continue;
      if (entry.header.type === "symlink") {
        aliases.set(name, clean(posix.join(posix.dirname(name), entry.header.linkname)));
      } else if (entry.header.type === "hardlink") {
        aliases.set(name, clean(entry.header.linkname));
      } else if (entry.header.type === "file") {
        const path = join(dir, String(n++));
        const file = await Deno.open(path, { write: true, createNew: true, mode: 0o600 });
        const hash = createHash("sha256");
        let size = 0;
        try {
          for await (const chunk of entry.chunks()) {
            hash.update(chunk);
            size += chunk.byteLength;
            for (let off = 0; off < chunk.byteLength;) {
              off += await file.write(chunk.subarray(off));
            }
          }
        } finally {
          file.close();
        }
        files.set(name, { path, size, digest: `sha256:${hash.digest("hex")}` });
      }
    }
  } catch (err) {
    throw new ArchiveError(`reading the archive failed: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return { dir, files, aliases };
}

/** The spooled file `name` (links followed), or an ArchiveError naming `what`. */
export function lookup(spool: Spool, name: string, what: string): Spooled {
  let key = clean(name);
  for (let hops = 0; hops < 16 && !spool.files.has(key) && spool.aliases.has(key); hops++) {
    key = spool.aliases.get(key)!;
  }
  const file = spool.files.get(key);
  if (!file) throw new ArchiveError(`the archive lacks ${what} ${JSON.stringify(name)}`);
  return file;
}

/** A small JSON file's bytes (an implausibly large one is refused). */
export async function readJson(file: Spooled, what: string): Promise<Uint8Array> {
  if (file.size > MAX_JSON) {
    throw new ArchiveError(`${what} is implausibly large (${file.size} bytes)`);
  }
  return await Deno.readFile(file.path);
}

/** Parses JSON, or an ArchiveError naming `what`. */
export function parseJson<T>(bytes: Uint8Array, what: string): T {
  try {
    return JSON.parse(decoder.decode(bytes)) as T;
  } catch (err) {
    throw new ArchiveError(`${what} is not valid JSON: ${(err as Error).message}`);
  }
}

/** A 64-hex name (`<hex>.json`, `blobs/sha256/<hex>`) promises that digest: hold it to it. */
export function checkNamedDigest(name: string, file: Spooled, what: string): void {
  const m = /(?:^|\/)([a-f0-9]{64})(?:\.json)?$/.exec(clean(name));
  if (m && `sha256:${m[1]}` !== file.digest) {
    throw new DigestMismatchError(what, `sha256:${m[1]}`, file.digest);
  }
}

/** Compression of a layer file by its first bytes (docker archives hold plain tars, others may not). */
export async function sniff(file: Spooled): Promise<Compression> {
  const f = await Deno.open(file.path);
  try {
    const head = new Uint8Array(4);
    const got = await f.read(head) ?? 0;
    if (got >= 2 && head[0] === 0x1f && head[1] === 0x8b) return "gzip";
    if (got >= 4 && head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) {
      return "zstd";
    }
    return "none";
  } finally {
    f.close();
  }
}

/** docker's layer media type for each compression. */
export const DOCKER_LAYER_TYPE: Record<Compression, string> = {
  none: MediaType.DockerLayer,
  gzip: MediaType.DockerLayerGzip,
  zstd: MediaType.DockerLayerZstd,
};

/** The config's diff_ids, or an ArchiveError. */
export function diffIdsOf(configBytes: Uint8Array, what: string): string[] {
  try {
    return parseImageConfig(configBytes).rootfs.diff_ids;
  } catch (err) {
    throw new ArchiveError(`${what}: invalid image config: ${(err as Error).message}`);
  }
}

/** A tag of the archive as a full reference (a digest is refused). */
export function fullTag(name: string): string {
  try {
    const ref = parseReference(name);
    if (ref.digest) throw new ArchiveError(`archive tag ${JSON.stringify(name)} has a digest`);
    return ref.toString();
  } catch (err) {
    if (err instanceof ArchiveError) throw err;
    throw new ArchiveError(`archive tag ${JSON.stringify(name)}: ${(err as Error).message}`);
  }
}
