/**
 * testcontainers (npm) against tsbox's socket (root): it pulls the test registry's redis
 * (tests/api_redis.ts), starts it with a published port, waits for the port as it does against
 * dockerd (its host check and its checks inside the container through exec), talks redis's
 * protocol to it, runs redis-cli in it and stops it. Ryuk, testcontainers' reaper container, is turned off
 * with TESTCONTAINERS_RYUK_DISABLED=true: its image is not in the test registry, and the test
 * removes what it started itself.
 */
import { assertEquals } from "./assert.ts";
import { redisImage } from "./api_redis.ts";
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

/** Sends redis commands (inline protocol) on one connection; returns what came back. */
async function redis(port: number, commands: string[]): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(new TextEncoder().encode(commands.map((c) => `${c}\r\n`).join("")));
    const buf = new Uint8Array(4096);
    let text = "";
    // The replies here are one line each, but GET's: two.
    while (text.split("\r\n").length <= commands.length + 1) {
      const n = await conn.read(buf);
      if (n === null) break;
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
    return text;
  } finally {
    conn.close();
  }
}

rootTest(
  "api testcontainers: start the registry's redis, wait for its port, talk to it",
  async () => {
    const t = await setup();
    const image = await redisImage();
    // testcontainers reads these when it first looks for a container runtime.
    Deno.env.set("DOCKER_HOST", `unix://${t.socket}`);
    Deno.env.set("DOCKER_CONFIG", t.config);
    Deno.env.set("TESTCONTAINERS_RYUK_DISABLED", "true");
    // The published port is reached on loopback, never through another address of the host.
    Deno.env.set("TESTCONTAINERS_HOST_OVERRIDE", "127.0.0.1");
    try {
      const { GenericContainer, Wait } = await importTestcontainers();
      const started = await new GenericContainer(image)
        .withExposedPorts(6379)
        .withName("t-api-tc")
        .withWaitStrategy(Wait.forListeningPorts())
        .withStartupTimeout(60_000)
        .start();
      try {
        assertEquals(started.getHost(), "127.0.0.1");
        const port = started.getMappedPort(6379);
        assertEquals(
          await redis(port, ["PING", "SET greeting hello-from-deno", "GET greeting"]),
          "+PONG\r\n+OK\r\n$15\r\nhello-from-deno\r\n",
        );
        const exec = await started.exec(["redis-cli", "GET", "greeting"]);
        assertEquals([exec.exitCode, exec.output], [0, "hello-from-deno\n"]);
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
