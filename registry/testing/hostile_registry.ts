/**
 * Test helper: a hostile registry in the test's own process (Deno.serve on 127.0.0.1, port 0)
 * that speaks just enough of the distribution API for a pull, and lies as told: an endless
 * manifest, a blob that never ends or runs past (or short of) its descriptor, a Content-Length
 * larger than the descriptor. Also builds the images it serves, among them a gzip bomb. Tests
 * only; nothing in the runtime path uses this.
 *
 * @module
 */
import { createHash } from "node:crypto";

const encoder = new TextEncoder();

/** How a blob is served. */
export interface HostileBlob {
  /** The true bytes (what the digest is of). */
  bytes: Uint8Array;
  /** After `bytes`, send filler without end (chunked, no Content-Length). */
  endless?: boolean;
  /** Send only the first `truncate` bytes (with a matching Content-Length). */
  truncate?: number;
  /** Send this many filler bytes after `bytes`, with a Content-Length that counts them. */
  extra?: number;
}

/** One repository: its manifest under every tag, and its blobs by digest. */
export interface HostileRepo {
  /** The manifest bytes, or "endless" for a manifest body that never ends. */
  manifest: Uint8Array | "endless";
  /** Media type sent as Content-Type for the manifest. */
  mediaType?: string;
  blobs?: Map<string, HostileBlob>;
  /** The tag list: names, or "endless" for a body that never ends. */
  tags?: string[] | "endless";
}

/** A running hostile registry. */
export interface HostileRegistry {
  /** `127.0.0.1:<port>` */
  host: string;
  /** Each request's method and path, in order. */
  requests: string[];
  /** Bytes sent in response bodies so far (endless ones included). */
  sentBytes(): number;
  /** Stops the server. */
  stop(): Promise<void>;
}

/** sha256 digest of bytes, `sha256:<hex>`. */
export function sha256(bytes: Uint8Array): string {
  return "sha256:" + createHash("sha256").update(bytes).digest("hex");
}

const FILLER = new Uint8Array(64 * 1024).fill(0x20);

/**
 * Starts the registry serving `repos` (by repository path, e.g. `evil/manifest`). Unknown
 * repositories, tags and blobs answer 404 in the registry's error format.
 */
export function startHostileRegistry(repos: Record<string, HostileRepo>): HostileRegistry {
  const requests: string[] = [];
  let sent = 0;
  // Chunks are made as the client reads (pull), so `sent` counts what it took, not a queue.
  const count = (chunks: () => Iterable<Uint8Array>, more: boolean) => {
    let it: Iterator<Uint8Array> | undefined;
    return new ReadableStream<Uint8Array>({
      pull(controller) {
        it ??= chunks()[Symbol.iterator]();
        const next = it.next();
        const chunk = next.done ? (more ? FILLER : undefined) : next.value;
        if (!chunk) return controller.close();
        sent += chunk.byteLength;
        controller.enqueue(chunk);
      },
    }, { highWaterMark: 0 });
  };
  const notFound = (code: string) =>
    new Response(JSON.stringify({ errors: [{ code, message: code.toLowerCase() }] }), {
      status: 404,
      headers: { "content-type": "application/json" },
    });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const url = new URL(req.url);
    requests.push(`${req.method} ${url.pathname}`);
    if (url.pathname === "/v2/") return new Response("{}");
    const tags = /^\/v2\/(.+)\/tags\/list$/.exec(url.pathname);
    if (tags) {
      const list = repos[tags[1]]?.tags;
      if (!list) return notFound("NAME_UNKNOWN");
      if (list === "endless") {
        return new Response(count(() => [encoder.encode('{"name":"x","tags":["')], true));
      }
      return Response.json({ name: tags[1], tags: list });
    }
    const m = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/.exec(url.pathname);
    const repo = m ? repos[m[1]] : undefined;
    if (!m || !repo) return notFound("NAME_UNKNOWN");
    const head = req.method === "HEAD";
    if (m[2] === "manifests") {
      const headers = {
        "content-type": repo.mediaType ?? "application/vnd.oci.image.manifest.v1+json",
      };
      if (repo.manifest === "endless") {
        // A JSON document that never closes.
        const start = encoder.encode('{"schemaVersion":2,"annotations":{"x":"');
        return new Response(head ? null : count(() => [start], true), { headers });
      }
      const bytes = repo.manifest;
      if (m[3].startsWith("sha256:") && m[3] !== sha256(bytes)) return notFound("MANIFEST_UNKNOWN");
      return new Response(head ? null : count(() => [bytes], false), {
        headers: { ...headers, "docker-content-digest": sha256(bytes) },
      });
    }
    const blob = repo.blobs?.get(m[3]);
    if (!blob) return notFound("BLOB_UNKNOWN");
    if (blob.endless) return new Response(head ? null : count(() => [blob.bytes], true));
    let body = blob.bytes;
    if (blob.truncate !== undefined) body = body.subarray(0, blob.truncate);
    const extra = blob.extra ?? 0;
    function* parts() {
      yield body;
      for (let left = extra; left > 0; left -= FILLER.byteLength) {
        yield FILLER.subarray(0, Math.min(left, FILLER.byteLength));
      }
    }
    return new Response(head ? null : count(parts, false), {
      headers: { "content-length": String(body.byteLength + extra) },
    });
  });
  const addr = server.addr as Deno.NetAddr;
  return {
    host: `127.0.0.1:${addr.port}`,
    requests,
    sentBytes: () => sent,
    stop: async () => {
      await server.shutdown();
    },
  };
}

