import { assertEquals, assertRejects, assertThrows } from "../../tests/assert.ts";
import { BlobStore } from "./blobs.ts";
import { sha256Digest } from "./digest.ts";
import { DigestMismatchError } from "./digest_format.ts";

// A blob written by another thread (pull's layer workers): this thread counts, the writer
// hashes what it wrote, and nothing is published unless that digest and size are the ones due.

const bytes = new TextEncoder().encode("0123456789");
const digest = sha256Digest(bytes);

async function withStore(fn: (blobs: BlobStore, root: string) => Promise<void>): Promise<void> {
  const root = await Deno.makeTempDir();
  try {
    await fn(new BlobStore(root), root);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

Deno.test("an external blob is published once the writer's digest and size are the due ones", async () => {
  await withStore(async (blobs) => {
    const pending = await blobs.begin(digest, bytes.length, { external: true });
    await pending.write(bytes);
    // Only counted here: the temp file is the other thread's to fill.
    assertEquals(pending.bytes, 10);
    assertEquals((await Deno.stat(pending.temp)).size, 0);
    await Deno.writeFile(pending.temp, bytes);
    pending.adopt(digest, bytes.length);
    await pending.commit();
    await pending.discard();
    assertEquals(await blobs.read(digest), bytes);
  });
});

Deno.test("an external blob is not published without, or against, its writer's word", async () => {
  await withStore(async (blobs, root) => {
    const cases: [string, (p: Awaited<ReturnType<BlobStore["begin"]>>) => void, string][] = [
      ["nothing adopted", () => {}, "nothing written"],
      ["another digest", (p) => p.adopt(sha256Digest("other"), 10), sha256Digest("other")],
      ["fewer bytes written than passed", (p) => p.adopt(digest, 9), "9 bytes"],
    ];
    for (const [what, adopt, message] of cases) {
      const pending = await blobs.begin(digest, bytes.length, { external: true });
      await pending.write(bytes);
      adopt(pending);
      assertThrows(() => pending.verify(), DigestMismatchError, message);
      await assertRejects(() => pending.commit(), DigestMismatchError);
      await pending.discard();
      assertEquals(await blobs.has(digest), false, what);
      assertEquals([...Deno.readDirSync(`${root}/blobs/sha256`)], [], what);
    }
    const pending = await blobs.begin(digest, 8, { external: true });
    await assertRejects(() => pending.write(bytes), DigestMismatchError, "more than 8");
    await pending.discard();
    // A blob this thread writes cannot take another's word for it.
    const own = await blobs.begin(digest, bytes.length);
    assertThrows(() => own.adopt(digest, 10), Error, "written by this thread");
    await own.discard();
  });
});
