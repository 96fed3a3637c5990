/**
 * The bearer token flow, redirects, retries and failure mapping, against an in-process server on
 * 127.0.0.1 playing both a token server and a registry (no local registry does token auth).
 */
import { createHash } from "node:crypto";
import { assertEquals, assertOk, assertRejects, assertStringIncludes } from "../tests/assert.ts";
import { basicAuthorization } from "./auth.ts";
import { RegistryClient } from "./client.ts";
import { DigestMismatchError, RegistryError, UnauthorizedError } from "./errors.ts";
import { MediaType } from "./manifest.ts";
import { parseReference } from "./reference.ts";

const sha256 = (b: Uint8Array) => "sha256:" + createHash("sha256").update(b).digest("hex");
const MANIFEST = new TextEncoder().encode(JSON.stringify({
  schemaVersion: 2,
  mediaType: MediaType.OciManifest,
  config: { mediaType: MediaType.OciConfig, digest: "sha256:" + "a".repeat(64), size: 2 },
  layers: [],
}));
const BLOB = new TextEncoder().encode("blob bytes ".repeat(1000));

interface TokenRequest {
  scopes: string[];
  service: string | null;
  authorization: string | null;
}

/** A fake registry with token auth; every request is recorded for the assertions. */
function fakeRegistry() {
  const tokenRequests: TokenRequest[] = [];
  const storageAuth: (string | null)[] = [];
  const issued = new Map<string, string[]>();
  const counts = new Map<string, number>();
  let release: () => void = () => {};
  const hang = new Promise<void>((r) => release = r);
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (req): Promise<Response> => {
      const url = new URL(req.url);
      const p = url.pathname;
      counts.set(p, (counts.get(p) ?? 0) + 1);
      const n = counts.get(p)!;
      if (p === "/token") {
        const authorization = req.headers.get("authorization");
        const scopes = url.searchParams.getAll("scope");
        tokenRequests.push({ scopes, service: url.searchParams.get("service"), authorization });
        if (
          authorization && authorization !== basicAuthorization({ username: "u", password: "p" })
        ) {
          return Response.json({ details: "incorrect username or password" }, { status: 401 });
        }
        const token = `T-${tokenRequests.length}`;
        issued.set(token, scopes);
        // Docker Hub sends both names; send only access_token to prove it is accepted.
        return Response.json({ access_token: token, expires_in: 300 });
      }
      if (p.startsWith("/storage/")) {
        storageAuth.push(req.headers.get("authorization"));
        return new Response(BLOB);
      }
      const repo = /^\/v2\/(.+?)\/(manifests|blobs)\//.exec(p)?.[1];
      const token = req.headers.get("authorization")?.replace(/^Bearer /, "") ?? "";
      const allowed = issued.get(token)?.some((s) => s.startsWith(`repository:${repo}:`)) ?? false;
      if (!allowed) {
        return new Response(JSON.stringify({ errors: [{ code: "UNAUTHORIZED", message: "no" }] }), {
          status: 401,
          headers: {
            "WWW-Authenticate": `Bearer realm="http://${url.host}/token",service="fake",` +
              `scope="repository:${repo}:pull"`,
          },
        });
      }
      const headers = {
        "Content-Type": MediaType.OciManifest,
        "Docker-Content-Digest": sha256(MANIFEST),
      };
      switch (repo) {
        case "x/y":
          if (p.includes("/blobs/")) {
            return Response.redirect(
              `http://localhost:${url.port}/storage/${p.split("/").pop()}`,
              307,
            );
          }
          return new Response(MANIFEST, { headers });
        case "x/lie":
          return new Response(MANIFEST, {
            headers: { ...headers, "Docker-Content-Digest": "sha256:" + "0".repeat(64) },
          });
        case "x/flaky":
          if (n <= 3) {
            // Round 1 is the 401 before the token; then 503, 429, then success.
            return new Response("busy", {
              status: n === 2 ? 503 : 429,
              headers: { "Retry-After": "0" },
            });
          }
          return new Response(MANIFEST, { headers });
        case "x/slow":
          await hang;
          return new Response(MANIFEST, { headers });
        case "x/stall":
          // Half a body, then silence.
          return new Response(
            new ReadableStream({
              async start(c) {
                c.enqueue(BLOB.slice(0, 100));
                await hang;
                c.close();
              },
            }),
            { headers: { "Content-Length": String(BLOB.length) } },
          );
        case "x/denied":
          return Response.json({
            errors: [{ code: "DENIED", message: "requested access to the resource is denied" }],
          }, { status: 403 });
      }
      return new Response("?", { status: 500 });
    },
  );
  const host = `127.0.0.1:${(server.addr as Deno.NetAddr).port}`;
  return {
    host,
    tokenRequests,
    storageAuth,
    async stop() {
      release();
      await server.shutdown();
    },
  };
}

