import { join } from "../path.ts";
import { assertEquals, assertOk } from "../../tests/assert.ts";
import { startTime } from "../container/proc.ts";
import { Store } from "./mod.ts";
import { ownedTempPrefix } from "./owner.ts";

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "tsbox-store-test-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const mode = (path: string) => Deno.statSync(path).mode! & 0o7777;

Deno.test("a new store and the directories made for it are 0700", async () => {
  await withDir(async (dir) => {
    const root = join(dir, "home", "share", "tsbox");
    const store = await Store.open(root);
    try {
      const pending = await store.layers.begin(`sha256:${"a".repeat(64)}`);
      await pending.discard();
      for (const d of ["home", "home/share", "home/share/tsbox", "home/share/tsbox/layers"]) {
        assertEquals(mode(join(dir, d)), 0o700, d);
      }
      assertEquals(mode(store.linkDir), 0o700);
      assertEquals(mode(join(root, "tsbox.db")), 0o600);
    } finally {
      store.close();
    }
  });
});

/** The pid of a process that has exited, and the start time it had. */
async function deadProcess(): Promise<{ pid: number; start: number }> {
  const child = new Deno.Command("sleep", { args: ["5"] }).spawn();
  const start = startTime(child.pid)!;
  child.kill("SIGKILL");
  await child.status;
  return { pid: child.pid, start };
}

Deno.test("sweepAbandoned removes temp entries of dead owners only", async () => {
  await withDir(async (root) => {
    const store = await Store.open(root);
    try {
      const blobs = join(root, "blobs", "sha256");
      const layers = join(root, "layers");
      await Deno.mkdir(blobs, { recursive: true });
      const dead = await deadProcess();
      const self = startTime(Deno.pid)!;
      const gone = [
        join(blobs, `.tmp-${dead.pid}-${dead.start}-abc`),
        join(layers, `.tmp-${dead.pid}-${dead.start}-def`),
        // This pid, but another start time: the pid was reused, the owner is gone.
        join(blobs, `.tmp-${Deno.pid}-${self + 1}-ghi`),
        // An older tsbox's name, two days old.
        join(layers, ".tmp-oldname"),
      ];
      const kept = [
        join(blobs, `${ownedTempPrefix()}mine`),
        join(layers, `${ownedTempPrefix()}mine-dir`),
        join(blobs, ".tmp-recentold"),
        join(layers, `${"b".repeat(64)}`),
      ];
      for (const p of [...gone, ...kept]) {
        if (p.endsWith("def") || p.endsWith("dir") || p.endsWith("oldname")) {
          await Deno.mkdir(join(p, "sub"), { recursive: true });
          await Deno.writeTextFile(join(p, "sub", "f"), "x");
        } else if (p.endsWith("b".repeat(64))) {
          await Deno.mkdir(p);
        } else {
          await Deno.writeTextFile(p, "x");
        }
      }
      const twoDaysAgo = new Date(Date.now() - 48 * 3600_000);
      await Deno.utime(join(layers, ".tmp-oldname"), twoDaysAgo, twoDaysAgo);
      const removed = await store.sweepAbandoned();
      assertEquals(removed.sort(), [...gone].sort());
      for (const p of gone) assertOk(!(await exists(p)), p);
      for (const p of kept) assertOk(await exists(p), p);
    } finally {
      store.close();
    }
  });
});

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

Deno.test("linking one short id many times at once always succeeds", async () => {
  await withDir(async (root) => {
    const store = await Store.open(root);
    try {
      const diffId = `sha256:${"c".repeat(64)}`;
      const pending = await store.layers.begin(diffId);
      await pending.publish("shortid01");
      await Promise.all(Array.from({ length: 50 }, () => store.layers.link(diffId, "shortid01")));
      assertEquals(
        Deno.readLinkSync(join(store.linkDir, "shortid01")),
        `../layers/${"c".repeat(64)}`,
      );
      // No temp link stays behind.
      assertEquals([...Deno.readDirSync(join(root, "layers"))].map((e) => e.name), [
        "c".repeat(64),
      ]);
    } finally {
      store.close();
    }
  });
});

Deno.test("recording an image drops links to its layers under unrecorded names", async () => {
  await withDir(async (root) => {
    const store = await Store.open(root);
    try {
      const diffId = `sha256:${"d".repeat(64)}`;
      const first = await store.layers.begin(diffId);
      await first.publish("winner0001");
      // A second publisher (a concurrent or killed pull) linked the same layer under its own id.
      await store.layers.link(diffId, "loser00001");
      // An unrelated layer's link stays.
      await store.layers.link(`sha256:${"e".repeat(64)}`, "other00001");
      const layer = {
        diffId,
        size: 0,
        blobDigest: diffId,
        mediaType: "application/vnd.oci.image.layer.v1.tar",
        blobSize: 0,
      };
      const configJson = JSON.stringify({ rootfs: { type: "layers", diff_ids: [diffId] } });
      store.addImage({
        id: `sha256:${"1".repeat(64)}`,
        configJson,
        manifestDigest: `sha256:${"2".repeat(64)}`,
        manifestMediaType: "application/vnd.oci.image.manifest.v1+json",
        layers: [{ ...layer, shortId: "winner0001" }],
      });
      // The loser records too: the layer keeps the first short id, and the loser's link goes.
      const image = store.addImage({
        id: `sha256:${"3".repeat(64)}`,
        configJson: configJson + " ",
        manifestDigest: `sha256:${"4".repeat(64)}`,
        manifestMediaType: "application/vnd.oci.image.manifest.v1+json",
        layers: [{ ...layer, shortId: "loser00001" }],
      });
      assertEquals(image.layers[0].shortId, "winner0001");
      assertEquals([...Deno.readDirSync(store.linkDir)].map((e) => e.name).sort(), [
        "other00001",
        "winner0001",
      ]);
    } finally {
      store.close();
    }
  });
});
