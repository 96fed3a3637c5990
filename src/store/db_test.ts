import { join } from "../path.ts";
import { assertEquals, assertMatch, assertOk, assertThrows } from "../../tests/assert.ts";
import { Database, DatabaseDamagedError, DatabaseError, headerProblem } from "./db.ts";

async function withDir(fn: (dir: string) => Promise<void> | void): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "tsbox-db-test-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** A database with a few pages of rows, closed (so its file is whole without a WAL). */
function populated(path: string): void {
  const db = Database.open(path);
  db.transaction(() => {
    for (let i = 0; i < 200; i++) {
      db.run(
        "INSERT INTO build_cache (key, state, created_at) VALUES (?, ?, ?)",
        `k${i}`,
        "x".repeat(500),
        i,
      );
    }
  });
  db.close();
}

Deno.test("a new database is made 0600 with its schema, and no temp file stays", async () => {
  await withDir((dir) => {
    const path = join(dir, "tsbox.db");
    const db = Database.open(path, { tempDir: dir });
    db.run("INSERT INTO volumes (name, created_at) VALUES ('v', 1)");
    assertEquals(db.get<{ n: string }>("SELECT name AS n FROM volumes")?.n, "v");
    for (const name of ["tsbox.db", "tsbox.db-wal", "tsbox.db-shm"]) {
      assertEquals(Deno.statSync(join(dir, name)).mode! & 0o777, 0o600, name);
    }
    db.close();
    assertEquals([...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n !== "tsbox.db"), []);
    assertEquals(headerProblem(path), undefined);
  });
});

Deno.test("an existing 0644 database and its -wal/-shm are made 0600", async () => {
  await withDir((dir) => {
    const path = join(dir, "tsbox.db");
    populated(path);
    const holder = Database.open(path); // keeps -wal and -shm in place
    for (const p of [path, `${path}-wal`, `${path}-shm`]) Deno.chmodSync(p, 0o644);
    const db = Database.open(path);
    for (const p of [path, `${path}-wal`, `${path}-shm`]) {
      assertEquals(Deno.statSync(p).mode! & 0o777, 0o600, p);
    }
    db.close();
    holder.close();
  });
});

const damaged: [string, (path: string) => void, RegExp][] = [
  ["0-byte", (p) => Deno.writeFileSync(p, new Uint8Array()), /empty: 0 bytes/],
  [
    "truncated",
    (p) => {
      populated(p);
      Deno.truncateSync(p, Math.floor(Deno.statSync(p).size / 2));
    },
    /truncated/,
  ],
  [
    "truncated inside its header",
    (p) => {
      populated(p);
      Deno.truncateSync(p, 60);
    },
    /not an SQLite database/,
  ],
  [
    "garbage",
    (p) => Deno.writeFileSync(p, crypto.getRandomValues(new Uint8Array(8192))),
    /not an SQLite database/,
  ],
];

for (const [what, make, reason] of damaged) {
  Deno.test(`a ${what} database is refused, named, and left byte for byte`, async () => {
    await withDir((dir) => {
      const path = join(dir, "tsbox.db");
      make(path);
      const before = Deno.readFileSync(path);
      const err = assertThrows(() => Database.open(path, { tempDir: dir }), DatabaseDamagedError);
      assertMatch(err.message, reason);
      assertOk(err.message.includes(path), err.message);
      assertEquals(err.exitCode, 125);
      assertEquals(Deno.readFileSync(path), before);
      assertEquals([...Deno.readDirSync(dir)].map((e) => e.name), ["tsbox.db"]);
    });
  });
}

Deno.test("SQLite's errors name the statement and the database file", async () => {
  await withDir((dir) => {
    const path = join(dir, "tsbox.db");
    const db = Database.open(path);
    const err = assertThrows(() => db.run("INSERT INTO nowhere VALUES (1)"), DatabaseError);
    assertMatch(err.message, /^database .*tsbox\.db: INSERT INTO nowhere: no such table/);
    db.close();
  });
});

Deno.test("a failing transaction throws its own error, not the rollback's", async () => {
  await withDir((dir) => {
    const db = Database.open(join(dir, "tsbox.db"));
    const err = assertThrows(() =>
      db.transaction(() => {
        db.run("INSERT INTO volumes (name, created_at) VALUES ('v', 1)");
        throw new Error("the real cause");
      })
    );
    assertEquals(err.message, "the real cause");
    assertEquals(db.get("SELECT name FROM volumes"), undefined);
    db.close();
  });
});
