/**
 * Registry authentication: credentials from docker's config file, `WWW-Authenticate` challenges,
 * the bearer token flow of the distribution token spec (with a per-scope cache), and Basic auth.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { dirname, join } from "node:path";
import { RegistryError, UnauthorizedError } from "./errors.ts";

/** A user name and password (or token used as a password) for one registry. */
export interface Credentials {
  username: string;
  password: string;
}

/** One challenge of a `WWW-Authenticate` header, e.g. Bearer with realm/service/scope. */
export interface Challenge {
  /** Lower-cased scheme: `bearer`, `basic`, ... */
  scheme: string;
  /** Parameters with lower-cased names. */
  params: Record<string, string>;
}

/** The key Docker Hub's credentials are stored under, for compatibility with docker login. */
export const DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/";
const DOCKER_HUB_NAMES = new Set([
  "docker.io",
  "index.docker.io",
  "registry-1.docker.io",
  "registry.hub.docker.com",
]);

/** Where docker keeps its config: `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`. */
export function dockerConfigPath(): string {
  const dir = Deno.env.get("DOCKER_CONFIG");
  if (dir) return join(dir, "config.json");
  const home = Deno.env.get("HOME") ?? "/root";
  return join(home, ".docker", "config.json");
}

/** The host part of an `auths` key: keys may be URLs like `https://index.docker.io/v1/`. */
function keyHost(key: string): string {
  const stripped = key.replace(/^https?:\/\//i, "");
  return stripped.split("/")[0].toLowerCase();
}

function sameRegistry(a: string, b: string): boolean {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  return x === y || (DOCKER_HUB_NAMES.has(x) && DOCKER_HUB_NAMES.has(y));
}

interface AuthEntry {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
}

interface DockerConfig {
  auths?: Record<string, AuthEntry>;
  [key: string]: unknown;
}

function decodeEntry(entry: AuthEntry): Credentials | undefined {
  if (entry.auth) {
    const text = Buffer.from(entry.auth, "base64").toString("utf8");
    const i = text.indexOf(":");
    if (i > 0) return { username: text.slice(0, i), password: text.slice(i + 1) };
  }
  if (entry.username && entry.password !== undefined) {
    return { username: entry.username, password: entry.password };
  }
  return undefined;
}

/**
 * Finds the credentials for `host` in a parsed docker config. An exact key wins over a URL key
 * naming the same host; Docker Hub's several names are one registry.
 */
export function credentialsFromConfig(config: unknown, host: string): Credentials | undefined {
  const auths = (config as DockerConfig | null)?.auths;
  if (!auths || typeof auths !== "object") return undefined;
  const keys = Object.keys(auths);
  const exact = keys.find((k) => k === host);
  const ordered = exact ? [exact, ...keys.filter((k) => k !== exact)] : keys;
  for (const key of ordered) {
    if (!sameRegistry(keyHost(key), host)) continue;
    const creds = decodeEntry(auths[key] ?? {});
    if (creds) return creds;
  }
  return undefined;
}

async function readConfig(path: string): Promise<DockerConfig> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return {};
    throw err;
  }
  try {
    const doc = JSON.parse(text);
    if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
      throw new Error("not an object");
    }
    return doc;
  } catch (err) {
    throw new Error(`${path}: invalid docker config: ${(err as Error).message}`);
  }
}

/** Reads the credentials for `host` from docker's config file; undefined when there are none. */
export async function loadCredentials(
  host: string,
  path: string = dockerConfigPath(),
): Promise<Credentials | undefined> {
  return credentialsFromConfig(await readConfig(path), host);
}

function authKey(host: string): string {
  return DOCKER_HUB_NAMES.has(host.toLowerCase()) ? DOCKER_HUB_AUTH_KEY : host;
}

async function writeConfigAtomically(path: string, config: DockerConfig): Promise<void> {
  await Deno.mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  try {
    await Deno.writeTextFile(tmp, JSON.stringify(config, null, "\t") + "\n", {
      mode: 0o600,
      createNew: true,
    });
    // The mode given at creation is reduced by the umask; credentials must stay private.
    await Deno.chmod(tmp, 0o600);
    await Deno.rename(tmp, path);
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    throw err;
  }
}

