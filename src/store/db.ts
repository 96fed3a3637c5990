/**
 * The state database: one SQLite file (WAL, busy timeout) shared by every tsbox process on the
 * same root, so concurrent pulls, runs and removals never lose each other's writes.
 *
 * @module
 */
import { DatabaseSync, type SQLInputValue } from "node:sqlite";

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
];

/** A thin handle over the SQLite database with transactions that retry on contention. */
export class Database {
  readonly #db: DatabaseSync;

  private constructor(db: DatabaseSync) {
    this.#db = db;
  }

  /** Opens (creating and migrating if needed) the database at `path`. */
  static open(path: string): Database {
    const db = new DatabaseSync(path, { timeout: 30_000 });
    db.exec("PRAGMA journal_mode = WAL");
    db.exec("PRAGMA synchronous = NORMAL");
    db.exec("PRAGMA foreign_keys = ON");
    const handle = new Database(db);
    handle.#migrate();
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

  /** Runs one statement that returns no rows. */
  run(sql: string, ...params: SQLInputValue[]): { changes: number } {
    const r = this.#db.prepare(sql).run(...params);
    return { changes: Number(r.changes) };
  }

  /** The first row of a query, or undefined. */
  get<T>(sql: string, ...params: SQLInputValue[]): T | undefined {
    return this.#db.prepare(sql).get(...params) as T | undefined;
  }

  /** All rows of a query. */
  all<T>(sql: string, ...params: SQLInputValue[]): T[] {
    return this.#db.prepare(sql).all(...params) as T[];
  }

  /**
   * Runs `fn` in one write transaction (BEGIN IMMEDIATE takes the write lock up front, so two
   * processes never both read-then-write on stale data). Rolled back if `fn` throws.
   */
  transaction<T>(fn: () => T): T {
    this.#db.exec("BEGIN IMMEDIATE");
    try {
      const result = fn();
      this.#db.exec("COMMIT");
      return result;
    } catch (err) {
      this.#db.exec("ROLLBACK");
      throw err;
    }
  }

  /** Closes the database. */
  close(): void {
    this.#db.close();
  }
}
