import { join } from "node:path";
import { assertEquals, assertNotEquals, assertOk } from "../../tests/assert.ts";
import {
  acquireCacheMount,
  type CacheMountRequest,
  listCacheMounts,
  removeCacheMounts,
} from "./cache_mounts.ts";
import { loadSecrets } from "./secrets.ts";

const isRoot = Deno.uid() === 0;

const req = (id: string, sharing: CacheMountRequest["sharing"]): CacheMountRequest => ({
  id,
  sharing,
  mode: 0o750,
  uid: 1000,
  gid: 2000,
});

Deno.test({
  name: "cache mounts: locked waits for the holder, private goes aside, shared shares",
  ignore: !isRoot, // the cache's owner is set with chown
  fn: async () => {
    const root = await Deno.makeTempDir({ prefix: "tsbox-cm-" });
    try {
      const scratch = join(root, "scratch");
      await Deno.mkdir(scratch);
      const first = await acquireCacheMount(root, req("go-build", "locked"), join(scratch, "p1"));
      const info = await Deno.stat(first.dir);
      assertEquals([info.mode! & 0o7777, info.uid, info.gid], [0o750, 1000, 2000]);
      // The lock file sits beside the cache, where a step wiping its cache cannot reach it.
      assertOk((await Deno.stat(join(first.dir, "..", "lock"))).isFile);
      assertEquals([...Deno.readDirSync(first.dir)], []);

      const order: string[] = [];
      const second = acquireCacheMount(root, req("go-build", "locked"), join(scratch, "p2"))
        .then((held) => {
          order.push("second acquired");
          return held;
        });
      // While the first holds it: a private user gets a directory of its own.
      const priv = await acquireCacheMount(root, req("go-build", "private"), join(scratch, "p3"));
      assertNotEquals(priv.dir, first.dir);
      await priv.release();
      assertEquals(order, []);
      await Deno.writeTextFile(join(first.dir, "n"), "1");
      order.push("first released");
      await first.release();
      const held = await second;
      assertEquals(order, ["first released", "second acquired"]);
      assertEquals(await Deno.readTextFile(join(held.dir, "n")), "1");
      await held.release();

      const a = await acquireCacheMount(root, req("apt", "shared"), join(scratch, "p4"));
      const b = await acquireCacheMount(root, req("apt", "shared"), join(scratch, "p5"));
      assertEquals(a.dir, b.dir);
      assertEquals((await listCacheMounts(root)).map((c) => c.id), ["apt", "go-build"]);
      // Prune takes only caches nobody holds.
      assertEquals((await removeCacheMounts(root)).map((c) => c.id), ["go-build"]);
      await a.release();
      await b.release();
      assertEquals((await removeCacheMounts(root)).map((c) => c.id), ["apt"]);
      assertEquals(await listCacheMounts(root), []);
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test("secrets: loaded from a file or an environment variable", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tsbox-secret-" });
  try {
    await Deno.writeTextFile(join(dir, "f"), "from-file");
    Deno.env.set("TSBOX_TEST_SECRET", "from-env");
    const s = await loadSecrets([
      { id: "a", src: join(dir, "f") },
      { id: "b", env: "TSBOX_TEST_SECRET" },
    ]);
    const dec = new TextDecoder();
    assertEquals([dec.decode(s.get("a")), dec.decode(s.get("b"))], ["from-file", "from-env"]);
    Deno.env.delete("TSBOX_TEST_SECRET");
    let failed = "";
    await loadSecrets([{ id: "c", env: "TSBOX_TEST_SECRET" }]).catch((e) => failed = e.message);
    assertEquals(failed, "secret c: environment variable TSBOX_TEST_SECRET is not set");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