/**
 * Stores credentials for `host` the way `docker login` does (base64 `auth`, Docker Hub under
 * its legacy URL key), keeping every other field of the file. The file is replaced atomically
 * with mode 0600.
 */
export async function saveCredentials(
  host: string,
  username: string,
  password: string,
  path: string = dockerConfigPath(),
): Promise<void> {
  const config = await readConfig(path);
  const auths = { ...(config.auths ?? {}) };
  const key = authKey(host);
  for (const k of Object.keys(auths)) {
    if (k !== key && sameRegistry(keyHost(k), host)) delete auths[k];
  }
  auths[key] = { auth: Buffer.from(`${username}:${password}`, "utf8").toString("base64") };
  await writeConfigAtomically(path, { ...config, auths });
}

/** Removes every stored credential for `host`; returns whether there was one. */
export async function removeCredentials(
  host: string,
  path: string = dockerConfigPath(),
): Promise<boolean> {
  const config = await readConfig(path);
  const auths = { ...(config.auths ?? {}) };
  const keys = Object.keys(auths).filter((k) => sameRegistry(keyHost(k), host));
  if (keys.length === 0) return false;
  for (const k of keys) delete auths[k];
  await writeConfigAtomically(path, { ...config, auths });
  return true;
}

/** `Authorization` header value for Basic auth. */
export function basicAuthorization(creds: Credentials): string {
  return "Basic " + Buffer.from(`${creds.username}:${creds.password}`, "utf8").toString("base64");
}

/**
 * Parses a `WWW-Authenticate` header (RFC 7235): one or more challenges, each a scheme followed
 * by comma-separated `name=value` parameters whose values may be quoted strings.
 */
