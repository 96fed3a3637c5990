/**
 * README audit (issue 19), registry exchange against the fixture registries on 127.0.0.1:
 * `push -q` (the name alone, and the registry has the image), `login -u USER -p PASS` writing
 * `~/.docker/config.json` in a HOME of the test's own (other entries kept) and `logout SERVER`
 * removing only its entry, `--insecure-registry HOST` and `TSBOX_INSECURE_REGISTRIES` (plain HTTP
 * to a registry that is not named localhost/127.0.0.1).
 */
import { assertEquals, assertMatch, assertOk, assertStringIncludes } from "./assert.ts";
import { tempRoot } from "./cli.ts";
import { purgeRootSync } from "./cleanup.ts";
import { authRegistry, fetchManifest, fixtureRegistry } from "./fixtures/images.ts";
import { type Cli, cliFor, rootTest, uniqueName } from "./readme_audit.ts";

let shared: Promise<Cli & { busybox: string }> | undefined;

/** One store per test file holding the fixture busybox. */
function env(): Promise<Cli & { busybox: string }> {
  shared ??= (async () => {
    const fx = await fixtureRegistry();
    const { root } = await tempRoot();
    globalThis.addEventListener("unload", () => purgeRootSync(root));
    const cli = cliFor(root);
    await cli.ok(["pull", "-q", fx.refs.busybox]);
    return { ...cli, busybox: fx.refs.busybox };
  })();
  return shared;
}

rootTest("push -q prints the name alone; the registry then serves the image", async () => {
  const e = await env();
  const fx = await fixtureRegistry();
  const repo = `audit/${uniqueName("push")}`;
  const target = `${fx.registry.host}/${repo}:v1`;
  await e.ok(["tag", e.busybox, target]);
  try {
    assertEquals(await e.ok(["push", "-q", target]), `${target}\n`);
    const manifest = await fetchManifest(fx.registry, repo, "v1");
    const body = JSON.parse(new TextDecoder().decode(manifest.body));
    const id = (await e.ok(["image", "inspect", "-f", "{{.Id}}", target])).trim();
    assertEquals(body.config.digest, id);
    // Without -q, progress and the digest line as docker prints them.
    const loud = await e.ok(["push", target]);
    assertMatch(loud, new RegExp(`v1: digest: ${manifest.digest} size: \\d+`));
  } finally {
    await e.t(["rmi", target]);
  }
});

rootTest(
  "login -u -p writes ~/.docker/config.json of HOME, keeping other entries; logout",
  async () => {
    const e = await env();
    const reg = await authRegistry();
    const { host, username, password } = reg.registry;
    const home = await Deno.makeTempDir({ prefix: "tsbox-audit-home-" });
    const config = `${home}/.docker/config.json`;
    // No DOCKER_CONFIG: the file under HOME is docker's.
    const envVars = { HOME: home, DOCKER_CONFIG: `${home}/.docker` };
    try {
      await Deno.mkdir(`${home}/.docker`);
      const other = { auths: { "other.example:5000": { auth: btoa("o:p") } }, psFormat: "x" };
      await Deno.writeTextFile(config, JSON.stringify(other));

      const wrong = await e.t(["login", "-u", username!, "-p", "wrong", host], { env: envVars });
      assertEquals(wrong.code, 125, wrong.stderr);
      assertEquals(JSON.parse(await Deno.readTextFile(config)), other, "unchanged after a refusal");

      const right = await e.t(["login", "-u", username!, "-p", password!, host], { env: envVars });
      assertEquals(right.code, 0, right.stderr);
      assertStringIncludes(right.stdout, "Login Succeeded");
      const saved = JSON.parse(await Deno.readTextFile(config));
      assertEquals(atob(saved.auths[host].auth), `${username}:${password}`);
      assertEquals(saved.auths["other.example:5000"], other.auths["other.example:5000"]);
      assertEquals(saved.psFormat, "x");
      assertEquals(
        (await Deno.stat(config)).mode! & 0o077,
        0,
        "credentials are not readable by others",
      );

      // The stored credentials are used: pull from the auth registry works with this HOME only.
      const fresh = await tempRoot();
      try {
        const pulled = await cliFor(fresh.root).t(["pull", "-q", reg.refs.busybox], {
          env: envVars,
        });
        assertEquals(pulled.code, 0, pulled.stderr);
        const anon = await cliFor(fresh.root).t(["pull", "-q", reg.refs.busybox], {
          env: { HOME: `${home}/nowhere`, DOCKER_CONFIG: "" },
        });
        assertOk(anon.code !== 0, "a pull without the credentials is refused");
      } finally {
        await fresh.cleanup();
      }

      const out = await e.t(["logout", host], { env: envVars });
      assertEquals(out.code, 0, out.stderr);
      assertStringIncludes(out.stdout, `Removing login credentials for ${host}`);
      const after = JSON.parse(await Deno.readTextFile(config));
      assertEquals(after.auths[host], undefined);
      assertEquals(after.auths["other.example:5000"], other.auths["other.example:5000"]);
    } finally {
      await Deno.remove(home, { recursive: true });
    }
  },
);

rootTest(
  "--insecure-registry and TSBOX_INSECURE_REGISTRIES allow plain HTTP to 127.1",
  async () => {
    const fx = await fixtureRegistry();
    // 127.1 is 127.0.0.1, but not a name tsbox speaks plain HTTP to by itself.
    const port = fx.registry.host.split(":")[1];
    const host = `127.1:${port}`;
    const ref = `${host}/busybox:latest`;
    const fresh = await tempRoot();
    try {
      const t = cliFor(fresh.root);
      const refused = await t.t(["pull", "-q", ref]);
      assertOk(refused.code !== 0, "HTTPS to a plain HTTP registry fails");
      assertEquals((await t.t(["images", "-q"])).stdout, "");

      assertEquals(await t.ok(["--insecure-registry", host, "pull", "-q", ref]), `${ref}\n`);
      assertEquals(
        await t.ok(["run", "--rm", ref, "echo", "pulled-over-http"]),
        "pulled-over-http\n",
      );
      await t.ok(["rmi", ref]);

      const viaEnv = await t.t(["pull", "-q", ref], { env: { TSBOX_INSECURE_REGISTRIES: host } });
      assertEquals(viaEnv.code, 0, viaEnv.stderr);
      assertEquals((await t.ok(["images", "-q"])).trim().split("\n").length, 1);
    } finally {
      await fresh.cleanup();
    }
  },
);