/** A layer as the manifest names it and the config's diff_ids list it. */
export interface TestLayer {
  /** The gzip blob. */
  gz: Uint8Array;
  /** sha256 of the uncompressed tar. */
  diffId: string;
}

/** The ustar header block of a regular file `name` (ASCII, < 100 bytes) of `size` bytes. */
function fileHeader(name: string, size: number): Uint8Array {
  const h = new Uint8Array(512);
  const put = (off: number, text: string) => h.set(encoder.encode(text), off);
  const octal = (n: number, width: number) => n.toString(8).padStart(width - 1, "0") + "\0";
  put(0, name);
  put(100, octal(0o644, 8));
  put(108, octal(0, 8));
  put(116, octal(0, 8));
  put(124, octal(size, 12));
  put(136, octal(0, 12));
  put(148, "        ");
  put(156, "0");
  put(257, "ustar\x0000");
  const sum = h.reduce((a, b) => a + b, 0);
  put(148, octal(sum, 7) + " ");
  return h;
}

/** A one-file tar: header, `size` bytes from `body`, padding and the end-of-archive blocks. */
function oneFileTar(
  name: string,
  size: number,
  body: () => Iterable<Uint8Array>,
): ReadableStream<Uint8Array> {
  function* blocks() {
    yield fileHeader(name, size);
    yield* body();
    yield new Uint8Array((512 - size % 512) % 512 + 1024);
  }
  return ReadableStream.from(blocks());
}

/** A gzip layer of one small text file. */
export function smallLayer(text = "hello from a hostile registry\n"): Promise<TestLayer> {
  const body = encoder.encode(text);
  return gzipLayer(oneFileTar("hello.txt", body.byteLength, () => [body]));
}

/**
 * A gzip bomb: one file of `size` zero bytes, which gzip shrinks about a thousandfold (a
 * 200 MiB file is a ~200 KiB blob). Built streaming, never holding the uncompressed tar.
 */
export function zeroBombLayer(size: number): Promise<TestLayer> {
  function* zeros() {
    const chunk = new Uint8Array(1024 * 1024);
    for (let left = size; left > 0; left -= chunk.byteLength) {
      yield chunk.subarray(0, Math.min(left, chunk.byteLength));
    }
  }
  return gzipLayer(oneFileTar("zero", size, zeros));
}

async function gzipLayer(tar: ReadableStream<Uint8Array>): Promise<TestLayer> {
  const hash = createHash("sha256");
  const hashed = tar.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        hash.update(chunk);
        controller.enqueue(chunk);
      },
    }),
  );
  const gz = new Uint8Array(
    await new Response(hashed.pipeThrough(
      new CompressionStream("gzip") as ReadableWritablePair<Uint8Array, Uint8Array>,
    )).arrayBuffer(),
  );
  return { gz, diffId: `sha256:${hash.digest("hex")}` };
}

/** What {@link imageRepo} built. */
export interface TestImage {
  repo: HostileRepo;
  config: { digest: string; size: number; bytes: Uint8Array };
  layers: { digest: string; size: number }[];
}

/**
 * An OCI image of `layers` as a repository to serve. `configBlob` / `layerBlob` change how a
 * blob is served and `declare` changes the sizes the manifest declares (by digest), to lie.
 */
export function imageRepo(
  layers: TestLayer[],
  options: {
    configBlob?: Omit<HostileBlob, "bytes">;
    layerBlob?: Omit<HostileBlob, "bytes">;
    declare?: { config?: number; layer?: number };
  } = {},
): TestImage {
  const config = encoder.encode(JSON.stringify({
    architecture: "amd64",
    os: "linux",
    config: { Cmd: ["/bin/sh"] },
    rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffId) },
  }));
  const blobs = new Map<string, HostileBlob>();
  const configDigest = sha256(config);
  blobs.set(configDigest, { bytes: config, ...options.configBlob });
  const descs = layers.map((l) => {
    const digest = sha256(l.gz);
    blobs.set(digest, { bytes: l.gz, ...options.layerBlob });
    return { digest, size: l.gz.byteLength };
  });
  const manifest = encoder.encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: {
      mediaType: "application/vnd.oci.image.config.v1+json",
      digest: configDigest,
      size: options.declare?.config ?? config.byteLength,
    },
    layers: descs.map((d) => ({
      mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
      digest: d.digest,
      size: options.declare?.layer ?? d.size,
    })),
  }));
  return {
    repo: { manifest, blobs },
    config: { digest: configDigest, size: config.byteLength, bytes: config },
    layers: descs,
  };
}