export function parseWwwAuthenticate(header: string): Challenge[] {
  const s = header;
  const challenges: Challenge[] = [];
  let i = 0;
  const skip = (re: RegExp) => {
    while (i < s.length && re.test(s[i])) i++;
  };
  const token = (): string => {
    const start = i;
    while (i < s.length && /[!#$%&'*+.^_`|~0-9A-Za-z-]/.test(s[i])) i++;
    return s.slice(start, i);
  };
  const quoted = (): string => {
    let value = "";
    i++; // opening quote
    while (i < s.length && s[i] !== '"') {
      if (s[i] === "\\" && i + 1 < s.length) i++;
      value += s[i++];
    }
    i++; // closing quote
    return value;
  };
  let current: Challenge | undefined;
  while (i < s.length) {
    skip(/[\s,]/);
    if (i >= s.length) break;
    const name = token();
    if (name === "") {
      i++; // A stray character: skip it rather than loop on malformed input.
      continue;
    }
    skip(/[ \t]/);
    if (s[i] === "=") {
      i++;
      skip(/[ \t]/);
      const value = s[i] === '"' ? quoted() : token();
      // A parameter before any scheme belongs to nothing; drop it.
      if (current) current.params[name.toLowerCase()] = value;
      continue;
    }
    current = { scheme: name.toLowerCase(), params: {} };
    challenges.push(current);
    // A token68 credential (`Negotiate abc==`) may follow the scheme instead of parameters.
    const t68 = /^[A-Za-z0-9._~+/-]+=*(?=\s*(,|$))/.exec(s.slice(i));
    if (t68) {
      current.params[""] = t68[0];
      i += t68[0].length;
    }
  }
  return challenges;
}

interface CachedToken {
  token: string;
  expiresAt: number;
}

/** Options for {@link TokenStore}. */
export interface TokenStoreOptions {
  userAgent?: string;
  timeoutMs?: number;
}

/**
 * Gets bearer tokens from a registry's token server and caches them per realm, service, scope
 * set and user until shortly before they expire.
 */
export class TokenStore {
  #cache = new Map<string, CachedToken>();
  #userAgent?: string;
  #timeoutMs: number;

  constructor(options: TokenStoreOptions = {}) {
    this.#userAgent = options.userAgent;
    this.#timeoutMs = options.timeoutMs ?? 30_000;
  }

  #key(challenge: Challenge, scopes: string[], creds?: Credentials): string {
    return JSON.stringify([
      challenge.params.realm,
      challenge.params.service ?? "",
      [...scopes].sort(),
      creds?.username ?? "",
    ]);
  }

  /** A cached token that is still valid, if any (no network). */
  cached(challenge: Challenge, scopes: string[], creds?: Credentials): string | undefined {
    const hit = this.#cache.get(this.#key(challenge, scopes, creds));
    return hit && hit.expiresAt > Date.now() ? hit.token : undefined;
  }

  /** Forgets a token, e.g. after the registry rejected it. */
  invalidate(challenge: Challenge, scopes: string[], creds?: Credentials): void {
    this.#cache.delete(this.#key(challenge, scopes, creds));
  }

  /**
   * A token for `scopes` (e.g. `repository:library/nginx:pull`), from the cache or fetched with
   * `GET realm?service=&scope=` (Basic auth when credentials are given).
   *
   * @param registry the registry host, named in errors.
   */
  async token(
    registry: string,
    challenge: Challenge,
    scopes: string[],
    creds?: Credentials,
  ): Promise<string> {
    const hit = this.cached(challenge, scopes, creds);
    if (hit) return hit;
    const realm = challenge.params.realm;
    if (!realm) {
      throw new RegistryError(
        `${registry}: bearer challenge without realm`,
        "UNAUTHORIZED",
        registry,
      );
    }
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new RegistryError(
        `${registry}: invalid token realm ${realm}`,
        "UNAUTHORIZED",
        registry,
      );
    }
    if (challenge.params.service) url.searchParams.set("service", challenge.params.service);
    for (const scope of scopes) url.searchParams.append("scope", scope);
    const headers = new Headers({ Accept: "application/json" });
    if (this.#userAgent) headers.set("User-Agent", this.#userAgent);
    if (creds) {
      headers.set("Authorization", basicAuthorization(creds));
      // Docker Hub only issues refreshable tokens when asked; harmless elsewhere.
      url.searchParams.set("account", creds.username);
    }
    let res: Response;
    try {
      res = await fetch(url, { headers, signal: AbortSignal.timeout(this.#timeoutMs) });
    } catch (err) {
      const timedOut = (err as Error).name === "TimeoutError";
      throw new RegistryError(
        `${registry}: token server ${url.host} ${timedOut ? "timed out" : "unreachable"}: ${
          (err as Error).message
        }`,
        timedOut ? "TIMEOUT" : "NETWORK",
        registry,
        undefined,
        [],
        { cause: err },
      );
    }
    if (res.status === 401 || res.status === 403) {
      await res.body?.cancel();
      throw new UnauthorizedError(
        creds
          ? `unauthorized: incorrect username or password for ${registry}`
          : `authentication required: ${registry} needs credentials (tsbox login ${registry})`,
        registry,
        res.status,
      );
    }
    if (!res.ok) {
      const text = await res.text().catch(() => "");
      throw new RegistryError(
        `${registry}: token server answered ${res.status}: ${text.slice(0, 200)}`,
        "UNAUTHORIZED",
        registry,
        res.status,
      );
    }
    let body: Record<string, unknown>;
    try {
      body = await res.json();
    } catch {
      throw new RegistryError(
        `${registry}: token server sent invalid JSON`,
        "UNAUTHORIZED",
        registry,
      );
    }
    const token = typeof body.token === "string" && body.token
      ? body.token
      : typeof body.access_token === "string"
      ? body.access_token
      : "";
    if (!token) {
      throw new RegistryError(`${registry}: token server sent no token`, "UNAUTHORIZED", registry);
    }
    // The spec's default lifetime is 60 s; leave a margin so a token never expires in flight.
    const expiresIn = typeof body.expires_in === "number" && body.expires_in > 0
      ? body.expires_in
      : 60;
    const issued = typeof body.issued_at === "string" ? Date.parse(body.issued_at) : NaN;
    const start = Number.isFinite(issued) && issued <= Date.now() ? issued : Date.now();
    this.#cache.set(this.#key(challenge, scopes, creds), {
      token,
      expiresAt: start + expiresIn * 1000 - Math.min(10_000, expiresIn * 100),
    });
    return token;
  }
}
