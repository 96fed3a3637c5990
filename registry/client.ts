/**
 * A client for the OCI distribution API (v2): manifests and blobs, pull and push, with bearer
 * and Basic auth, bounded retries, and digest verification of everything it downloads.
 *
 * @module
 */
import { createHash, type Hash } from "node:crypto";
import {
  basicAuthorization,
  type Challenge,
  type Credentials,
  credentialsFromConfig,
  dockerConfigPath,
  parseWwwAuthenticate,
  TokenStore,
} from "./auth.ts";
import {
  DigestMismatchError,
  NotFoundError,
  RegistryError,
  type RegistryErrorCode,
  type RegistryErrorDetail,
  UnauthorizedError,
} from "./errors.ts";
import { readBounded } from "./bounded.ts";
import { MANIFEST_MEDIA_TYPES } from "./manifest.ts";
import { type Reference, registryHost, validateDigest } from "./reference.ts";

/** Options for {@link RegistryClient}. */
export interface RegistryClientOptions {
  /** Hosts (`host` or `host:port`) to reach over plain HTTP, like docker's insecure-registries. */
  insecure?: string[];
  /** `User-Agent` sent with every request. */
  userAgent?: string;
  /** Credentials for a registry host; default: docker's config file, read once per host. */
  credentials?: (
    host: string,
  ) => Credentials | undefined | Promise<Credentials | undefined>;
  /** How long to wait for response headers, and at most between two chunks of a body. */
  timeoutMs?: number;
  /** Extra attempts after network errors, 429 and 5xx answers (default 3). */
  retries?: number;
  /** First backoff delay in ms, doubled on each retry (default 250). */
  backoffMs?: number;
  /** Use HTTPS even for loopback hosts (a local registry that serves TLS). */
  secureLoopback?: boolean;
}

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

type Action = "pull" | "push";

interface RequestSpec {
  method: string;
  ref: Reference;
  /** Path below `/v2/`, or an absolute URL (upload locations). */
  path: string;
  headers?: Record<string, string>;
  body?: Uint8Array | ReadableStream<Uint8Array>;
  actions: Action[];
  /** More scopes to ask for, e.g. pull on the source repository of a cross-repo mount. */
  extraScopes?: string[];
  /** What a 404 means here. */
  notFound?: "manifest" | "blob" | "none";
}

interface Sent {
  res: Response;
  /** Resets the idle timer (call on each body chunk). */
  touch: () => void;
  /** Stops the timer. */
  done: () => void;
}

const MAX_REDIRECTS = 10;
const MiB = 1024 * 1024;
/**
 * Manifests, indexes and configs are small; anything bigger is refused while it is read, so an
 * endless one cannot grow memory (docker and containerd use the same 4 MiB limit).
 */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
/** A page of a tag list: ~300,000 tags of 50 characters; more is refused. */
const MAX_TAG_PAGE_BYTES = 16 * 1024 * 1024;
/** An error body worth reading is a few hundred bytes; more is not kept. */
const MAX_ERROR_BODY_BYTES = 64 * 1024;

/** A host in 127.0.0.0/8, `localhost` or `::1`: docker reaches those over plain HTTP. */
function isLoopback(hostname: string): boolean {
  return hostname === "localhost" || hostname === "::1" ||
    /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname);
}

/** `host:port` -> `host` (brackets of an IPv6 literal removed). */
function hostnameOf(host: string): string {
  if (host.startsWith("[")) return host.slice(1, host.indexOf("]"));
  const i = host.lastIndexOf(":");
  return i === -1 ? host : host.slice(0, i);
}

function hashFor(digest: string): Hash {
  const algorithm = digest.split(":")[0];
  return createHash(algorithm);
}

function hexDigest(algorithm: string, bytes: Uint8Array): string {
  return `${algorithm}:${createHash(algorithm).update(bytes).digest("hex")}`;
}

