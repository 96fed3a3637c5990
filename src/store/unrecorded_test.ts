import { join } from "../path.ts";
import { assertEquals, assertOk } from "../../tests/assert.ts";
import { startTime } from "../container/proc.ts";
import { Store } from "./mod.ts";
import { holdPublishLock } from "./publish_lock.ts";

/** The pid of a process that has exited, and the start time it had. */
async function deadProcess(): Promise<{ pid: number; start: number }> {
  const child = new Deno.Command("sleep", { args: ["5"] }).spawn();
  const start = startTime(child.pid)!;
  child.kill("SIGKILL");
  await child.status;
  return { pid: child.pid, start };
}

function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

const hex = (c: string) => c.repeat(64);

/** Publishes a layer dir, its link and its blob by hand, as a pull does before its record. */
function publish(root: string, layer: string, blob: string): void {
  Deno.mkdirSync(join(root, "layers", layer, "etc"), { recursive: true });
  Deno.writeTextFileSync(join(root, "layers", layer, "etc", "f"), "x");
  Deno.symlinkSync(`../layers/${layer}`, join(root, "l", layer.slice(0, 16)));
  Deno.mkdirSync(join(root, "blobs", "sha256"), { recursive: true });
  Deno.writeTextFileSync(join(root, "blobs", "sha256", blob), "x");
}

function writeClaim(root: string, owner: string, layers: string[], blobs: string[]): string {
  const path = join(root, "layers", `.pub-${owner}-00112233aabb`);
  Deno.writeTextFileSync(
    path,
    JSON.stringify({
      layers: layers.map((l) => `sha256:${l}`),
      blobs: blobs.map((b) => `sha256:${b}`),
    }),
  );
  return path;
}

Deno.test("a dead claim's unrecorded layers, links and blobs go; recorded ones and live claims stay", async () => {
  const root = await Deno.makeTempDir({ prefix: "tsbox-claim-test-" });
  const store = await Store.open(root);
  try {
    const dead = await deadProcess();
    const self = `${Deno.pid}-${startTime(Deno.pid)}`;
    // A dead pull's: one layer nobody recorded, one another pull recorded meanwhile.
    publish(root, hex("a"), hex("1"));
    publish(root, hex("b"), hex("2"));
    store.db.run(
      "INSERT INTO layers (diff_id, short_id, size) VALUES (?, ?, 1)",
      `sha256:${hex("b")}`,
      hex("b").slice(0, 16),
    );
    store.db.run(
      `INSERT INTO images (id, config, manifest_digest, manifest_media_type, added_at)
       VALUES (?, '{}', ?, 'x', 0)`,
      `sha256:${hex("9")}`,
      `sha256:${hex("8")}`,
    );
    store.db.run(
      `INSERT INTO image_layers (image_id, position, diff_id, blob_digest, media_type, blob_size)
       VALUES (?, 0, ?, ?, 'x', 1)`,
      `sha256:${hex("9")}`,
      `sha256:${hex("b")}`,
      `sha256:${hex("2")}`,
    );
    const deadClaim = writeClaim(root, `${dead.pid}-${dead.start}`, [hex("a"), hex("b")], [
      hex("1"),
      hex("2"),
    ]);
    // A live pull's (this process's): its unrecorded layer is its own.
    publish(root, hex("c"), hex("3"));
    const liveClaim = writeClaim(root, self, [hex("c")], [hex("3")]);

    // While a writer of the store is at work, nothing of a dead claim is judged.
    const release = await holdPublishLock(root);
    await store.sweepAbandoned();
    release();
    await new Promise((r) => setTimeout(r, 0));
    assertOk(exists(deadClaim) && exists(join(root, "layers", hex("a"))), "swept while busy");

    await store.sweepAbandoned();
    const gone = [
      deadClaim,
      join(root, "layers", hex("a")),
      join(root, "l", hex("a").slice(0, 16)),
      join(root, "blobs", "sha256", hex("1")),
    ];
    const kept = [
      join(root, "layers", hex("b")),
      join(root, "l", hex("b").slice(0, 16)),
      join(root, "blobs", "sha256", hex("2")),
      liveClaim,
      join(root, "layers", hex("c")),
      join(root, "l", hex("c").slice(0, 16)),
      join(root, "blobs", "sha256", hex("3")),
    ];
    for (const p of gone) assertOk(!exists(p), `not removed: ${p}`);
    for (const p of kept) assertOk(exists(p), `removed: ${p}`);
    // Nothing of the removal itself is left (layer dirs are renamed to a temp name first).
    assertEquals(
      [...Deno.readDirSync(join(root, "layers"))].map((e) => e.name).sort(),
      [liveClaim.split("/").pop()!, hex("b"), hex("c")].sort(),
    );
  } finally {
    store.close();
    await Deno.remove(root, { recursive: true });
  }
});
