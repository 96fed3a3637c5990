/**
 * A cache of build context files' content digests keyed by their metadata (BuildKit's
 * approach): a file whose path, device, inode, size, mtime and ctime (nanoseconds) are what they
 * were when it was hashed is not read again, so an unchanged rebuild hashes nothing and a
 * one-file edit hashes one file. Any write to a file moves its ctime, which a user cannot set
 * back. A file changed within the last seconds is hashed but not recorded (git's "racy" case:
 * a write in the same clock tick as the hash could leave the metadata unchanged).
 *
 * Kept in the store's database, in a table made on first use: derived facts whose loss costs
 * only a rehash.
 *
 * @module
 */
import { AT_FDCWD, AT_SYMLINK_NOFOLLOW, fstatat, type Timespec } from "../../ffi/fs.ts";
import type { Store } from "../store/mod.ts";

/** What the cache needs of a file's metadata (lstat's, with nanosecond times). */
interface Meta {
  readonly dev: bigint;
  readonly ino: bigint;
  readonly size: number;
  readonly mtimeNs: bigint;
  readonly ctimeNs: bigint;
}

const TABLE = `CREATE TABLE IF NOT EXISTS context_file_digests (
  path     TEXT PRIMARY KEY,  -- absolute host path of a context file
  meta     TEXT NOT NULL,     -- dev:ino:size:mtime_ns:ctime_ns when it was hashed
  digest   TEXT NOT NULL      -- sha256 of its content
)`;

/** Rows written in one transaction at most: memory stays bounded for any context size. */
const BATCH = 1000;

/** Content digests of context files, looked up and recorded by metadata. */
export class FileDigests {
  readonly #store: Store;
  readonly #racyNs: bigint;
  /** Recorded and not yet written: path -> [metadata key, digest]. */
  #pending = new Map<string, [string, string]>();

  /** `racyMs`: a file changed less than this long ago is hashed but not recorded. */
  constructor(store: Store, racyMs = 2000) {
    this.#store = store;
    this.#racyNs = BigInt(racyMs) * 1_000_000n;
    store.db.run(TABLE);
  }

  /** The content digest of regular file `path`, from the cache when its metadata is unchanged. */
  async digest(path: string, hash: (path: string) => Promise<string>): Promise<string> {
    const before = meta(path);
    const key = metaKey(before);
    const pending = this.#pending.get(path);
    if (pending?.[0] === key) return pending[1];
    const row = this.#store.db.get<{ meta: string; digest: string }>(
      "SELECT meta, digest FROM context_file_digests WHERE path = ?",
      path,
    );
    if (row && row.meta === key) return row.digest;
    const digest = await hash(path);
    // Recorded only when the file held still while it was read and is not freshly written.
    const after = meta(path);
    const now = BigInt(Date.now()) * 1_000_000n;
    if (metaKey(after) === key && now - before.ctimeNs >= this.#racyNs) {
      this.#pending.set(path, [key, digest]);
      if (this.#pending.size >= BATCH) this.flush();
    }
    return digest;
  }

  /** Writes what was recorded since the last flush. */
  flush(): void {
    const rows = this.#pending;
    this.#pending = new Map();
    if (rows.size === 0) return;
    this.#store.db.transaction(() => {
      for (const [path, [key, digest]] of rows) {
        this.#store.db.run(
          "INSERT OR REPLACE INTO context_file_digests (path, meta, digest) VALUES (?, ?, ?)",
          path,
          key,
          digest,
        );
      }
    });
  }
}

function metaKey(m: Meta): string {
  return `${m.dev}:${m.ino}:${m.size}:${m.mtimeNs}:${m.ctimeNs}`;
}

/** lstat with nanosecond times (Deno.FileInfo's Dates keep milliseconds only). */
function meta(path: string): Meta {
  const st = fstatat(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW);
  const ns = (t: Timespec) => BigInt(t.sec) * 1_000_000_000n + BigInt(t.nsec);
  return {
    dev: st.dev,
    ino: st.ino,
    size: st.size,
    mtimeNs: ns(st.mtime),
    ctimeNs: ns(st.ctime),
  };
}