Deno.test("bearer flow: anonymous token for the challenged scope, cached across requests", async () => {
  const fake = fakeRegistry();
  try {
    const client = new RegistryClient({ credentials: () => undefined });
    const ref = parseReference(`${fake.host}/x/y:v1`);
    const m = await client.getManifest(ref);
    assertEquals(m.digest, sha256(MANIFEST));
    assertEquals(m.mediaType, MediaType.OciManifest);
    await client.getManifest(ref);
    assertEquals(await client.headManifest(ref), sha256(MANIFEST));
    assertEquals(fake.tokenRequests, [{
      scopes: ["repository:x/y:pull"],
      service: "fake",
      authorization: null,
    }]);
  } finally {
    await fake.stop();
  }
});

Deno.test("bearer flow: credentials go to the token server as Basic auth", async () => {
  const fake = fakeRegistry();
  try {
    const good = new RegistryClient({ credentials: () => ({ username: "u", password: "p" }) });
    await good.getManifest(parseReference(`${fake.host}/x/y:v1`));
    assertEquals(
      fake.tokenRequests[0].authorization,
      basicAuthorization({ username: "u", password: "p" }),
    );
    const bad = new RegistryClient({ credentials: () => ({ username: "u", password: "nope" }) });
    const err = await assertRejects(
      () => bad.getManifest(parseReference(`${fake.host}/x/y:v1`)),
      UnauthorizedError,
      "incorrect username or password",
    );
    assertStringIncludes(err.message, fake.host);
  } finally {
    await fake.stop();
  }
});

Deno.test("blob redirects to another host are followed without the Authorization header", async () => {
  const fake = fakeRegistry();
  try {
    const client = new RegistryClient({ credentials: () => undefined });
    const blob = await client.fetchBlob(parseReference(`${fake.host}/x/y`), sha256(BLOB));
    assertEquals(new Uint8Array(await new Response(blob.body).arrayBuffer()), BLOB);
    assertEquals(blob.size, BLOB.length);
    assertEquals(fake.storageAuth, [null]);
    // The same redirect serving bytes that are not the requested digest fails at the end.
    const wrong = await client.fetchBlob(
      parseReference(`${fake.host}/x/y`),
      "sha256:" + "e".repeat(64),
    );
    await assertRejects(() => new Response(wrong.body).arrayBuffer(), DigestMismatchError);
  } finally {
    await fake.stop();
  }
});

Deno.test("a Docker-Content-Digest that does not match the bytes is refused", async () => {
  const fake = fakeRegistry();
  try {
    const client = new RegistryClient({ credentials: () => undefined });
    const err = await assertRejects(
      () => client.getManifest(parseReference(`${fake.host}/x/lie:v1`)),
      DigestMismatchError,
    );
    assertEquals(err.actual, sha256(MANIFEST));
    assertEquals(err.expected, "sha256:" + "0".repeat(64));
  } finally {
    await fake.stop();
  }
});

Deno.test("503 and 429 are retried a bounded number of times", async () => {
  const fake = fakeRegistry();
  try {
    const few = new RegistryClient({ retries: 1, backoffMs: 1, credentials: () => undefined });
    const err = await assertRejects(
      () => few.getManifest(parseReference(`${fake.host}/x/flaky:v1`)),
      RegistryError,
      "toomanyrequests",
    );
    assertEquals(err.status, 429);
    // Three server answers so far (401, 503, 429); the next one succeeds.
    const enough = new RegistryClient({ retries: 3, backoffMs: 1, credentials: () => undefined });
    assertEquals(
      (await enough.getManifest(parseReference(`${fake.host}/x/flaky:v1`))).digest,
      sha256(MANIFEST),
    );
  } finally {
    await fake.stop();
  }
});

Deno.test("a registry that stops answering times out with a typed error", async () => {
  const fake = fakeRegistry();
  try {
    const client = new RegistryClient({
      timeoutMs: 1000,
      retries: 1,
      backoffMs: 1,
      credentials: () => undefined,
    });
    const err = await assertRejects(
      () => client.getManifest(parseReference(`${fake.host}/x/slow:v1`)),
      RegistryError,
      "timed out",
    );
    assertEquals(err.code, "TIMEOUT");
  } finally {
    await fake.stop();
  }
});

Deno.test("a blob body that stalls errors with TIMEOUT instead of hanging", async () => {
  const fake = fakeRegistry();
  try {
    const client = new RegistryClient({ timeoutMs: 1000, credentials: () => undefined });
    const blob = await client.fetchBlob(parseReference(`${fake.host}/x/stall`), sha256(BLOB));
    const err = await assertRejects(() => new Response(blob.body).arrayBuffer(), RegistryError);
    assertEquals(err.code, "TIMEOUT");
  } finally {
    await fake.stop();
  }
});

Deno.test("403 with the registry's errors[] becomes a DENIED error carrying its message", async () => {
  const fake = fakeRegistry();
  try {
    const client = new RegistryClient({ credentials: () => undefined });
    const err = await assertRejects(
      () => client.getManifest(parseReference(`${fake.host}/x/denied:v1`)),
      UnauthorizedError,
      "denied: requested access to the resource is denied",
    );
    assertEquals(err.code, "DENIED");
    assertOk(err.details.some((d) => d.code === "DENIED"));
  } finally {
    await fake.stop();
  }
});
