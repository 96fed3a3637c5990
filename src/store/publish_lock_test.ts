import { assertEquals } from "../../tests/assert.ts";
import { holdPublishLock, whileNobodyPublishes } from "./publish_lock.ts";

/** Whether another process gets the lock of `root` exclusive right now. */
async function otherProcessGetsIt(root: string): Promise<boolean> {
  const code = `
    const f = await Deno.open(${JSON.stringify(`${root}/publish.lock`)}, { write: true });
    Deno.exit(await f.tryLock(true) ? 0 : 3);
  `;
  const out = await new Deno.Command(Deno.execPath(), { args: ["eval", code] }).output();
  return out.code === 0;
}

Deno.test("the publish lock is held while any writer of the process holds it", async () => {
  const root = await Deno.makeTempDir({ prefix: "tsbox-lock-test-" });
  try {
    assertEquals(await whileNobodyPublishes(root, () => Promise.resolve("swept")), "swept");
    const first = await holdPublishLock(root);
    const second = await holdPublishLock(root);
    // Neither this process nor another one may sweep while a writer is at work.
    assertEquals(await whileNobodyPublishes(root, () => Promise.resolve("swept")), undefined);
    assertEquals(await otherProcessGetsIt(root), false);
    first();
    first(); // a second call of the same release counts once
    assertEquals(await otherProcessGetsIt(root), false);
    second();
    await new Promise((r) => setTimeout(r, 0)); // the lock file closes once its open settled
    assertEquals(await otherProcessGetsIt(root), true);
    assertEquals(await whileNobodyPublishes(root, () => Promise.resolve("swept")), "swept");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
