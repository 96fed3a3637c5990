/**
 * registries.conf end to end (root): a mirror of docker.io serving a short name, a plain-HTTP
 * (`insecure`) registry under a name tsbox does not treat as loopback, blocked registries that
 * receive no request, mirrors tried in order, a push that follows `location` but never a
 * mirror, and a login that follows `insecure`.
 *
 * No request may leave the machine, even when a config does not take: every tsbox here runs
 * with HTTPS_PROXY/HTTP_PROXY pointing at a listener of the test (the "outside guard"), and only
 * 127.0.0.1 bypasses it (NO_PROXY). A request for docker.io lands on the guard, which records
 * and closes it; the client never resolves the name. Each test first checks that the guard
 * catches a request, and fails before running tsbox otherwise.
 */
import { assertEquals, assertOk, assertStringIncludes } from "./assert.ts";
import { type CliResult, tempRoot, tsbox } from "./cli.ts";
import { fetchManifest, fixtureLayouts, pushLayout } from "./fixtures/images.ts";
import { startRegistry, type TestRegistry } from "./fixtures/registry.ts";

const isRoot = Deno.uid() === 0;

function rootTest(name: string, fn: () => Promise<void>) {
  Deno.test({ name, ignore: !isRoot, sanitizeResources: false, sanitizeOps: false, fn });
}

/**
 * A listener standing in for the internet, as the proxy of every tsbox the tests run: it
 * records the target of each proxy request (`CONNECT host:port`, or an absolute URL) and closes
 * the connection, so nothing is forwarded. Connections that are not proxy requests (a stray
 * probe of another process on this shared machine that hit the port) are not counted.
 */
class OutsideGuard {
  readonly #listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  readonly #targets: string[] = [];
  readonly #pending = new Set<Promise<void>>();
  readonly #loop: Promise<void>;

  constructor() {
    this.#loop = (async () => {
      for await (const conn of this.#listener) {
        const p = this.#classify(conn).finally(() => this.#pending.delete(p));
        this.#pending.add(p);
      }
    })().catch(() => {});
  }

  async #classify(conn: Deno.Conn): Promise<void> {
    const buf = new Uint8Array(1024);
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const n = await Promise.race([
        conn.read(buf),
        new Promise<null>((r) => timer = setTimeout(() => r(null), 2000)),
      ]);
      const line = new TextDecoder().decode(buf.subarray(0, n ?? 0)).split("\r\n")[0];
      const m = /^CONNECT (\S+) HTTP\/|^[A-Z]+ (https?:\/\/\S+) HTTP\//.exec(line);
      if (m) this.#targets.push(m[1] ?? m[2]);
    } catch {
      // A reset connection is no request.
    } finally {
      clearTimeout(timer);
      conn.close();
    }
  }

  /** The proxy requests seen so far (after the connections in flight were read). */
  async requests(): Promise<string[]> {
    while (this.#pending.size) await Promise.all([...this.#pending]);
    return [...this.#targets];
  }

  /** The environment that sends everything but 127.0.0.1 to the guard. */
  get env(): Record<string, string> {
    const proxy = `http://127.0.0.1:${(this.#listener.addr as Deno.NetAddr).port}`;
    return {
      HTTPS_PROXY: proxy,
      HTTP_PROXY: proxy,
      https_proxy: proxy,
      http_proxy: proxy,
      NO_PROXY: "127.0.0.1",
      no_proxy: "127.0.0.1",
      // Deno's update check (dl.deno.land) is Deno's, not tsbox's: it would land here too.
      DENO_NO_UPDATE_CHECK: "1",
    };
  }

  /**
   * Proves that Deno under {@link env} sends a request for another host to the guard: a fetch
   * of https://127.0.0.2 (loopback too, so nothing leaves even if the proxy were ignored).
   */
  async check(): Promise<void> {
    await new Deno.Command(Deno.execPath(), {
      args: ["eval", "await fetch('https://127.0.0.2:4443/v2/').catch(() => {})"],
      env: this.env,
      stdout: "null",
      stderr: "null",
    }).output();
    if (!(await this.requests()).includes("127.0.0.2:4443")) {
      throw new Error("the outside guard did not see a proxied request: refusing to run tsbox");
    }
    this.#targets.length = 0;
  }

  async close(): Promise<void> {
    this.#listener.close();
    await this.#loop;
    await this.requests();
  }
}

/** An HTTP server on 127.0.0.1 that records each request and forwards it (or answers 404). */
class CountingProxy {
  readonly requests: string[] = [];
  readonly #server: Deno.HttpServer<Deno.NetAddr>;

  /** @param upstream `http://127.0.0.1:PORT` to forward to; none: every request gets a 404. */
  constructor(upstream?: string) {
    this.#server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
      const url = new URL(req.url);
      this.requests.push(`${req.method} ${url.pathname}`);
      if (!upstream) {
        return Response.json({ errors: [{ code: "MANIFEST_UNKNOWN", message: "not here" }] }, {
          status: 404,
        });
      }
      const headers = new Headers(req.headers);
      headers.delete("host");
      const res = await fetch(`${upstream}${url.pathname}${url.search}`, {
        method: req.method,
        headers,
        body: req.body,
        redirect: "manual",
      });
      return new Response(res.body, { status: res.status, headers: res.headers });
    });
  }

  get host(): string {
    return `127.0.0.1:${this.#server.addr.port}`;
  }

  close(): Promise<void> {
    return this.#server.shutdown();
  }
}

