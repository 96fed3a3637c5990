/**
 * A client for the OCI distribution API (v2): manifests and blobs, pull and push, with digest
 * verification of everything it downloads. Auth, retries and the HTTP exchanges are the
 * transport's (transport.ts).
 *
 * @module
 */
import { createHash, type Hash } from "node:crypto";
import { DigestMismatchError, NotFoundError, RegistryError } from "./errors.ts";
import { readBounded } from "./bounded.ts";
import { MANIFEST_MEDIA_TYPES } from "./manifest.ts";
import { type Reference, registryHost, validateDigest } from "./reference.ts";
import { RegistryTransport, type Sent } from "./transport.ts";

export { type RegistryClientOptions } from "./transport.ts";

/** A manifest or index as served, with its verified digest. */
export interface ManifestResponse {
  digest: string;
  mediaType: string;
  bytes: Uint8Array;
}

/** A blob being downloaded. */
export interface BlobResponse {
  /** Size announced by the registry, when it sent one. */
  size?: number;
  /** The content; errors with {@link DigestMismatchError} at its end if the bytes are wrong. */
  body: ReadableStream<Uint8Array>;
}

/** How {@link RegistryClient.uploadBlob} got a blob into the repository. */
export type UploadResult = "exists" | "mounted" | "uploaded";

const MiB = 1024 * 1024;
/**
 * Manifests, indexes and configs are small; anything bigger is refused while it is read, so an
 * endless one cannot grow memory (docker and containerd use the same 4 MiB limit).
 */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
/** A page of a tag list: ~300,000 tags of 50 characters; more is refused. */
const MAX_TAG_PAGE_BYTES = 16 * 1024 * 1024;
function hashFor(digest: string): Hash {
  const algorithm = digest.split(":")[0];
  return createHash(algorithm);
}

function hexDigest(algorithm: string, bytes: Uint8Array): string {
  return `${algorithm}:${createHash(algorithm).update(bytes).digest("hex")}`;
}

/** Talks to registries: manifests, blobs and tags over the transport's requests. */
export class RegistryClient extends RegistryTransport {
  /**
   * Fetches a manifest or index by tag or digest (the digest wins). The bytes are checked
   * against the reference's digest, else against `Docker-Content-Digest`.
   *
   * @param accept media types to ask for; default: OCI and Docker manifests and indexes.
   * @throws {NotFoundError} `MANIFEST_UNKNOWN` / `NAME_UNKNOWN`, {@link DigestMismatchError}.
   */
  async getManifest(
    ref: Reference,
    accept: readonly string[] = MANIFEST_MEDIA_TYPES,
  ): Promise<ManifestResponse> {
    const sent = await this.request({
      method: "GET",
      ref,
      path: `${ref.path}/manifests/${ref.identifier}`,
      headers: { Accept: accept.join(", ") },
      actions: ["pull"],
      notFound: "manifest",
    });
    const host = registryHost(ref.domain);
    let bytes: Uint8Array;
    const tooBig = () =>
      new RegistryError(
        `${host}: manifest ${ref} is larger than the ${MAX_MANIFEST_BYTES / MiB} MiB limit ` +
          `for manifests and indexes; refusing it`,
        "MANIFEST_INVALID",
        host,
      );
    try {
      if (Number(sent.res.headers.get("content-length") ?? 0) > MAX_MANIFEST_BYTES) {
        await sent.res.body?.cancel();
        throw tooBig();
      }
      // Content-Length is a claim: the cap holds however many bytes actually come.
      const read = sent.res.body
        ? await readBounded(sent.res.body, MAX_MANIFEST_BYTES)
        : new Uint8Array();
      if (!read) throw tooBig();
      bytes = read;
    } catch (err) {
      if (err instanceof RegistryError) throw err;
      throw new RegistryError(
        `${host}: reading manifest ${ref} failed: ${(err as Error).message}`,
        "NETWORK",
        host,
        undefined,
        [],
        { cause: err },
      );
    } finally {
      sent.done();
    }
    const announced = sent.res.headers.get("docker-content-digest") ?? undefined;
    const expected = ref.digest ??
      (announced && !validateDigest(announced) ? announced : undefined);
    const algorithm = expected?.split(":")[0] ?? "sha256";
    const digest = hexDigest(algorithm, bytes);
    if (expected && digest !== expected) {
      throw new DigestMismatchError(host, expected, digest, `manifest ${ref}`);
    }
    const contentType = sent.res.headers.get("content-type")?.split(";")[0].trim() ?? "";
    let mediaType = contentType;
    if (!MANIFEST_MEDIA_TYPES.includes(mediaType)) {
      // Some registries send application/json; the document names its own type.
      try {
        const field = JSON.parse(new TextDecoder().decode(bytes)).mediaType;
        if (typeof field === "string") mediaType = field;
      } catch {
        // parseManifest will report the broken document.
      }
    }
    return { digest, mediaType, bytes };
  }

