import { join } from "node:path";
import { assertEquals, assertRejects } from "../../tests/assert.ts";
import {
  archiveKind,
  classifyStdin,
  ContextArchiveError,
  peek,
  unpackContextArchive,
} from "./stdin_context.ts";

/** A stream of `bytes` cut into chunks of `size`. */
function chunked(bytes: Uint8Array, size: number): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream({
    pull(c) {
      if (at >= bytes.length) return c.close();
      c.enqueue(bytes.slice(at, at + size));
      at += size;
    },
  });
}

async function tarBytes(gzip: boolean): Promise<Uint8Array> {
  const dir = await Deno.makeTempDir({ prefix: "tsbox-stdin-test-" });
  try {
    await Deno.writeTextFile(join(dir, "Dockerfile"), "FROM busybox\n");
    const out = await new Deno.Command("tar", {
      args: [gzip ? "-czf" : "-cf", "-", "-C", dir, "Dockerfile"],
      stdout: "piped",
    }).output();
    return out.stdout;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("archiveKind: magic numbers and tar's ustar; text is none of them", async () => {
  assertEquals(archiveKind(await tarBytes(false)), "none");
  assertEquals(archiveKind(await tarBytes(true)), "gzip");
  assertEquals(archiveKind(new Uint8Array([0x28, 0xb5, 0x2f, 0xfd, 0])), "zstd");
  assertEquals(archiveKind(new TextEncoder().encode("BZh91AY")), "bzip2");
  assertEquals(archiveKind(new Uint8Array([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0, 1])), "xz");
  assertEquals(archiveKind(new TextEncoder().encode("FROM busybox\n")), undefined);
  assertEquals(archiveKind(new Uint8Array()), undefined);
});

Deno.test("peek: the head, and every byte again in order, across chunk borders", async () => {
  const bytes = Uint8Array.from({ length: 1000 }, (_, i) => i % 251);
  const { head, stream } = await peek(chunked(bytes, 7), 512);
  assertEquals(head, bytes.subarray(0, 512));
  assertEquals(new Uint8Array(await new Response(stream).arrayBuffer()), bytes);
  const short = await peek(chunked(bytes.subarray(0, 10), 3), 512);
  assertEquals(short.head, bytes.subarray(0, 10));
  assertEquals(
    new Uint8Array(await new Response(short.stream).arrayBuffer()),
    bytes.subarray(0, 10),
  );
  const empty = await peek(chunked(new Uint8Array(), 3), 512);
  assertEquals(empty.head.length, 0);
  assertEquals((await new Response(empty.stream).arrayBuffer()).byteLength, 0);
});

Deno.test("classifyStdin: a Dockerfile's text, or an archive stream kept whole", async () => {
  const text = "FROM busybox\nRUN echo hi\n".repeat(40);
  const df = await classifyStdin(chunked(new TextEncoder().encode(text), 5));
  assertEquals(df, { kind: "dockerfile", text });
  const tar = await tarBytes(true);
  const archive = await classifyStdin(chunked(tar, 100));
  assertEquals(archive.kind, "archive");
  if (archive.kind === "archive") {
    assertEquals(new Uint8Array(await new Response(archive.stream).arrayBuffer()), tar);
  }
});

Deno.test("unpackContextArchive: unpacks a gzip tar; refuses bzip2 and non-archives by name", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tsbox-stdin-test-" });
  try {
    await unpackContextArchive(chunked(await tarBytes(true), 64), dir);
    assertEquals(await Deno.readTextFile(join(dir, "Dockerfile")), "FROM busybox\n");
    const bz = chunked(new TextEncoder().encode("BZh91AY&SY"), 4);
    const err = await assertRejects(() => unpackContextArchive(bz, dir), ContextArchiveError);
    assertEquals(err.message.includes("bzip2"), true, err.message);
    const text = chunked(new TextEncoder().encode("hello"), 4);
    await assertRejects(() => unpackContextArchive(text, dir), ContextArchiveError, "not a tar");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
