import { Buffer } from "node:buffer";
import { join } from "node:path";
import { assertEquals, assertOk, assertRejects, assertStringIncludes } from "../tests/assert.ts";
import {
  basicAuthorization,
  type Challenge,
  credentialsFromConfig,
  DOCKER_HUB_AUTH_KEY,
  dockerConfigPath,
  loadCredentials,
  parseWwwAuthenticate,
  removeCredentials,
  saveCredentials,
  TokenStore,
} from "./auth.ts";
import { UnauthorizedError } from "./errors.ts";

const b64 = (s: string) => Buffer.from(s).toString("base64");

Deno.test("parseWwwAuthenticate reads bearer and basic challenges", () => {
  assertEquals(
    parseWwwAuthenticate(
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",' +
        'scope="repository:library/nginx:pull"',
    ),
    [{
      scheme: "bearer",
      params: {
        realm: "https://auth.docker.io/token",
        service: "registry.docker.io",
        scope: "repository:library/nginx:pull",
      },
    }],
  );
  assertEquals(parseWwwAuthenticate('Basic realm="Registry Realm"'), [
    { scheme: "basic", params: { realm: "Registry Realm" } },
  ]);
  // Several challenges, unquoted values, escapes, odd spacing and case.
  assertEquals(
    parseWwwAuthenticate(
      'Negotiate abc==, BASIC Realm = plain , Bearer realm="a\\"b",scope="repository:x:pull,push"',
    ),
    [
      { scheme: "negotiate", params: { "": "abc==" } },
      { scheme: "basic", params: { realm: "plain" } },
      { scheme: "bearer", params: { realm: 'a"b', scope: "repository:x:pull,push" } },
    ],
  );
  assertEquals(parseWwwAuthenticate(""), []);
  assertEquals(parseWwwAuthenticate('Bearer realm="unterminated').length, 1);
});

Deno.test("credentialsFromConfig finds auths by host, URL key and Docker Hub alias", () => {
  const config = {
    auths: {
      [DOCKER_HUB_AUTH_KEY]: { auth: b64("hubuser:hub:pass") },
      "https://quay.io/v2/": { username: "q", password: "qp" },
      "127.0.0.1:5000": { auth: b64("local:secret") },
      "empty.example": {},
    },
  };
  assertEquals(credentialsFromConfig(config, "registry-1.docker.io"), {
    username: "hubuser",
    password: "hub:pass",
  });
  assertEquals(credentialsFromConfig(config, "docker.io")?.username, "hubuser");
  assertEquals(credentialsFromConfig(config, "quay.io"), { username: "q", password: "qp" });
  assertEquals(credentialsFromConfig(config, "127.0.0.1:5000")?.password, "secret");
  assertEquals(credentialsFromConfig(config, "127.0.0.1:5001"), undefined);
  assertEquals(credentialsFromConfig(config, "empty.example"), undefined);
  assertEquals(credentialsFromConfig({}, "quay.io"), undefined);
  assertEquals(credentialsFromConfig(null, "quay.io"), undefined);
});

Deno.test("saveCredentials and removeCredentials rewrite the config atomically with mode 0600", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "sub", "config.json");
    await Deno.mkdir(join(dir, "sub"));
    await Deno.writeTextFile(path, JSON.stringify({ credsStore: "x", auths: { "a.io": {} } }));
    await saveCredentials("docker.io", "me", "p:w", path);
    await saveCredentials("127.0.0.1:5000", "u", "p", path);
    assertEquals((await Deno.stat(path)).mode! & 0o777, 0o600);
    const doc = JSON.parse(await Deno.readTextFile(path));
    assertEquals(doc.credsStore, "x");
    assertEquals(doc.auths[DOCKER_HUB_AUTH_KEY], { auth: b64("me:p:w") });
    assertEquals(await loadCredentials("registry-1.docker.io", path), {
      username: "me",
      password: "p:w",
    });
    assertEquals(await removeCredentials("docker.io", path), true);
    assertEquals(await removeCredentials("docker.io", path), false);
    assertEquals(await loadCredentials("docker.io", path), undefined);
    assertEquals((await loadCredentials("127.0.0.1:5000", path))?.username, "u");
    // No temp files are left behind.
    assertEquals([...Deno.readDirSync(join(dir, "sub"))].map((e) => e.name), ["config.json"]);
    // A missing file means no credentials; a new one is created with its directory.
    const fresh = join(dir, "new", "config.json");
    assertEquals(await loadCredentials("x.io", fresh), undefined);
    await saveCredentials("x.io", "a", "b", fresh);
    assertEquals(await loadCredentials("x.io", fresh), { username: "a", password: "b" });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("dockerConfigPath honours DOCKER_CONFIG", () => {
  const old = Deno.env.get("DOCKER_CONFIG");
  try {
    Deno.env.set("DOCKER_CONFIG", "/tmp/dc");
    assertEquals(dockerConfigPath(), "/tmp/dc/config.json");
    Deno.env.delete("DOCKER_CONFIG");
    assertStringIncludes(dockerConfigPath(), "/.docker/config.json");
  } finally {
    if (old === undefined) Deno.env.delete("DOCKER_CONFIG");
    else Deno.env.set("DOCKER_CONFIG", old);
  }
});

