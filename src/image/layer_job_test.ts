import { gunzipSync } from "node:zlib";
import { assertEquals, assertOk } from "../../tests/assert.ts";
import { DiskFullError, SpaceGuard } from "../store/space.ts";
import { sha256Digest } from "../store/digest.ts";
import { startLayerJob, type Unpacked } from "./layer_job.ts";
import { tarStream, type TarWriterEntry } from "./tar_writer.ts";
import { LayerError, UnsafeLayerError } from "./unpack.ts";

// The same layer through the worker and on the calling thread must end the same way: the same
// tree, the same diffID, or the same error (class, message, fields).

async function gzip(entries: TarWriterEntry[]): Promise<Uint8Array> {
  const s = tarStream(entries).pipeThrough(
    new CompressionStream("gzip") as unknown as ReadableWritablePair<Uint8Array, Uint8Array>,
  );
  return new Uint8Array(await new Response(s).arrayBuffer());
}

/** Every path under `dir` with its type, mode and content (or link target). */
async function tree(dir: string, sub = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(`${dir}/${sub}`)) {
    const path = `${sub}${e.name}`;
    const info = await Deno.lstat(`${dir}/${path}`);
    const mode = (info.mode! & 0o7777).toString(8);
    if (e.isDirectory) out.push(`${path}/ ${mode}`, ...await tree(dir, `${path}/`));
    else if (e.isSymlink) out.push(`${path} -> ${await Deno.readLink(`${dir}/${path}`)}`);
    else {
      const data = await Deno.readFile(`${dir}/${path}`);
      const sum = await crypto.subtle.digest("SHA-256", data);
      out.push(`${path} ${mode} ${data.length} ${new Uint8Array(sum).slice(0, 8).join(",")}`);
    }
  }
  return out.sort();
}

type Outcome = { unpacked: Unpacked; tree: string[] } | { error: Error };

/**
 * The blob through the thread and then through a worker; with `blobToFile`, the worker also
 * writes the blob to a file, whose bytes and digest are checked here.
 */