interface World {
  registry: TestRegistry;
  guard: OutsideGuard;
  root: string;
  dir: string;
  /** Runs tsbox with the guard's environment and `conf` as its only registries.conf. */
  tsbox(args: string[], conf: string): Promise<CliResult>;
}

/**
 * A registry of the test's own with the busybox fixture as `library/busybox:latest` (where a
 * mirror of docker.io keeps the official image), a fresh store, and the outside guard.
 */
async function withWorld(fn: (w: World) => Promise<void>): Promise<void> {
  const registry = await startRegistry();
  const guard = new OutsideGuard();
  const { root, cleanup } = await tempRoot();
  const dir = await Deno.makeTempDir({ prefix: "tsbox-regconf-" });
  try {
    const layouts = await fixtureLayouts();
    await pushLayout(layouts.busybox, `${registry.host}/library/busybox:latest`, {
      format: "v2s2",
    });
    await guard.check();
    let n = 0;
    const w: World = {
      registry,
      guard,
      root,
      dir,
      async tsbox(args, conf) {
        const file = `${dir}/registries-${++n}.conf`;
        await Deno.writeTextFile(file, conf);
        return tsbox(args, {
          root,
          // HOME stays: with CONTAINERS_REGISTRIES_CONF set no file under it is read, and
          // Deno's own cache (the npm packages tsbox imports) lives there.
          env: { ...guard.env, CONTAINERS_REGISTRIES_CONF: file },
        });
      },
    };
    await fn(w);
  } finally {
    await tsbox(["rm", "-f", "t-reg1", "t-reg2", "t-reg3"], { root }).catch(() => {});
    await guard.close();
    await cleanup();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    await registry.stop();
  }
}

rootTest("run of the short name busybox pulls docker.io's image through a mirror", async () => {
  await withWorld(async (w) => {
    const mirrored = `unqualified-search-registries = ["docker.io"]

[[registry]]
prefix = "docker.io"
location = "docker.io"

[[registry.mirror]]
location = "${w.registry.host}"
`;
    const run = await w.tsbox(["run", "--rm", "--name", "t-reg1", "busybox", "true"], mirrored);
    assertEquals(run.code, 0, run.stderr);
    assertStringIncludes(run.stderr, "Unable to find image 'busybox' locally");
    assertStringIncludes(run.stderr, "Status: Downloaded newer image for busybox:latest");
    assertEquals(await w.guard.requests(), [], "nothing went to docker.io itself");
    // Recorded under the name asked for, not the mirror's.
    const images = await tsbox(["images", "--format", "json"], { root: w.root });
    assertStringIncludes(images.stdout, `"Repository":"busybox"`);
    assertOk(!images.stdout.includes(w.registry.host), images.stdout);
    const again = await w.tsbox(["run", "--rm", "--name", "t-reg1", "busybox", "true"], mirrored);
    assertEquals(again.code, 0, again.stderr);
    assertOk(!again.stderr.includes("Unable to find image"), "the second run uses the store");
    // A run of a local image does not read registries.conf: a broken one does not matter.
    const broken = "[[registry]\n";
    const local = await w.tsbox(["run", "--rm", "--name", "t-reg1", "busybox", "true"], broken);
    assertEquals(local.code, 0, local.stderr);
    const pullBroken = await w.tsbox(["pull", "busybox"], broken);
    assertEquals(pullBroken.code, 125, "while a pull does read it");
    assertStringIncludes(pullBroken.stderr, "line 1, column");

    // Without the mirror the same pull goes to docker.io: here the guard, and it fails.
    const plain = await w.tsbox(["pull", "busybox:other"], "");
    assertEquals(plain.code, 125, plain.stderr);
    assertOk(
      (await w.guard.requests()).includes("registry-1.docker.io:443"),
      "without the mirror, docker.io was asked",
    );
  });
});