function isTlsFailure(err: unknown): boolean {
  const text = `${(err as Error)?.message} ${String((err as Error)?.cause ?? "")}`;
  return /corrupt message|certificate|tls|handshake|InvalidContentType|UnknownIssuer|ssl/i.test(
    text,
  );
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function readErrors(res: Response): Promise<RegistryErrorDetail[]> {
  try {
    if (!res.body) return [];
    const bytes = await readBounded(res.body, MAX_ERROR_BODY_BYTES);
    if (!bytes) return [];
    const doc = JSON.parse(new TextDecoder().decode(bytes));
    if (Array.isArray(doc?.errors)) {
      return doc.errors.filter((e: unknown) =>
        typeof e === "object" && e !== null && typeof (e as RegistryErrorDetail).code === "string"
      );
    }
  } catch {
    // Not JSON: the status alone has to speak.
  }
  return [];
}

const KNOWN_CODES = new Set<RegistryErrorCode>([
  "UNAUTHORIZED",
  "DENIED",
  "MANIFEST_UNKNOWN",
  "MANIFEST_INVALID",
  "NAME_UNKNOWN",
  "NAME_INVALID",
  "BLOB_UNKNOWN",
  "BLOB_UPLOAD_UNKNOWN",
  "DIGEST_INVALID",
  "SIZE_INVALID",
  "TOOMANYREQUESTS",
  "UNSUPPORTED",
]);

/** Talks to registries; one instance can serve many hosts and caches their auth state. */
export class RegistryClient {
  #insecure: Set<string>;
  #userAgent: string;
  #credentialsFn: (host: string) => Credentials | undefined | Promise<Credentials | undefined>;
  #credentialCache = new Map<string, Promise<Credentials | undefined>>();
  #timeoutMs: number;
  #retries: number;
  #backoffMs: number;
  #secureLoopback: boolean;
  #tokens: TokenStore;
  /** The auth challenge each host answered with, so later requests authenticate up front. */
  #challenges = new Map<string, Challenge>();

  constructor(options: RegistryClientOptions = {}) {
    this.#insecure = new Set(options.insecure ?? []);
    this.#userAgent = options.userAgent ?? "tsbox";
    this.#credentialsFn = options.credentials ?? (async (host) => {
      try {
        const config = JSON.parse(await Deno.readTextFile(dockerConfigPath()));
        return credentialsFromConfig(config, host);
      } catch {
        return undefined;
      }
    });
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    this.#retries = options.retries ?? 3;
    this.#backoffMs = options.backoffMs ?? 250;
    this.#secureLoopback = options.secureLoopback ?? false;
    this.#tokens = new TokenStore({ userAgent: this.#userAgent, timeoutMs: this.#timeoutMs });
  }

  /**
   * Reaches the registry `domain` (as references name it: `host[:port]`, `docker.io`) over plain
   * HTTP from now on, as the `insecure` option does: registries.conf's `insecure = true` for a
   * registry or mirror being contacted.
   */
  allowInsecure(domain: string): void {
    this.#insecure.add(registryHost(domain));
  }

  /** The base URL for a registry domain, e.g. `http://127.0.0.1:5000` or `https://quay.io`. */
  baseUrl(domain: string): string {
    const host = registryHost(domain);
    const plain = this.#insecure.has(host) || this.#insecure.has(hostnameOf(host)) ||
      (!this.#secureLoopback && isLoopback(hostnameOf(host)));
    return `${plain ? "http" : "https"}://${host}`;
  }

  #credentials(host: string): Promise<Credentials | undefined> {
    let p = this.#credentialCache.get(host);
    if (!p) {
      p = Promise.resolve(this.#credentialsFn(host));
      this.#credentialCache.set(host, p);
    }
    return p;
  }

  #scopes(spec: RequestSpec): string[] {
    const scopes = [`repository:${spec.ref.path}:${spec.actions.join(",")}`];
    return [...scopes, ...(spec.extraScopes ?? [])];
  }

  async #authorization(host: string, spec: RequestSpec): Promise<string | undefined> {
    const challenge = this.#challenges.get(host);
    if (!challenge) return undefined;
    const creds = await this.#credentials(host);
    if (challenge.scheme === "basic") return creds ? basicAuthorization(creds) : undefined;
    if (challenge.scheme === "bearer") {
      return "Bearer " + await this.#tokens.token(host, challenge, this.#scopes(spec), creds);
    }
    return undefined;
  }

  /** One HTTP exchange with manual redirects; arms an idle timer that aborts the request. */
  async #send(url: string, init: RequestInit, host: string): Promise<Sent> {
    const ctl = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const touch = () => {
      clearTimeout(timer);
      timer = setTimeout(
        () => ctl.abort(new DOMException("timed out", "TimeoutError")),
        this.#timeoutMs,
      );
    };
    const done = () => clearTimeout(timer);
    touch();
    try {
      let target = new URL(url);
      const origin = target.host;
      const headers = new Headers(init.headers);
      for (let hop = 0;; hop++) {
        const res = await fetch(target, {
          ...init,
          headers,
          redirect: "manual",
          signal: ctl.signal,
        });
        const location = res.headers.get("location");
        if (res.status < 300 || res.status >= 400 || res.status === 304 || !location) {
          return { res, touch, done };
        }
        await res.body?.cancel();
        if (hop >= MAX_REDIRECTS) {
          throw new RegistryError(`${host}: too many redirects`, "NETWORK", host, res.status);
        }
        target = new URL(location, target);
        // Blob storage (S3, CDNs) sits on other hosts; registry credentials must not leak there.
        if (target.host !== origin) headers.delete("authorization");
      }
    } catch (err) {
      done();
      if (err instanceof RegistryError) throw err;
      if ((err as Error).name === "TimeoutError" || ctl.signal.aborted) {
        throw new RegistryError(
          `${host}: request timed out after ${this.#timeoutMs} ms (${init.method} ${url})`,
          "TIMEOUT",
          host,
          undefined,
          [],
          { cause: err },
        );
      }
      if (isTlsFailure(err)) {
        throw new RegistryError(
          `TLS handshake with ${host} failed: ${
            String((err as Error).cause ?? (err as Error).message).split("\n")[0]
          }; if it is a plain-HTTP registry, use --insecure-registry ${host}`,
          "TLS",
          host,
          undefined,
          [],
          { cause: err },
        );
      }
      throw new RegistryError(
        `${host}: cannot reach the registry: ${
          String((err as Error).cause ?? (err as Error).message).split("\n")[0]
        }`,
        "NETWORK",
        host,
        undefined,
        [],
        { cause: err },
      );
    }
  }

  /** Sends a request with auth, retries and error mapping; returns only 2xx/3xx responses. */
  async #request(spec: RequestSpec): Promise<Sent> {
    const host = registryHost(spec.ref.domain);
    const url = /^https?:\/\//.test(spec.path)
      ? spec.path
      : `${this.baseUrl(spec.ref.domain)}/v2/${spec.path}`;
    const replayable = !(spec.body instanceof ReadableStream);
    let authRetried = false;
    for (let attempt = 0;; attempt++) {
      const headers: Record<string, string> = { "User-Agent": this.#userAgent, ...spec.headers };
      const authorization = await this.#authorization(host, spec);
      if (authorization) headers.Authorization = authorization;
      let sent: Sent;
      try {
        sent = await this.#send(url, {
          method: spec.method,
          headers,
          body: spec.body as BodyInit | undefined,
        }, host);
      } catch (err) {
        const code = (err as RegistryError).code;
        if ((code === "NETWORK" || code === "TIMEOUT") && replayable && attempt < this.#retries) {
          await sleep(this.#backoffMs * 2 ** attempt);
          continue;
        }
        throw err;
      }
      const { res } = sent;
      if (res.status === 401 && !authRetried && replayable) {
        const header = res.headers.get("www-authenticate") ?? "";
        const challenge = parseWwwAuthenticate(header).find((c) =>
          c.scheme === "bearer" || c.scheme === "basic"
        );
        const previous = this.#challenges.get(host);
        if (challenge) {
          await res.body?.cancel();
          sent.done();
          if (previous?.scheme === "bearer") {
            this.#tokens.invalidate(previous, this.#scopes(spec), await this.#credentials(host));
          }
          // Keep only what identifies the token server; scopes come from each request.
          this.#challenges.set(host, {
            scheme: challenge.scheme,
            params: {
              realm: challenge.params.realm ?? "",
              service: challenge.params.service ?? "",
            },
          });
          authRetried = true;
          attempt--;
          continue;
        }
      }
      if ((res.status === 429 || res.status >= 500) && replayable && attempt < this.#retries) {
        await res.body?.cancel();
        sent.done();
        const retryAfter = Number(res.headers.get("retry-after"));
        const wait = Number.isFinite(retryAfter) && retryAfter > 0
          ? Math.min(retryAfter * 1000, 10_000)
          : this.#backoffMs * 2 ** attempt;
        await sleep(wait);
        continue;
      }
      if (res.status >= 400) {
        try {
          throw await this.#errorFor(res, host, spec);
        } finally {
          sent.done();
        }
      }
      // The idle timer stays armed: the caller reads the body under it and then calls done().
      return sent;
    }
  }

  async #errorFor(res: Response, host: string, spec: RequestSpec): Promise<RegistryError> {
    const details = await readErrors(res);
    const registryText = details.map((d) => d.message ?? d.code).join("; ");
    const codes = new Set(details.map((d) => d.code));
    const where = spec.ref.repository;
    if (res.status === 401 || res.status === 403) {
      const creds = await this.#credentials(host);
      const scheme = this.#challenges.get(host)?.scheme;
      let message: string;
      if (res.status === 403 || codes.has("DENIED")) {
        message = `denied: ${
          registryText || "requested access to the resource is denied"
        } (${where})`;
      } else if (!creds) {
        message = `authentication required: ${host} requires credentials for ${where}` +
          ` (tsbox login ${host}); or the repository does not exist`;
      } else if (scheme === "basic" || !scheme) {
        message = `unauthorized: incorrect username or password for ${host}`;
      } else {
        message = `unauthorized: ${creds.username} may not ${spec.actions.join("/")} ${where}` +
          (registryText ? ` (${registryText})` : "");
      }
      return new UnauthorizedError(message, host, res.status, details);
    }
    if (res.status === 404) {
      if (codes.has("NAME_UNKNOWN")) {
        return new NotFoundError(
          `name unknown: repository ${where} not found`,
          "NAME_UNKNOWN",
          host,
          details,
        );
      }
      if (
        codes.has("BLOB_UNKNOWN") || (spec.notFound === "blob" && !codes.has("MANIFEST_UNKNOWN"))
      ) {
        return new NotFoundError(
          `blob unknown: ${spec.path.split("/").pop()} in ${where}`,
          "BLOB_UNKNOWN",
          host,
          details,
        );
      }
      if (codes.has("MANIFEST_UNKNOWN") || spec.notFound === "manifest") {
        return new NotFoundError(
          `manifest unknown: ${spec.ref.toString()}`,
          "MANIFEST_UNKNOWN",
          host,
          details,
        );
      }
    }
    if (res.status === 429) {
      return new RegistryError(
        `toomanyrequests: ${registryText || "rate limit reached"} (${host})`,
        "TOOMANYREQUESTS",
        host,
        429,
        details,
      );
    }
    const first = details[0]?.code as RegistryErrorCode | undefined;
    const code: RegistryErrorCode = first && KNOWN_CODES.has(first) ? first : "UNKNOWN";
    return new RegistryError(
      `${host}: ${spec.method} ${where} failed with ${res.status}${
        registryText ? `: ${registryText}` : ""
      }`,
      code,
      host,
      res.status,
      details,
    );
  }

  /**
   * Checks that the registry speaks the v2 API (`GET /v2/`), authenticating if it asks to.
   *
   * @throws {UnauthorizedError} when credentials are needed and missing or wrong.
   */
  async ping(domain: string): Promise<void> {
    const host = registryHost(domain);
    const url = `${this.baseUrl(domain)}/v2/`;
    const creds = await this.#credentials(host);
    let sent = await this.#send(
      url,
      { method: "GET", headers: { "User-Agent": this.#userAgent } },
      host,
    );
    if (sent.res.status === 401) {
      const header = sent.res.headers.get("www-authenticate") ?? "";
      await sent.res.body?.cancel();
      sent.done();
      const challenge = parseWwwAuthenticate(header).find((c) =>
        c.scheme === "bearer" || c.scheme === "basic"
      );
      if (challenge) {
        this.#challenges.set(host, {
          scheme: challenge.scheme,
          params: { realm: challenge.params.realm ?? "", service: challenge.params.service ?? "" },
        });
      }
      if (!creds) return; // Anonymous access may still be allowed per repository.
      let authorization: string;
      if (challenge?.scheme === "bearer") {
        authorization = "Bearer " +
          await this.#tokens.token(host, this.#challenges.get(host)!, [], creds);
      } else {
        authorization = basicAuthorization(creds);
      }
      sent = await this.#send(
        url,
        { method: "GET", headers: { "User-Agent": this.#userAgent, Authorization: authorization } },
        host,
      );
    }
    const { res } = sent;
    try {
      if (res.status === 401) {
        await res.body?.cancel();
        throw new UnauthorizedError(
          `unauthorized: incorrect username or password for ${host}`,
          host,
          401,
        );
      }
      if (!res.ok) {
        throw new RegistryError(
          `${host} does not speak the registry v2 API (GET /v2/ answered ${res.status})`,
          "UNSUPPORTED",
          host,
          res.status,
          await readErrors(res),
        );
      }
      await res.body?.cancel();
    } finally {
      sent.done();
    }
  }

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
    const sent = await this.#request({
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
      sent = await this.#request({
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
      sent = await this.#request({
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
    const sent = await this.#request({
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
      const sent = await this.#request({ method: "GET", ref: repo, path, actions: ["pull"] });
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
    const started = await this.#request({
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
    const put = await this.#request({
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
    const sent = await this.#request({
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