async function unpackBoth(
  blob: Uint8Array,
  space?: (dir: string) => SpaceGuard,
  blobToFile = false,
): Promise<[Outcome, Outcome]> {
  const outcomes: Outcome[] = [];
  for (const inWorker of [false, true]) {
    const dir = await Deno.makeTempDir({ prefix: "tsbox-job-" });
    const blobFile = inWorker && blobToFile ? await Deno.makeTempFile() : undefined;
    try {
      const guard = space?.(dir) ?? new SpaceGuard(dir, { floorBytes: 0 });
      const job = startLayerJob(dir, "gzip", guard, inWorker, blobFile);
      job.result.catch(() => {});
      for (let off = 0; off < blob.length; off += 16384) {
        await job.write(blob.slice(off, off + 16384));
      }
      await job.end();
      try {
        const { blob: written, ...unpacked } = await job.result;
        if (blobFile !== undefined) {
          assertEquals(written, { digest: sha256Digest(blob), bytes: blob.length });
          assertEquals(await Deno.readFile(blobFile), blob);
        } else {
          assertEquals(written, undefined);
        }
        outcomes.push({ unpacked, tree: await tree(dir) });
      } catch (error) {
        outcomes.push({ error: error as Error });
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
      if (blobFile !== undefined) await Deno.remove(blobFile);
    }
  }
  return outcomes as [Outcome, Outcome];
}

const bytes = (n: number, seed: number) =>
  Uint8Array.from({ length: n }, (_, i) => (i * seed) & 255);

Deno.test("a layer unpacks to the same tree and diffID in a worker as on the thread", async () => {
  const blob = await gzip([
    { name: "etc", type: "directory", mode: 0o755 },
    { name: "etc/a", type: "file", size: 10, body: bytes(10, 7), mode: 0o640 },
    { name: "big", type: "file", size: 3_000_000, body: bytes(3_000_000, 13) },
    { name: "link", type: "symlink", target: "/etc" },
    { name: "link/b", type: "file", size: 5, body: bytes(5, 3) },
    { name: "setuid", type: "file", size: 1, body: bytes(1, 1), mode: 0o4755 },
  ]);
  const [thread, worker] = await unpackBoth(blob);
  assertOk("unpacked" in thread && "unpacked" in worker);
  assertEquals(worker, thread);
  assertOk(thread.tree.some((l) => l.startsWith("etc/b ")), "link/b resolved inside the root");
});

Deno.test("a large layer (node:zlib, blob written by the worker) unpacks to the same tree and diffID", async () => {
  const entries = [
    { name: "etc", type: "directory", mode: 0o755 },
    { name: "etc/a", type: "file", size: 10, body: bytes(10, 7), mode: 0o640 },
    { name: "big", type: "file", size: 3_000_000, body: bytes(3_000_000, 13) },
    { name: "link", type: "symlink", target: "/etc" },
    { name: "link/b", type: "file", size: 5, body: bytes(5, 3) },
  ] as const;
  const whole = await gzip(entries as unknown as TarWriterEntry[]);
  const [small] = await unpackBoth(whole);
  const [thread, worker] = await unpackBoth(whole, undefined, true);
  assertOk("unpacked" in thread && "unpacked" in worker && "unpacked" in small);
  assertEquals(thread, small);
  assertEquals(worker, small);
  // Two gzip members, as some writers produce: the second is inflated too, as Go's gzip reader
  // (containerd, podman) does, and the diffID covers it.
  const two = new Uint8Array([...whole, ...await gzip([{ name: "x", type: "directory" }])]);
  const [threadTwo, workerTwo] = await unpackBoth(two, undefined, true);
  assertOk("unpacked" in threadTwo, String("error" in threadTwo && threadTwo.error));
  assertEquals(threadTwo.unpacked.digest, sha256Digest(gunzipSync(two)));
  assertEquals(threadTwo.tree, small.tree);
  assertEquals(workerTwo, threadTwo);
});

Deno.test("a corrupt gzip stream fails a large layer the same way in a worker as on the thread", async () => {
  const good = await gzip([{ name: "f", type: "file", size: 100_000, body: bytes(100_000, 5) }]);
  for (
    const bad of [
      good.slice(0, good.length - 20),
      good.map((b, i) => i === 40 ? b ^ 0xff : b),
    ]
  ) {
    const [thread, worker] = await unpackBoth(bad, undefined, true);
    assertOk("error" in thread && "error" in worker, JSON.stringify([thread, worker]));
    assertEquals(
      [worker.error.constructor, worker.error.name, worker.error.message],
      [thread.error.constructor, thread.error.name, thread.error.message],
    );
  }
});

Deno.test("an unsafe entry fails the same way in a worker as on the thread", async () => {
  const blob = await gzip([
    { name: "a", type: "file", size: 1, body: bytes(1, 1) },
    { name: ".", type: "file", size: 0, body: new Uint8Array() },
  ]);
  const [thread, worker] = await unpackBoth(blob);
  assertOk("error" in thread && "error" in worker);
  assertOk(thread.error instanceof UnsafeLayerError, String(thread.error));
  assertOk(worker.error instanceof UnsafeLayerError, String(worker.error));
  assertOk(worker.error instanceof LayerError);
  assertEquals(
    [worker.error.name, worker.error.message, (worker.error as LayerError).entry],
    [thread.error.name, thread.error.message, (thread.error as LayerError).entry],
  );
});

Deno.test("a corrupt gzip stream fails the same way in a worker as on the thread", async () => {
  const good = await gzip([{ name: "f", type: "file", size: 100_000, body: bytes(100_000, 5) }]);
  const [thread, worker] = await unpackBoth(good.slice(0, good.length - 20));
  assertOk("error" in thread && "error" in worker);
  assertEquals(
    [worker.error.constructor, worker.error.name, worker.error.message],
    [thread.error.constructor, thread.error.name, thread.error.message],
  );
});

Deno.test("the free-space floor stops a worker's unpack as the thread's", async () => {
  const blob = await gzip([{ name: "f", type: "file", size: 2_000_000, body: bytes(2e6, 9) }]);
  // A floor above what any disk here has free: the first look fails.
  const floor = 2 ** 50;
  const [thread, worker] = await unpackBoth(
    blob,
    (dir) => new SpaceGuard(dir, { floorBytes: floor, checkEvery: 64 * 1024 }),
  );
  assertOk("error" in thread && "error" in worker);
  assertOk(thread.error instanceof DiskFullError, String(thread.error));
  assertOk(worker.error instanceof DiskFullError, String(worker.error));
  assertEquals(worker.error.name, thread.error.name);
  assertOk(worker.error.message.startsWith("the disk is full: "), worker.error.message);
});

Deno.test("a worker that cannot write the blob says so, apart from unpack failures", async () => {
  const blob = await gzip([{ name: "f", type: "file", size: 10, body: bytes(10, 3) }]);
  const dir = await Deno.makeTempDir({ prefix: "tsbox-job-" });
  const notAFile = await Deno.makeTempDir({ prefix: "tsbox-job-blob-" });
  try {
    const job = startLayerJob(dir, "gzip", new SpaceGuard(dir, { floorBytes: 0 }), true, notAFile);
    job.result.catch(() => {});
    await job.write(blob.slice());
    await job.end();
    const err = await job.result.then(() => undefined, (e) => e);
    assertOk(err instanceof Error, String(err));
    assertOk(job.blobError === err, "reported as the blob's failure");
    assertOk(String(err.message).includes("EISDIR"), err.message);
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(notAFile, { recursive: true });
  }
});