rootTest("a short name goes to the first unqualified-search registry", async () => {
  await withWorld(async (w) => {
    const conf = `unqualified-search-registries = ["${w.registry.host}", "docker.io"]\n`;
    const pull = await w.tsbox(["pull", "library/busybox"], conf);
    assertEquals(pull.code, 0, pull.stderr);
    assertStringIncludes(pull.stdout, `${w.registry.host}/library/busybox:latest`);
    assertEquals(await w.guard.requests(), []);
    // `run` finds the pulled image by the short name through the same search list.
    const run = await w.tsbox(
      ["run", "--rm", "--name", "t-reg2", "library/busybox", "true"],
      conf,
    );
    assertEquals(run.code, 0, run.stderr);
    assertEquals(run.stderr, "", "found in the store under its qualified name");
  });
});

rootTest("insecure = true allows plain HTTP to a registry named 127.1", async () => {
  await withWorld(async (w) => {
    // 127.1 is 127.0.0.1 to the URL parser, but not a loopback name to tsbox's client, which
    // therefore speaks HTTPS to it unless registries.conf says `insecure`.
    const port = w.registry.host.split(":")[1];
    const name = `127.1:${port}/library/busybox:latest`;
    const refused = await w.tsbox(["pull", name], "");
    assertEquals(refused.code, 125, refused.stderr);
    assertStringIncludes(refused.stderr, "TLS handshake with 127.1:" + port);
    const conf = `[[registry]]\nlocation = "127.1:${port}"\ninsecure = true\n`;
    const pull = await w.tsbox(["pull", name], conf);
    assertEquals(pull.code, 0, pull.stderr);
    assertStringIncludes(pull.stdout, name);
    assertEquals(await w.guard.requests(), []);
  });
});

rootTest("a blocked registry is refused before any request, mirrors included", async () => {
  await withWorld(async (w) => {
    const proxy = new CountingProxy(w.registry.url);
    try {
      const name = `${proxy.host}/library/busybox`;
      const blocked = `[[registry]]\nlocation = "${proxy.host}"\nblocked = true\n`;
      const pull = await w.tsbox(["pull", name], blocked);
      assertEquals(pull.code, 125, pull.stderr);
      assertStringIncludes(
        pull.stderr,
        `registry ${proxy.host} is blocked in ${w.dir}/registries-1.conf`,
      );
      const run = await w.tsbox(["run", "--rm", "--name", "t-reg3", name, "true"], blocked);
      assertEquals(run.code, 125, run.stderr);
      assertStringIncludes(run.stderr, "is blocked in");
      assertEquals(proxy.requests, [], "no request reached the blocked registry");

      // docker.io blocked: its mirror is not asked either.
      const hub = `[[registry]]\nprefix = "docker.io"\nblocked = true\n` +
        `[[registry.mirror]]\nlocation = "${proxy.host}"\n`;
      const short = await w.tsbox(["run", "--rm", "--name", "t-reg3", "busybox", "true"], hub);
      assertEquals(short.code, 125, short.stderr);
      assertStringIncludes(short.stderr, "registry docker.io is blocked in");
      assertEquals(proxy.requests, []);
      assertEquals(await w.guard.requests(), []);

      // The same pull without `blocked` goes through the proxy: the count above could fail.
      const open = await w.tsbox(["pull", name], `[[registry]]\nlocation = "${proxy.host}"\n`);
      assertEquals(open.code, 0, open.stderr);
      assertOk(proxy.requests.length > 0);

      // A push to a blocked registry is refused too, before any request.
      const seen = proxy.requests.length;
      const push = await w.tsbox(["push", name], blocked);
      assertEquals(push.code, 125, push.stderr);
      assertStringIncludes(push.stderr, `registry ${proxy.host} is blocked in`);
      assertEquals(proxy.requests.length, seen);
    } finally {
      await proxy.close();
    }
  });
});

