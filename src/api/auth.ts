/**
 * Registry credentials as docker's client hands them to the daemon: `POST /auth` (verify a
 * login, store nothing: the client keeps its own config) and the `X-Registry-Auth` header of
 * pulls and pushes (base64url JSON), used for that one transfer.
 *
 * @module
 */
import { RegistryClient } from "../../registry/client.ts";
import { registryHost } from "../../registry/reference.ts";
import { isInsecureDomain, loadRegistriesConf } from "../../registry/registries_conf.ts";
import { loginDomain } from "../image/login.ts";
import { VERSION } from "../version.ts";
import type { ApiContext } from "./context.ts";
import { badParameter } from "./errors.ts";
import { type ApiRequest, type ApiResponse, HttpError, json } from "./http.ts";
import { parseJsonBody } from "./params.ts";

interface Credentials {
  username: string;
  password: string;
}

/** The credentials of an auth config object, if it holds a user and a password. */
function credentialsOf(v: unknown): Credentials | undefined {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return undefined;
  const o = v as Record<string, unknown>;
  const username = typeof o.username === "string" ? o.username : "";
  const password = typeof o.password === "string" ? o.password : "";
  return username && password ? { username, password } : undefined;
}

/**
 * A registry client with the request's `X-Registry-Auth` credentials, or undefined (then the
 * transfer uses the credentials tsbox stores, as the CLI does).
 */
export function clientForRequest(ctx: ApiContext, req: ApiRequest): RegistryClient | undefined {
  const header = req.headers.get("x-registry-auth");
  if (!header) return undefined;
  let parsed: unknown;
  try {
    const b64 = header.replaceAll("-", "+").replaceAll("_", "/");
    const padded = b64 + "=".repeat((4 - b64.length % 4) % 4);
    parsed = JSON.parse(
      new TextDecoder().decode(Uint8Array.from(atob(padded), (c) => c.charCodeAt(0))),
    );
  } catch {
    throw badParameter("invalid X-Registry-Auth header");
  }
  const creds = credentialsOf(parsed);
  if (!creds) return undefined;
  return new RegistryClient({
    insecure: [...ctx.globals.insecureRegistries],
    userAgent: `tsbox/${VERSION}`,
    credentials: () => creds,
  });
}

/** `POST /auth`: checks the credentials against the registry; 401 when it refuses them. */
export async function auth(ctx: ApiContext, req: ApiRequest): Promise<ApiResponse> {
  const body = await parseJsonBody(req);
  const creds = credentialsOf(body);
  if (!creds) throw badParameter("username and password are required");
  const server = (body as Record<string, unknown>).serveraddress;
  const domain = loginDomain(typeof server === "string" ? server : undefined);
  const client = new RegistryClient({
    insecure: [...ctx.globals.insecureRegistries],
    userAgent: `tsbox/${VERSION}`,
    credentials: () => creds,
  });
  if (isInsecureDomain(await loadRegistriesConf(), domain)) client.allowInsecure(domain);
  try {
    await client.ping(domain);
  } catch (err) {
    if ((err as Error).name === "UnauthorizedError") {
      throw new HttpError(
        401,
        `Get "https://${registryHost(domain)}/v2/": unauthorized: ${(err as Error).message}`,
      );
    }
    throw err;
  }
  return json(200, { Status: "Login Succeeded", IdentityToken: "" });
}