  /** The digest of a manifest (HEAD, no body), or undefined when the registry has none. */
  async headManifest(ref: Reference): Promise<string | undefined> {
    let sent: Sent;
    try {
      sent = await this.request({
        method: "HEAD",
        ref,
        path: `${ref.path}/manifests/${ref.identifier}`,
        headers: { Accept: MANIFEST_MEDIA_TYPES.join(", ") },
        actions: ["pull"],
        notFound: "manifest",
      });
    } catch (err) {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    }
    await sent.res.body?.cancel();
    sent.done();
    return sent.res.headers.get("docker-content-digest") ?? ref.digest;
  }

  /** The size of a blob, or undefined when the repository does not have it. */
  async headBlob(repo: Reference, digest: string): Promise<number | undefined> {
    let sent: Sent;
    try {
      sent = await this.request({
        method: "HEAD",
        ref: repo,
        path: `${repo.path}/blobs/${digest}`,
        actions: ["pull"],
        notFound: "blob",
      });
    } catch (err) {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    }
    await sent.res.body?.cancel();
    sent.done();
    const length = sent.res.headers.get("content-length");
    return length === null ? undefined : Number(length);
  }

  /**
   * Streams a blob. Redirects to blob storage are followed (without the registry's
   * Authorization on another host). The stream verifies the digest as it goes and errors at
   * its end on a mismatch, so a consumer that reads to the end never accepts wrong bytes.
   *
   * With `size` (the descriptor's), the blob is cut there: a registry that announces or sends
   * more errors as soon as it does (nothing past `size` is passed on), one that sends less
   * errors at the end. The registry's Content-Length is never trusted beyond the descriptor.
   *
   * @param name names the blob in errors (default `blob <digest>`).
   * @throws {NotFoundError} `BLOB_UNKNOWN` when the registry does not have it.
   */
  async fetchBlob(
    repo: Reference,
    digest: string,
    size?: number,
    name = `blob ${digest}`,
  ): Promise<BlobResponse> {
    const host = registryHost(repo.domain);
    const reason = validateDigest(digest);
    if (reason) throw new RegistryError(`${host}: ${reason}: ${digest}`, "DIGEST_INVALID", host);
    if (size !== undefined && (!Number.isSafeInteger(size) || size < 0)) {
      throw new RegistryError(
        `${host}: ${name}: invalid size ${size} in its descriptor`,
        "SIZE_INVALID",
        host,
      );
    }
    const sent = await this.request({
      method: "GET",
      ref: repo,
      path: `${repo.path}/blobs/${digest}`,
      actions: ["pull"],
      notFound: "blob",
    });
    sent.done();
    const length = sent.res.headers.get("content-length");
    const announced = length === null ? undefined : Number(length);
    const source = sent.res.body;
    if (!source) {
      throw new RegistryError(`${host}: empty response for blob ${digest}`, "NETWORK", host);
    }
    // With Content-Encoding the length is that of the encoded bytes, not of the blob.
    const encoded = sent.res.headers.has("content-encoding");
    if (size !== undefined && announced !== undefined && !encoded && announced > size) {
      await source.cancel().catch(() => {});
      throw new RegistryError(
        `${host}: ${name}: the registry announces ${announced} bytes, more than the ` +
          `${size} bytes its descriptor declares`,
        "SIZE_INVALID",
        host,
      );
    }
    const limit = size ?? (encoded ? undefined : announced);
    const reader = source.getReader();
    const hash = hashFor(digest);
    const algorithm = digest.split(":")[0];
    let received = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        let chunk: ReadableStreamReadResult<Uint8Array>;
        try {
          // The idle timer runs only while a read is pending: a slow consumer is no timeout.
          sent.touch();
          chunk = await reader.read();
          sent.done();
        } catch (err) {
          sent.done();
          const timedOut = (err as Error).name === "TimeoutError";
          controller.error(
            new RegistryError(
              `${host}: ${timedOut ? "timed out" : "failed"} reading blob ${digest}: ${
                (err as Error).message
              }`,
              timedOut ? "TIMEOUT" : "NETWORK",
              host,
              undefined,
              [],
              { cause: err },
            ),
          );
          return;
        }
        if (chunk.done) {
          sent.done();
          if (limit !== undefined && received !== limit) {
            controller.error(
              new RegistryError(
                `${host}: ${name}: the registry sent ${received} bytes, ` +
                  (size !== undefined
                    ? `its descriptor declares ${size}`
                    : `it announced ${announced}`),
                "SIZE_INVALID",
                host,
              ),
            );
            return;
          }
          const actual = `${algorithm}:${hash.digest("hex")}`;
          if (actual !== digest) {
            controller.error(
              new DigestMismatchError(host, digest, actual, `blob in ${repo.repository}`),
            );
          } else {
            controller.close();
          }
          return;
        }
        received += chunk.value.byteLength;
        if (size !== undefined && received > size) {
          // Cut here: the excess is neither passed on nor read further.
          await reader.cancel("blob longer than its descriptor").catch(() => {});
          controller.error(
            new RegistryError(
              `${host}: ${name}: the registry sent more than the ${size} bytes its ` +
                `descriptor declares`,
              "SIZE_INVALID",
              host,
            ),
          );
          return;
        }
        hash.update(chunk.value);
        controller.enqueue(chunk.value);
      },
      async cancel(reason) {
        sent.done();
        await reader.cancel(reason);
      },
    });
    const reported = size ?? announced;
    return reported === undefined ? { body } : { size: reported, body };
  }

  /**
   * Fetches a small blob (an image config) whole, cut at its descriptor's size, which may be at
   * most {@link MAX_MANIFEST_BYTES}; the digest is verified.
   *
   * @param what names the blob in errors, e.g. "config".
   * @throws {RegistryError} `SIZE_INVALID` for a blob over the limit or not of its size.
   */
  async fetchSmallBlob(
    repo: Reference,
    desc: { digest: string; size: number },
    what = "blob",
  ): Promise<Uint8Array> {
    const host = registryHost(repo.domain);
    if (desc.size > MAX_MANIFEST_BYTES) {
      throw new RegistryError(
        `${host}: ${what} ${desc.digest} of ${repo} declares ${desc.size} bytes, more than the ` +
          `${MAX_MANIFEST_BYTES / MiB} MiB limit for configs; refusing it`,
        "SIZE_INVALID",
        host,
      );
    }
    const name = `${what} ${desc.digest} of ${repo}`;
    const { body } = await this.fetchBlob(repo, desc.digest, desc.size, name);
    const bytes = await readBounded(body, desc.size);
    // fetchBlob already cuts at the size; this holds the cap even if it did not.
    if (!bytes) {
      throw new RegistryError(
        `${host}: ${name}: the registry sent more than the ${desc.size} bytes its descriptor ` +
          `declares`,
        "SIZE_INVALID",
        host,
      );
    }
    return bytes;
  }

  /**
   * The repository's tags (following `Link` pagination).
   *
   * @throws {NotFoundError} `NAME_UNKNOWN` when the registry has no such repository.
   */
  async listTags(repo: Reference): Promise<string[]> {
    const tags: string[] = [];
    let path = `${repo.path}/tags/list`;
    for (let page = 0; page < 1000; page++) {
      const sent = await this.request({ method: "GET", ref: repo, path, actions: ["pull"] });
      let doc: { tags?: unknown };
      try {
        const bytes = sent.res.body
          ? await readBounded(sent.res.body, MAX_TAG_PAGE_BYTES)
          : new Uint8Array();
        if (!bytes) {
          throw new RegistryError(
            `${registryHost(repo.domain)}: a tag list page of ${repo.repository} is larger than ` +
              `${MAX_TAG_PAGE_BYTES / MiB} MiB; refusing it`,
            "UNKNOWN",
            registryHost(repo.domain),
          );
        }
        doc = JSON.parse(new TextDecoder().decode(bytes));
      } finally {
        sent.done();
      }
      if (Array.isArray(doc.tags)) tags.push(...doc.tags.filter((t) => typeof t === "string"));
      const next = /<([^>]+)>\s*;\s*rel="?next"?/.exec(sent.res.headers.get("link") ?? "");
      if (!next) break;
      path = new URL(next[1], `${this.baseUrl(repo.domain)}/v2/`).toString();
    }
    return tags;
  }

  /**
   * Uploads a blob unless the repository has it: a cross-repository mount from `mountFrom`
   * (same registry) is tried first, then a monolithic POST + PUT.
   *
   * @param body the content; read once (a stream cannot be replayed, so auth is settled by the
   *   POST that opens the upload).
   * @returns what happened, for docker-like progress lines ("Layer already exists", "Mounted
   *   from ...", "Pushed").
   */
  async uploadBlob(
    repo: Reference,
    digest: string,
    size: number,
    body: Uint8Array | ReadableStream<Uint8Array>,
    mountFrom?: Reference,
  ): Promise<UploadResult> {
    const host = registryHost(repo.domain);
    const reason = validateDigest(digest);
    if (reason) throw new RegistryError(`${host}: ${reason}: ${digest}`, "DIGEST_INVALID", host);
    if (await this.headBlob(repo, digest) !== undefined) {
      await cancelBody(body);
      return "exists";
    }
    const canMount = mountFrom && mountFrom.domain === repo.domain && mountFrom.path !== repo.path;
    const query = canMount
      ? `?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(mountFrom.path)}`
      : "";
    const started = await this.request({
      method: "POST",
      ref: repo,
      path: `${repo.path}/blobs/uploads/${query}`,
      headers: { "Content-Length": "0" },
      actions: ["pull", "push"],
      extraScopes: canMount ? [`repository:${mountFrom.path}:pull`] : [],
    });
    await started.res.body?.cancel();
    started.done();
    if (started.res.status === 201) {
      await cancelBody(body);
      return "mounted"; // The registry already had the bytes in the other repository.
    }
    const location = started.res.headers.get("location");
    if (started.res.status !== 202 || !location) {
      throw new RegistryError(
        `${host}: starting an upload to ${repo.repository} answered ${started.res.status}`,
        "BLOB_UPLOAD_UNKNOWN",
        host,
        started.res.status,
      );
    }
    const target = new URL(location, `${this.baseUrl(repo.domain)}/v2/`);
    target.searchParams.set("digest", digest);
    const put = await this.request({
      method: "PUT",
      ref: repo,
      path: target.toString(),
      headers: { "Content-Type": "application/octet-stream", "Content-Length": String(size) },
      body,
      actions: ["pull", "push"],
    });
    await put.res.body?.cancel();
    put.done();
    if (put.res.status !== 201) {
      throw new RegistryError(
        `${host}: finishing the upload of ${digest} answered ${put.res.status}`,
        "BLOB_UPLOAD_UNKNOWN",
        host,
        put.res.status,
      );
    }
    return "uploaded";
  }

  /**
   * Stores a manifest under the reference's tag (or its digest) and returns the digest the
   * registry reports (checked against the bytes).
   */
  async putManifest(ref: Reference, mediaType: string, bytes: Uint8Array): Promise<string> {
    const host = registryHost(ref.domain);
    const digest = hexDigest("sha256", bytes);
    if (ref.digest && ref.digest !== digest && !ref.tag) {
      throw new DigestMismatchError(host, ref.digest, digest, `manifest for ${ref}`);
    }
    const sent = await this.request({
      method: "PUT",
      ref,
      path: `${ref.path}/manifests/${ref.tag ?? digest}`,
      headers: { "Content-Type": mediaType },
      body: bytes,
      actions: ["pull", "push"],
      notFound: "manifest",
    });
    await sent.res.body?.cancel();
    sent.done();
    const reported = sent.res.headers.get("docker-content-digest");
    if (reported && reported !== digest) {
      throw new DigestMismatchError(host, digest, reported, `stored manifest ${ref}`);
    }
    return digest;
  }
}

async function cancelBody(body: Uint8Array | ReadableStream<Uint8Array>): Promise<void> {
  if (body instanceof ReadableStream) await body.cancel();
}
