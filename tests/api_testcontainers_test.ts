/**
 * testcontainers (npm) against tsbox's socket (root): it pulls the fixture registry's nginx (the
 * test registry has no redis), starts it with a published port, waits for the port as it does
 * against dockerd (its host check and its checks inside the container through exec), talks HTTP
 * to it, runs a command in it and stops it. Ryuk, testcontainers' reaper container, is turned off
 * with TESTCONTAINERS_RYUK_DISABLED=true: its image is not in the test registry, and the test
 * removes what it started itself.
 */
import { assertEquals, assertStringIncludes } from "./assert.ts";
import { NGINX_MARKER } from "./fixtures/images.ts";
import { ok, rootTest, setup } from "./api_helpers.ts";

/** What the test uses of testcontainers' API. */
interface Started {
  getHost(): string;
  getMappedPort(port: number): number;
  exec(cmd: string[]): Promise<{ exitCode: number; output: string }>;
  stop(o: { timeout: number }): Promise<unknown>;
}
interface Builder {
  withExposedPorts(...ports: number[]): Builder;
  withName(name: string): Builder;
  withWaitStrategy(w: unknown): Builder;
  withStartupTimeout(ms: number): Builder;
  start(): Promise<Started>;
}
interface Testcontainers {
  GenericContainer: new (image: string) => Builder;
  Wait: { forListeningPorts(): unknown };
}

/**
 * testcontainers, loaded at run time only: its dependencies bring an older @types/node whose
 * `node:` modules lack node:sqlite and zstd, which would fail the type check of every test
 * module checked with this one.
 */
function importTestcontainers(): Promise<Testcontainers> {
  const name = "testcontainers";
  return import(name) as Promise<Testcontainers>;
}

rootTest(
  "api testcontainers: start the registry's nginx, wait for its port, talk to it",
  async () => {
    const t = await setup();
    // testcontainers reads these when it first looks for a container runtime.
    Deno.env.set("DOCKER_HOST", `unix://${t.socket}`);
    Deno.env.set("DOCKER_CONFIG", t.config);
    Deno.env.set("TESTCONTAINERS_RYUK_DISABLED", "true");
    // The published port is reached on loopback, never through another address of the host.
    Deno.env.set("TESTCONTAINERS_HOST_OVERRIDE", "127.0.0.1");
    try {
      const { GenericContainer, Wait } = await importTestcontainers();
      const started = await new GenericContainer(t.fx.refs.nginx)
        .withExposedPorts(80)
        .withName("t-api-tc")
        .withWaitStrategy(Wait.forListeningPorts())
        .withStartupTimeout(60_000)
        .start();
      try {
        const url = `http://${started.getHost()}:${started.getMappedPort(80)}/`;
        const res = await fetch(url);
        assertEquals(res.status, 200);
        assertStringIncludes(await res.text(), NGINX_MARKER);
        const exec = await started.exec(["cat", "/usr/share/nginx/html/index.html"]);
        assertEquals([exec.exitCode, exec.output], [0, `${NGINX_MARKER}\n`]);
        const ps = await ok(t.d("ps", "--format", "{{.Names}} {{.State}}"));
        assertEquals(ps.trim(), "t-api-tc running");
        // Its labels mark it as testcontainers' (what Ryuk would reap by).
        const labels = await ok(
          t.d("inspect", "--format", '{{index .Config.Labels "org.testcontainers"}}', "t-api-tc"),
        );
        assertEquals(labels.trim(), "true");
      } finally {
        await started.stop({ timeout: 2_000 });
      }
      assertEquals((await ok(t.d("ps", "-aq"))).trim(), "");
    } finally {
      for (const k of ["DOCKER_HOST", "DOCKER_CONFIG", "TESTCONTAINERS_RYUK_DISABLED"]) {
        Deno.env.delete(k);
      }
      Deno.env.delete("TESTCONTAINERS_HOST_OVERRIDE");
      await t.d("rm", "-f", "t-api-tc");
      await t.cleanup();
    }
  },
);
