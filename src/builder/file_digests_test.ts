import { createHash } from "node:crypto";
import { join } from "node:path";
import { Store } from "../store/mod.ts";
import { assertEquals } from "../../tests/assert.ts";
import { FileDigests } from "./file_digests.ts";

async function sha256(path: string): Promise<string> {
  return createHash("sha256").update(await Deno.readFile(path)).digest("hex");
}

Deno.test("file digests: an unchanged file is not read again; any write is seen", async () => {
  const root = await Deno.makeTempDir({ prefix: "tsbox-digests-" });
  const store = await Store.open(join(root, "store"));
  try {
    const f = join(root, "f");
    await Deno.writeTextFile(f, "aaa");
    let reads = 0;
    const hash = (p: string) => {
      reads++;
      return sha256(p);
    };
    const d = new FileDigests(store, 0);
    assertEquals(await d.digest(f, hash), await sha256(f));
    assertEquals(await d.digest(f, hash), await sha256(f));
    assertEquals(reads, 1, "the second lookup came from the cache");
    d.flush();
    // Recorded in the store: another build (another instance) reads nothing either.
    assertEquals(await new FileDigests(store, 0).digest(f, hash), await sha256(f));
    assertEquals(reads, 1);
    // Same size, mtime set back: the ctime still tells the write.
    const { mtime } = await Deno.stat(f);
    await Deno.writeTextFile(f, "bbb");
    await Deno.utime(f, mtime!, mtime!);
    assertEquals(await d.digest(f, hash), await sha256(f));
    assertEquals(reads, 2);
    // A file changed just now (within the racy window) is hashed each time, never recorded.
    const fresh = new FileDigests(store, 60_000);
    const g = join(root, "g");
    await Deno.writeTextFile(g, "ggg");
    await fresh.digest(g, hash);
    await fresh.digest(g, hash);
    assertEquals(reads, 4);
  } finally {
    store.close();
    await Deno.remove(root, { recursive: true });
  }
});
