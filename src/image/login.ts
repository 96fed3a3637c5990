/**
 * `login` / `logout`: credentials are checked against the registry (`GET /v2/` with Basic auth,
 * or a token from its token server) before they are written to docker's config file, so a wrong
 * password never lands there.
 *
 * @module
 */
import { removeCredentials, saveCredentials } from "../../registry/auth.ts";
import { RegistryClient } from "../../registry/client.ts";
import { DEFAULT_DOMAIN, registryHost } from "../../registry/reference.ts";
import { isInsecureDomain, loadRegistriesConf } from "../../registry/registries_conf.ts";
import { UsageError } from "../errors.ts";
import { VERSION } from "../version.ts";

const DOCKER_HUB = new Set([
  "docker.io",
  "index.docker.io",
  "registry-1.docker.io",
  "registry.hub.docker.com",
]);

/**
 * The registry domain a `login`/`logout` SERVER names: scheme and path are dropped, and Docker
 * Hub's several names (and no name at all) mean docker.io.
 */
export function loginDomain(server?: string): string {
  if (!server) return DEFAULT_DOMAIN;
  const host = server.replace(/^[a-z]+:\/\//i, "").split("/")[0].toLowerCase();
  if (!host) throw new UsageError(`invalid registry ${JSON.stringify(server)}`);
  return DOCKER_HUB.has(host) ? DEFAULT_DOMAIN : host;
}

/** Options of {@link login}. */
export interface LoginOptions {
  /** Registries reached over plain HTTP besides loopback. */
  readonly insecure?: readonly string[];
  /** The docker config file to write (default `$DOCKER_CONFIG/config.json` or `~/.docker/`). */
  readonly configPath?: string;
}

/**
 * Verifies `username`/`password` against `server` (Docker Hub by default) and stores them in
 * docker's config file. Returns the registry host the credentials are stored for.
 *
 * @throws {UnauthorizedError} (from registry/errors.ts) when the registry refuses them.
 */
export async function login(
  server: string | undefined,
  username: string,
  password: string,
  options: LoginOptions = {},
): Promise<string> {
  const domain = loginDomain(server);
  const host = registryHost(domain);
  const creds = { username, password };
  const client = new RegistryClient({
    insecure: [...(options.insecure ?? [])],
    userAgent: `tsbox/${VERSION}`,
    credentials: () => creds,
  });
  // registries.conf's `insecure = true` for this registry means plain HTTP, as for pulls.
  if (isInsecureDomain(await loadRegistriesConf(), domain)) client.allowInsecure(domain);
  await client.ping(domain);
  await saveCredentials(host, username, password, options.configPath);
  return host;
}

/** Removes the stored credentials of `server`; returns the host and whether there were any. */
export async function logout(
  server?: string,
  configPath?: string,
): Promise<{ host: string; removed: boolean }> {
  const host = registryHost(loginDomain(server));
  return { host, removed: await removeCredentials(host, configPath) };
}