/** A token server on 127.0.0.1 that records requests and issues numbered tokens. */
function tokenServer(opts: { field: "token" | "access_token"; expiresIn?: number }) {
  const requests: { scope: string[]; service: string | null; auth: string | null }[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const url = new URL(req.url);
    const auth = req.headers.get("authorization");
    requests.push({
      scope: url.searchParams.getAll("scope"),
      service: url.searchParams.get("service"),
      auth,
    });
    if (auth && auth !== basicAuthorization({ username: "user", password: "pass" })) {
      return new Response("bad", { status: 401 });
    }
    return Response.json({
      [opts.field]: `tok-${requests.length}`,
      ...(opts.expiresIn !== undefined ? { expires_in: opts.expiresIn } : {}),
    });
  });
  const realm = `http://127.0.0.1:${server.addr.port}/token`;
  const challenge: Challenge = { scheme: "bearer", params: { realm, service: "reg" } };
  return { server, requests, challenge };
}

Deno.test("TokenStore fetches, caches per scope and accepts access_token", async () => {
  const { server, requests, challenge } = tokenServer({ field: "access_token", expiresIn: 300 });
  try {
    const store = new TokenStore();
    const pull = ["repository:a:pull"];
    assertEquals(await store.token("reg", challenge, pull), "tok-1");
    assertEquals(await store.token("reg", challenge, pull), "tok-1");
    assertEquals(requests.length, 1);
    assertEquals(requests[0], { scope: pull, service: "reg", auth: null });
    assertEquals(await store.token("reg", challenge, ["repository:b:pull"]), "tok-2");
    const creds = { username: "user", password: "pass" };
    assertEquals(await store.token("reg", challenge, pull, creds), "tok-3");
    assertEquals(requests[2].auth, basicAuthorization(creds));
    store.invalidate(challenge, pull);
    assertEquals(await store.token("reg", challenge, pull), "tok-4");
  } finally {
    await server.shutdown();
  }
});

Deno.test("TokenStore refetches expired tokens and reports bad credentials", async () => {
  // A 50 ms lifetime expires within the test.
  const { server, requests, challenge } = tokenServer({ field: "token", expiresIn: 0.05 });
  try {
    const store = new TokenStore();
    const scopes = ["repository:a:pull", "repository:b:pull"];
    assertEquals(await store.token("reg", challenge, scopes), "tok-1");
    // Polled, not slept: the token is forgotten once its lifetime has passed (10 s at most).
    const end = Date.now() + 10_000;
    while (store.cached(challenge, scopes) !== undefined) {
      assertOk(Date.now() < end, "the 50 ms token is still cached after 10 s");
      await new Promise((r) => setTimeout(r, 10));
    }
    assertEquals(await store.token("reg", challenge, scopes), "tok-2");
    assertEquals(requests[1].scope, scopes);
    const err = await assertRejects(
      () => store.token("reg", challenge, scopes, { username: "user", password: "wrong" }),
      UnauthorizedError,
      "incorrect username or password",
    );
    assertOk(err.message.includes("reg"));
  } finally {
    await server.shutdown();
  }
});
