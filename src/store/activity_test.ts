import { assertEquals, assertRejects } from "../../tests/assert.ts";
import { join } from "../path.ts";
import { storeActivity, waitForQuietStore } from "./activity.ts";

Deno.test("storeActivity names pulls and builds in progress; an hour-old leftover no more", async () => {
  const root = await Deno.makeTempDir({ prefix: "tsbox-activity-" });
  try {
    assertEquals(await storeActivity(root), []);
    await Deno.mkdir(join(root, "layers", ".tmp-abc"), { recursive: true });
    await Deno.mkdir(join(root, "blobs", "sha256"), { recursive: true });
    await Deno.writeTextFile(join(root, "blobs", "sha256", ".tmp-def"), "partial");
    await Deno.writeTextFile(join(root, "blobs", "sha256", "0".repeat(64)), "a blob");
    await Deno.mkdir(join(root, "build", "b-123"), { recursive: true });
    assertEquals(await storeActivity(root), [
      `a layer being unpacked (${join(root, "layers", ".tmp-abc")})`,
      `a blob being written (${join(root, "blobs", "sha256", ".tmp-def")})`,
      `a build (${join(root, "build", "b-123")})`,
    ]);
    assertEquals(await storeActivity(root, Date.now() + 2 * 3600_000), []);
    const err = await assertRejects(() => waitForQuietStore(root, { timeoutMs: 0 }));
    assertEquals(err.message.includes("nothing was pruned"), true);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
