/**
 * The transport of the registry client: HTTP exchanges with a registry host (plain HTTP for
 * insecure and loopback hosts, manual redirects that drop credentials on other hosts, an idle
 * timeout), bearer and Basic auth from the host's challenge, bounded retries, and the mapping
 * of error answers to typed errors. The manifest and blob operations are in client.ts.
 *
 * @module
 */
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
  NotFoundError,
  RegistryError,
  type RegistryErrorCode,
  type RegistryErrorDetail,
  UnauthorizedError,
} from "./errors.ts";
import { readBounded } from "./bounded.ts";
import { type Reference, registryHost } from "./reference.ts";

/** Options for {@link RegistryTransport} (and so the client). */
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

/** What a request needs the registry to allow. */
export type Action = "pull" | "push";

/** One request of a registry operation. */
export interface RequestSpec {
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

/** A response, with the idle timer its body is read under. */
export interface Sent {
  res: Response;
  /** Resets the idle timer (call on each body chunk). */
  touch: () => void;
  /** Stops the timer. */
  done: () => void;
}

const MAX_REDIRECTS = 10;
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

function isTlsFailure(err: unknown): boolean {
  const text = `${(err as Error)?.message} ${String((err as Error)?.cause ?? "")}`;
  return /corrupt message|certificate|tls|handshake|InvalidContentType|UnknownIssuer|ssl/i.test(
    text,
  );
}

/** Waits `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** The `errors` of a registry's error body (bounded; none when it is not JSON). */
export async function readErrors(res: Response): Promise<RegistryErrorDetail[]> {
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

/**
 * Talks to registries: one instance can serve many hosts and caches their auth state. The
 * operations (client.ts) go through {@link request}.
 */
export class RegistryTransport {
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
  protected async request(spec: RequestSpec): Promise<Sent> {
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
}
