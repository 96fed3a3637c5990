import { assertEquals, assertRejects } from "../../tests/assert.ts";
import { BlobStore } from "./blobs.ts";
import { sha256Digest } from "./digest.ts";
import { DigestMismatchError } from "./digest_format.ts";

Deno.test("a pending blob refuses bytes past its declared size and leaves no temp file", async () => {
  const root = await Deno.makeTempDir();
  try {
    const bytes = new TextEncoder().encode("0123456789");
    const digest = sha256Digest(bytes);
    const blobs = new BlobStore(root);
    const pending = await blobs.begin(digest, 8);
    await pending.write(bytes.subarray(0, 8));
    await assertRejects(() => pending.write(bytes.subarray(8)), DigestMismatchError, "more than 8");
    assertEquals(pending.bytes, 8);
    await pending.discard();
    assertEquals([...Deno.readDirSync(`${root}/blobs/sha256`)], []);
    assertEquals(await blobs.has(digest), false);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
