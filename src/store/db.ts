/**
 * The state database: one SQLite file (WAL, busy timeout) shared by every tsbox process on the
 * same root, so concurrent pulls, runs and removals never lose each other's writes.
 *
 * A store is new only when its database file does not exist: the database is then made under a
 * temp name and linked into place whole, so no process ever meets a half-made one, and a
 * database file that exists but is empty, cut short or not SQLite is refused, never taken for a
 * new store and never written over. The file and its -wal/-shm are 0600: they hold containers'
 * environments. Reading needs no free space: when the disk is too full for SQLite's shared
 * memory file, a database without pending WAL content is read as an immutable file.
 *
 * @module
 */
import { DatabaseSync, type SQLInputValue, type StatementSync } from "node:sqlite";
import { join } from "../path.ts";
import { TsboxError } from "../errors.ts";
import { ownedTempPrefix } from "./owner.ts";

/** Schema migrations, applied in order; the index + 1 is the `user_version` after each. */
const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE layers (
    diff_id    TEXT PRIMARY KEY,          -- sha256:<hex> of the uncompressed tar
    short_id   TEXT NOT NULL UNIQUE,      -- name of the l/<short_id> link used in overlay options
    size       INTEGER NOT NULL           -- uncompressed tar size in bytes
  );
  CREATE TABLE images (
    id                  TEXT PRIMARY KEY, -- sha256:<hex> of the config blob
    config              TEXT NOT NULL,    -- the config JSON exactly as stored in its blob
    manifest_digest     TEXT NOT NULL,    -- the platform-specific image manifest
    manifest_media_type TEXT NOT NULL,
    created             TEXT,             -- config.created
    added_at            INTEGER NOT NULL  -- ms since epoch, when this store first had it
  );
  CREATE TABLE image_layers (
    image_id    TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    position    INTEGER NOT NULL,         -- 0 = bottom layer
    diff_id     TEXT NOT NULL REFERENCES layers(diff_id),
    blob_digest TEXT NOT NULL,            -- compressed blob as the manifest names it
    media_type  TEXT NOT NULL,
    blob_size   INTEGER NOT NULL,
    PRIMARY KEY (image_id, position)
  );
  CREATE INDEX image_layers_diff_id ON image_layers(diff_id);
  CREATE TABLE tags (
    name     TEXT PRIMARY KEY,            -- full reference: docker.io/library/busybox:latest
    image_id TEXT NOT NULL REFERENCES images(id)
  );
  CREATE TABLE repo_digests (
    repository TEXT NOT NULL,             -- docker.io/library/busybox
    digest     TEXT NOT NULL,             -- what was pulled by: index or manifest digest
    image_id   TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    PRIMARY KEY (repository, digest)
  );
  `,
  `
  CREATE TABLE containers (
    id               TEXT PRIMARY KEY,       -- 64 hex digits
    name             TEXT NOT NULL UNIQUE,   -- without docker's leading '/'
    image_id         TEXT NOT NULL,          -- sha256:<hex> of the image config
    image_name       TEXT NOT NULL,          -- as the user typed it
    config           TEXT NOT NULL,          -- the full run configuration as JSON
    state            TEXT NOT NULL,          -- created | running | paused | restarting | exited
    pid              INTEGER,                -- container PID 1 on the host, while running
    pid_start        INTEGER,                -- its start time (/proc/PID/stat field 22)
    supervisor_pid   INTEGER,
    supervisor_start INTEGER,
    exit_code        INTEGER,
    oom_killed       INTEGER NOT NULL DEFAULT 0,
    error            TEXT,                   -- why the last start failed, if it did
    created_at       INTEGER NOT NULL,       -- ms since epoch
    started_at       INTEGER,
    finished_at      INTEGER,
    restart_count    INTEGER NOT NULL DEFAULT 0,
    stop_requested   INTEGER NOT NULL DEFAULT 0 -- a user stop: the restart policy stands down
  );
  CREATE INDEX containers_image_id ON containers(image_id);
  `,
  `
  CREATE TABLE build_cache (
    key        TEXT PRIMARY KEY,          -- sha256 of parent state, instruction, args, files
    state      TEXT NOT NULL,             -- the resulting build state (config JSON + layers)
    created_at INTEGER NOT NULL           -- ms since epoch
  );
  `,
  `
  CREATE TABLE port_bindings (
    container_id   TEXT NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
    host_ip        TEXT NOT NULL,          -- 0.0.0.0, ::, 127.0.0.1, ...
    host_port      INTEGER NOT NULL,
    container_port INTEGER NOT NULL,
    proto          TEXT NOT NULL,          -- tcp | udp
    PRIMARY KEY (host_ip, host_port, proto)
  );
  CREATE INDEX port_bindings_container ON port_bindings(container_id);
  `,
  `
  CREATE TABLE volumes (
    name       TEXT PRIMARY KEY,          -- [a-zA-Z0-9][a-zA-Z0-9_.-]+; 64 hex digits if anonymous
    created_at INTEGER NOT NULL,          -- ms since epoch
    labels     TEXT NOT NULL DEFAULT '{}', -- JSON object
    anonymous  INTEGER NOT NULL DEFAULT 0 -- made for one container (-v /path, image VOLUME)
  );
  CREATE TABLE volume_mounts (
    volume       TEXT NOT NULL REFERENCES volumes(name),
    container_id TEXT NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
    destination  TEXT NOT NULL,           -- path inside the container
    read_only    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (container_id, destination)
  );
  CREATE INDEX volume_mounts_volume ON volume_mounts(volume);
  `,
  `
  -- State.Health as JSON (src/container/health.ts); null while the container has none.
  ALTER TABLE containers ADD COLUMN health TEXT;
  `,
  `
  CREATE TABLE networks (
    id         TEXT PRIMARY KEY,          -- 64 hex digits
    name       TEXT NOT NULL UNIQUE,      -- bridge (the default) or a user network's name
    driver     TEXT NOT NULL DEFAULT 'bridge',
    bridge     TEXT NOT NULL UNIQUE,      -- the host interface: tsbox0, tsbox-<id 8>
    subnet     TEXT NOT NULL,             -- IPv4 CIDR
    gateway    TEXT NOT NULL,             -- the bridge's address
    internal   INTEGER NOT NULL DEFAULT 0, -- no route out, no masquerade
    labels     TEXT NOT NULL DEFAULT '{}', -- JSON object
    created_at INTEGER NOT NULL           -- ms since epoch
  );
  CREATE TABLE network_leases (
    network_id TEXT NOT NULL REFERENCES networks(id),
    address    TEXT NOT NULL,             -- IPv4, unique in its network
    holder     TEXT NOT NULL,             -- what holds it: a container id
    mac        TEXT NOT NULL,
    veth       TEXT NOT NULL,             -- the host end of the holder's veth pair
    aliases    TEXT NOT NULL DEFAULT '[]', -- JSON array of names
    created_at INTEGER NOT NULL,          -- ms since epoch
    PRIMARY KEY (network_id, address),
    UNIQUE (network_id, holder)
  );
  CREATE INDEX network_leases_holder ON network_leases(holder);
  `,
  `
  -- A network made with --ipv6: its IPv6 subnet and the bridge's IPv6 address (NULL: IPv4 only).
  -- A container's IPv6 address has its IPv4 lease's host number (src/network/cidr6.ts).
  ALTER TABLE networks ADD COLUMN subnet6 TEXT;
  ALTER TABLE networks ADD COLUMN gateway6 TEXT;
  `,
  `
  -- An IPv6 address given with --ip6 (NULL: the one with the IPv4 lease's host number).
  ALTER TABLE network_leases ADD COLUMN address6 TEXT;
  `,
  `
  -- The image index a multi-platform build records (build --platform a,b -t NAME): NAME's tag
  -- points at one variant (the host's), and every platform's image is listed here, so that
  -- run --platform picks a variant and push sends them as one index. A name whose tag moves
  -- loses its rows (src/store/mod.ts).
  CREATE TABLE image_indexes (
    name     TEXT NOT NULL,             -- full reference: 127.0.0.1:5000/app:1
    platform TEXT NOT NULL,             -- os/architecture[/variant]
    position INTEGER NOT NULL,          -- order in the index
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    PRIMARY KEY (name, platform)
  );
  CREATE INDEX image_indexes_image ON image_indexes(image_id);
  `,
];

/** A failure of the state database, naming the operation and the database file. */
export class DatabaseError extends TsboxError {
  constructor(
    /** The database file. */
    readonly path: string,
    /** What was being done: `opening`, or the statement's first words. */
    readonly operation: string,
    cause: unknown,
  ) {
    super(`database ${path}: ${operation}: ${messageOf(cause)}`, { cause });
    this.name = "DatabaseError";
  }
}

/** A database file that exists but is not a whole tsbox database: refused, left untouched. */
export class DatabaseDamagedError extends TsboxError {
  constructor(
    /** The database file. */
    readonly path: string,
    /** What is wrong with it. */
    readonly reason: string,
    options?: ErrorOptions,
  ) {
    super(
      `database ${path} is damaged (${reason}); tsbox left it as it is: restore it from a ` +
        `backup, or move it away to start an empty store`,
      options,
    );
    this.name = "DatabaseDamagedError";
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** SQLite's messages for a file that is not a (whole) database. */
const DAMAGED = /file is not a database|database disk image is malformed/;
/** SQLite's messages when it could not write (its shared-memory file, say) for lack of space. */
const NO_SPACE = /disk I\/O error|database or disk is full/;

const HEADER = new TextEncoder().encode("SQLite format 3\0");

/**
 * Why the existing file at `path` cannot be a tsbox database, from its size and its 100-byte
 * header alone (nothing is opened for writing), or undefined when it may be one.
 */
export function headerProblem(path: string): string | undefined {
  const size = Deno.statSync(path).size;
  if (size === 0) return "empty: 0 bytes";
  const header = new Uint8Array(100);
  const file = Deno.openSync(path, { read: true });
  let got = 0;
  try {
    while (got < header.length) {
      const n = file.readSync(header.subarray(got));
      if (n === null) break;
      got += n;
    }
  } finally {
    file.close();
  }
  if (got < header.length || !HEADER.every((b, i) => header[i] === b)) {
    return `not an SQLite database: no SQLite header in its first ${Math.min(size, 100)} bytes`;
  }
  const view = new DataView(header.buffer);
  const rawPageSize = view.getUint16(16);
  const pageSize = rawPageSize === 1 ? 65536 : rawPageSize;
  if (pageSize < 512 || (pageSize & (pageSize - 1)) !== 0) {
    return `not an SQLite database: page size ${rawPageSize}`;
  }
  // A checkpoint copies pages from the WAL in page order, page 1 (with the new page count)
  // first, so while one runs the file may be shorter than its header says: sizes are judged
  // only when no WAL content is pending (SQLite itself reports damage it meets otherwise).
  if (walPending(path)) return undefined;
  // The page count in the header is valid when the change counter matches version-valid-for
  // (always, for SQLite 3.7+).
  const pages = view.getUint32(28);
  const valid = view.getUint32(24) === view.getUint32(92) && pages > 0;
  if (valid && size < pages * pageSize) {
    return `truncated: ${size} bytes of ${pages * pageSize}`;
  }
  if (size % pageSize !== 0) return `truncated: ${size} bytes is not a whole number of pages`;
  return undefined;
}

/** Options of {@link Database.open}. */
export interface OpenOptions {
  /**
   * Directory (on the same filesystem) for the temp file a new database is made in; its name
   * carries this process's id, so a killed creator's file is swept. Default: the db's dir.
   */
  readonly tempDir?: string;
}

/** A thin handle over the SQLite database with transactions that retry on contention. */
export class Database {
  readonly #db: DatabaseSync;
  /**
   * Prepared statements by SQL text, the most recently used last. A statement prepared per call
   * holds its native memory until the JS wrapper is collected: 10,000 lookups (a build context's
   * file digests) then cost ~30 MB of RSS. Bounded, as some SQL is made per call.
   */
  readonly #statements = new Map<string, StatementSync>();

  private constructor(
    db: DatabaseSync,
    readonly path: string,
    /** Why the database was opened read-only (no space for SQLite's files), if it was. */
    readonly readOnlyBecause?: string,
  ) {
    this.#db = db;
  }

  /**
   * Opens the database at `path`, creating it when no file is there and migrating it if needed.
   * Throws {@link DatabaseDamagedError} for a file that is not a whole database, and
   * {@link DatabaseError} when SQLite fails.
   */
  static open(path: string, options: OpenOptions = {}): Database {
    let info: Deno.FileInfo | undefined;
    try {
      info = Deno.statSync(path);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw new DatabaseError(path, "opening", err);
    }
    if (!info) {
      Database.#create(path, options.tempDir ?? dirOf(path));
    } else {
      const problem = headerProblem(path);
      if (problem) throw new DatabaseDamagedError(path, problem);
      if (((info.mode ?? 0) & 0o077) !== 0) tighten(path, info);
    }
    const handle = Database.#openExisting(path);
    try {
      handle.#migrate();
    } catch (err) {
      handle.close();
      throw err;
    }
    return handle;
  }

  #migrate(): void {
    const current = () =>
      Number(this.get<{ v: number }>("SELECT user_version AS v FROM pragma_user_version")?.v ?? 0);
    if (current() >= MIGRATIONS.length) return;
    this.transaction(() => {
      // Re-read inside the write lock: another process may have migrated meanwhile.
      for (let v = current(); v < MIGRATIONS.length; v++) {
        this.#db.exec(MIGRATIONS[v]);
        this.#db.exec(`PRAGMA user_version = ${v + 1}`);
      }
    });
  }

  #fail(sql: string, err: unknown): never {
    if (err instanceof DatabaseError) throw err;
    if (DAMAGED.test(messageOf(err))) {
      throw new DatabaseDamagedError(this.path, messageOf(err), { cause: err });
    }
    // The statement up to its table(s): enough to say what was being done, short for one line.
    const what = sql.replace(/\s+/g, " ").trim().split(/ VALUES| WHERE| SET | ON |\(/)[0]
      .slice(0, 60).trim();
    const ro = this.readOnlyBecause
      ? ` (opened read-only, as opening it for writing failed: ${this.readOnlyBecause})`
      : "";
    throw new DatabaseError(this.path, `${what}${ro}`, err);
  }

  /** The prepared statement for `sql`, made once and kept among the last 64 used. */
  #prepare(sql: string): StatementSync {
    let st = this.#statements.get(sql);
    if (st) this.#statements.delete(sql);
    else {
      st = this.#db.prepare(sql);
      if (this.#statements.size >= 64) {
        this.#statements.delete(this.#statements.keys().next().value!);
      }
    }
    this.#statements.set(sql, st);
    return st;
  }

  /** Runs one statement that returns no rows. */
  run(sql: string, ...params: SQLInputValue[]): { changes: number } {
    try {
      const r = this.#prepare(sql).run(...params);
      return { changes: Number(r.changes) };
    } catch (err) {
      this.#fail(sql, err);
    }
  }

  /** The first row of a query, or undefined. */
  get<T>(sql: string, ...params: SQLInputValue[]): T | undefined {
    try {
      return this.#prepare(sql).get(...params) as T | undefined;
    } catch (err) {
      this.#fail(sql, err);
    }
  }

  /** All rows of a query. */
  all<T>(sql: string, ...params: SQLInputValue[]): T[] {
    try {
      return this.#prepare(sql).all(...params) as T[];
    } catch (err) {
      this.#fail(sql, err);
    }
  }

  /**
   * Runs `fn` in one write transaction (BEGIN IMMEDIATE takes the write lock up front, so two
   * processes never both read-then-write on stale data). Rolled back if `fn` throws; the error
   * of `fn` (or of COMMIT) is what is thrown, never a failure of the rollback itself.
   */
  transaction<T>(fn: () => T): T {
    try {
      this.#db.exec("BEGIN IMMEDIATE");
    } catch (err) {
      this.#fail("BEGIN IMMEDIATE", err);
    }
    try {
      const result = fn();
      try {
        this.#db.exec("COMMIT");
      } catch (err) {
        this.#fail("COMMIT", err);
      }
      return result;
    } catch (err) {
      // SQLite may have rolled back already (after a full disk, say): keep the real cause.
      if (this.#db.isTransaction) {
        try {
          this.#db.exec("ROLLBACK");
        } catch { /* the cause below is what matters */ }
      }
      throw err;
    }
  }

  /**
   * Makes a new database: schema written into a 0600 temp file (its -wal/-shm take its mode), then
   * linked to `path` whole. When another process linked its own first, that one is kept.
   */
  static #create(path: string, tempDir: string): void {
    const random = Array.from(crypto.getRandomValues(new Uint8Array(4)), (b) => b.toString(16))
      .join("");
    const temp = join(tempDir, `${ownedTempPrefix()}db-${random}`);
    try {
      Deno.mkdirSync(tempDir, { recursive: true, mode: 0o700 });
      Deno.writeFileSync(temp, new Uint8Array(), { mode: 0o600, createNew: true });
      const db = new DatabaseSync(temp, { timeout: 30_000 });
      try {
        db.exec("PRAGMA journal_mode = WAL");
        const handle = new Database(db, temp);
        handle.transaction(() => {
          MIGRATIONS.forEach((m, v) => {
            db.exec(m);
            db.exec(`PRAGMA user_version = ${v + 1}`);
          });
        });
      } finally {
        db.close();
      }
      try {
        Deno.linkSync(temp, path);
      } catch (err) {
        if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
      }
    } catch (err) {
      throw err instanceof TsboxError ? err : new DatabaseError(path, "creating", err);
    } finally {
      for (const p of [temp, `${temp}-wal`, `${temp}-shm`]) {
        try {
          Deno.removeSync(p);
        } catch { /* not made, or gone */ }
      }
    }
  }

  /**
   * Opens an existing database. When SQLite cannot set up its shared memory for lack of space
   * and no WAL content is pending, the file is opened immutable (no lock, no -shm, reads only),
   * so that listing images and containers works on a full disk.
   */
  static #openExisting(path: string): Database {
    let db: DatabaseSync | undefined;
    try {
      db = new DatabaseSync(path, { timeout: 30_000 });
      db.exec("PRAGMA journal_mode = WAL");
      db.exec("PRAGMA synchronous = NORMAL");
      db.exec("PRAGMA foreign_keys = ON");
      return new Database(db, path);
    } catch (err) {
      db?.close();
      const message = messageOf(err);
      if (DAMAGED.test(message)) throw new DatabaseDamagedError(path, message, { cause: err });
      if (!NO_SPACE.test(message) || walPending(path)) {
        throw new DatabaseError(path, "opening", err);
      }
      try {
        // The pathname setter escapes what a file name may hold ("?", "#", blanks).
        const url = new URL("file:///");
        url.pathname = path;
        url.search = "immutable=1";
        const ro = new DatabaseSync(url, { readOnly: true });
        ro.exec("PRAGMA foreign_keys = ON");
        return new Database(ro, path, `${message}; is the disk full?`);
      } catch {
        throw new DatabaseError(path, "opening", err);
      }
    }
  }

  /** Closes the database. */
  close(): void {
    this.#statements.clear();
    this.#db.close();
  }
}

function dirOf(path: string): string {
  return path.slice(0, Math.max(1, path.lastIndexOf("/")));
}

/** Makes `path` 0600 with its -wal and -shm: an older tsbox made them 0644. */
function tighten(path: string, info: Deno.FileInfo): void {
  if (info.uid !== Deno.uid()) return;
  for (const p of [path, `${path}-wal`, `${path}-shm`]) {
    try {
      Deno.chmodSync(p, 0o600);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw new DatabaseError(path, "chmod 0600", err);
    }
  }
}

/** Whether the WAL file holds frames not yet in the database file. */
function walPending(path: string): boolean {
  try {
    return Deno.statSync(`${path}-wal`).size > 0;
  } catch {
    return false;
  }
}