rootTest("mirrors are tried in order, and a bad config file fails with its name", async () => {
  await withWorld(async (w) => {
    const empty = new CountingProxy();
    const good = new CountingProxy(w.registry.url);
    try {
      // The second mirror is named 127.1 (HTTPS to tsbox unless insecure; see the test above).
      const conf = `[[registry]]\nprefix = "docker.io"\n` +
        `[[registry.mirror]]\nlocation = "${empty.host}"\n` +
        `[[registry.mirror]]\nlocation = "${good.host.replace("127.0.0.1", "127.1")}"\n` +
        `insecure = true\n`;
      const pull = await w.tsbox(["pull", "busybox"], conf);
      assertEquals(pull.code, 0, pull.stderr);
      assertEquals(empty.requests[0], "GET /v2/library/busybox/manifests/latest");
      assertOk(good.requests.includes("GET /v2/library/busybox/manifests/latest"));
      // Blobs come from the mirror that had the manifest.
      assertOk(good.requests.some((r) => r.includes("/blobs/")), good.requests.join(", "));
      assertOk(!empty.requests.some((r) => r.includes("/blobs/")), empty.requests.join(", "));
      assertEquals(await w.guard.requests(), []);

      const bad = await w.tsbox(
        ["pull", "busybox"],
        `[[registry]]\nprefix = "docker.io"\ninsecure = "yes"\n`,
      );
      assertEquals(bad.code, 125);
      assertEquals(
        bad.stderr.trim(),
        `tsbox: ${w.dir}/registries-2.conf: line 3: [[registry]] #1 (prefix "docker.io"): ` +
          `insecure must be true or false, not "yes"`,
      );
      const syntax = await w.tsbox(["pull", "busybox"], `[[registry]\nprefix = "docker.io"\n`);
      assertEquals(syntax.code, 125);
      assertStringIncludes(syntax.stderr, `${w.dir}/registries-3.conf: line 1, column`);
      assertEquals(await w.guard.requests(), []);
    } finally {
      await empty.close();
      await good.close();
    }
  });
});

rootTest("push follows location and insecure, never a mirror", async () => {
  await withWorld(async (w) => {
    const target = new CountingProxy(w.registry.url);
    const mirror = new CountingProxy(w.registry.url);
    try {
      const pulled = await w.tsbox(["pull", `${w.registry.host}/library/busybox`], "");
      assertEquals(pulled.code, 0, pulled.stderr);
      const name = "registry.example.test/team/busybox:v1";
      const tag = await tsbox(["tag", `${w.registry.host}/library/busybox`, name], {
        root: w.root,
      });
      assertEquals(tag.code, 0, tag.stderr);
      const conf = `[[registry]]\nprefix = "registry.example.test/team"\n` +
        `location = "${target.host.replace("127.0.0.1", "127.1")}/pushed"\ninsecure = true\n` +
        `[[registry.mirror]]\nlocation = "${mirror.host}/mirror"\n`;
      const push = await w.tsbox(["push", name], conf);
      assertEquals(push.code, 0, push.stderr);
      const stored = await fetchManifest(w.registry, "pushed/busybox", "v1");
      assertOk(stored.digest.startsWith("sha256:"));
      assertOk(target.requests.length > 0);
      assertEquals(mirror.requests, [], "a push never goes to a mirror");
      assertEquals(await w.guard.requests(), []);
    } finally {
      await target.close();
      await mirror.close();
    }
  });
});

rootTest("login follows insecure for a registry named 127.1", async () => {
  const registry = await startRegistry({ auth: true });
  const guard = new OutsideGuard();
  const { root, cleanup } = await tempRoot();
  const dir = await Deno.makeTempDir({ prefix: "tsbox-regconf-" });
  try {
    await guard.check();
    const host = registry.host.replace("127.0.0.1", "127.1");
    const conf = `${dir}/registries.conf`;
    const login = async (text: string) => {
      await Deno.writeTextFile(conf, text);
      return tsbox(["login", "-u", registry.username!, "--password-stdin", host], {
        root,
        stdin: `${registry.password}\n`,
        env: { ...guard.env, DOCKER_CONFIG: dir, CONTAINERS_REGISTRIES_CONF: conf },
      });
    };
    const refused = await login("");
    assertEquals(refused.code, 125, refused.stderr);
    assertStringIncludes(refused.stderr, `TLS handshake with ${host}`);
    const ok = await login(`[[registry]]\nlocation = "${host}"\ninsecure = true\n`);
    assertEquals(ok.code, 0, ok.stderr);
    assertStringIncludes(ok.stdout, "Login Succeeded");
    const saved = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
    assertEquals(atob(saved.auths[host].auth), `${registry.username}:${registry.password}`);
    assertEquals(await guard.requests(), []);
  } finally {
    await guard.close();
    await cleanup();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    await registry.stop();
  }
});
