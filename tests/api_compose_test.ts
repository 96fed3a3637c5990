/**
 * Debian's docker-compose 1.29 against tsbox's socket (root): a project with a web service built
 * from a Dockerfile (busybox httpd with a CGI script), redis (tests/api_redis.ts, in the test
 * registry) and
 * a database-like service (a busybox nc server keeping its value in a named volume), published
 * ports, environment and depends_on. `up -d`, `ps`, `logs`, `exec`, then `down -v` leaves no
 * container, network or volume. The web service asks the other two by their service names, so
 * the answer on the published port shows the project network's names working.
 */
import { assertEquals, assertMatch, assertOk, assertStringIncludes } from "./assert.ts";
import { redisImage } from "./api_redis.ts";
import { dirname } from "node:path";
import { DOCKER, ok, type Result, rootTest, setup } from "./api_helpers.ts";

const COMPOSE = "/usr/bin/docker-compose";

/** Runs docker-compose in `dir` against `socket`. */
async function compose(
  socket: string,
  dir: string,
  project: string,
  args: string[],
): Promise<Result> {
  const child = new Deno.Command(COMPOSE, {
    args: ["-p", project, ...args],
    cwd: dir,
    env: {
      DOCKER_HOST: `unix://${socket}`,
      DOCKER_CONFIG: `${dir}/.docker`,
      // The classic builder's API (BuildKit's session protocol is not served).
      DOCKER_BUILDKIT: "0",
      COMPOSE_DOCKER_CLI_BUILD: "0",
      // compose's default: `exec` and `run` go through the docker client (PATH), which attaches
      // before it starts. Its other path (COMPOSE_INTERACTIVE_NO_CLI) attaches only after the
      // start under python 3 (dockerpty's lazy map), and a quick one-off's output races it, as
      // it would with dockerd.
      PATH: `${dirname(DOCKER!)}:/usr/bin:/bin`,
      NO_COLOR: "1",
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  // A hanging compose fails the test (exit 137) instead of holding the suite.
  const guard = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* ended */ }
  }, 180_000);
  const out = await child.output().finally(() => clearTimeout(guard));
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

const CGI = `#!/bin/sh
printf 'Content-Type: text/plain\\r\\n\\r\\n'
echo "greeting=$GREETING"
echo "db=$(nc db 7000 </dev/null)"
echo "hits=$(printf 'INCR hits\\r\\nQUIT\\r\\n' | nc redis 6379 | head -n 1 | tr -d '\\r')"
`;

rootTest(
  "api compose: docker-compose 1.29 up -d (build, ports, env, volume, depends_on), ps, logs, exec, down -v",
  async () => {
    const t = await setup();
    const dir = await Deno.makeTempDir({ prefix: "tsbox-api-compose-" });
    const project = `t-apicomp${crypto.randomUUID().slice(0, 4)}`;
    const c = (...args: string[]) => compose(t.socket, dir, project, args);
    try {
      await ok(t.d("pull", "-q", t.fx.refs.busybox));
      const redisRef = await redisImage();
      const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const port = (probe.addr as Deno.NetAddr).port;
      probe.close();
      await Deno.mkdir(`${dir}/web/cgi-bin`, { recursive: true });
      await Deno.writeTextFile(`${dir}/web/cgi-bin/status`, CGI, { mode: 0o755 });
      await Deno.writeTextFile(
        `${dir}/web/Dockerfile`,
        [
          "ARG BASE",
          "FROM ${BASE}",
          "COPY cgi-bin /www/cgi-bin",
          "RUN chmod 755 /www/cgi-bin/status",
          "EXPOSE 8080",
          'CMD ["httpd", "-f", "-v", "-p", "8080", "-h", "/www"]',
          "",
        ].join("\n"),
      );
      await Deno.writeTextFile(
        `${dir}/docker-compose.yml`,
        `version: "3.8"
services:
  web:
    build:
      context: ./web
      args:
        BASE: ${t.fx.refs.busybox}
    image: t-apicomp/web:latest
    ports:
      - "127.0.0.1:${port}:8080"
    environment:
      GREETING: hello-compose
    depends_on:
      - db
      - redis
    # httpd and sh as PID 1 ignore SIGTERM: the stop's SIGKILL comes after a second.
    stop_grace_period: 1s
  redis:
    image: ${redisRef}
  db:
    image: ${t.fx.refs.busybox}
    environment:
      DB_VALUE: stored-value
    command: ["sh", "-c", "[ -f /data/value ] || echo $$DB_VALUE > /data/value; echo db ready; while true; do nc -l -p 7000 < /data/value; done"]
    volumes:
      - dbdata:/data
    stop_grace_period: 1s
volumes:
  dbdata:
`,
      );
      const up = await c("up", "-d");
      assertEquals(up.code, 0, `${up.stdout}\n${up.stderr}`);

      // The web service answers on the published port with what it got from db and redis by name.
      let body = "";
      for (let i = 0; i < 100 && !body.includes("hits=:"); i++) {
        body = await fetch(`http://127.0.0.1:${port}/cgi-bin/status`).then(
          (r) => r.text(),
          () => "",
        );
        if (!body.includes("hits=:")) await new Promise((r) => setTimeout(r, 200));
      }
      assertStringIncludes(body, "greeting=hello-compose");
      assertStringIncludes(body, "db=stored-value");
      assertMatch(body, /^hits=:\d+$/m);
      // redis counts: the next request sees the next number.
      const hits = Number(/^hits=:(\d+)$/m.exec(body)![1]);
      const next = await fetch(`http://127.0.0.1:${port}/cgi-bin/status`).then((r) => r.text());
      assertStringIncludes(next, `hits=:${hits + 1}\n`);

      const ps = await c("ps");
      assertEquals(ps.code, 0, ps.stderr);
      for (const s of ["web", "redis", "db"]) {
        assertMatch(ps.stdout, new RegExp(`${project}_${s}_1 .* Up`));
      }
      assertStringIncludes(ps.stdout, `127.0.0.1:${port}->8080/tcp`);
      const services = await c("ps", "--services");
      assertEquals(services.stdout.trim().split("\n").sort(), ["db", "redis", "web"]);

      const logs = await c("logs", "--no-color", "db");
      assertEquals(logs.code, 0, logs.stderr);
      assertMatch(logs.stdout, /db_1 +\| db ready/);
      const exec = await c("exec", "-T", "db", "cat", "/data/value");
      assertEquals([exec.code, exec.stdout], [0, "stored-value\n"], exec.stderr);
      const env = await c("exec", "-T", "web", "sh", "-c", "echo $GREETING");
      assertEquals(env.stdout, "hello-compose\n", env.stderr);

      // Nothing changed: nothing is recreated. A changed environment recreates web alone (a new
      // container under a temporary name, renamed once the old one is gone).
      const webId = (await ok(t.d("ps", "-q", "--no-trunc", "--filter", `name=${project}_web_1`)))
        .trim();
      const again = await c("up", "-d");
      assertEquals(again.code, 0, again.stderr);
      assertMatch(again.stderr, /web_1 is up-to-date/);
      const file = `${dir}/docker-compose.yml`;
      await Deno.writeTextFile(
        file,
        (await Deno.readTextFile(file)).replace("hello-compose", "hello-again"),
      );
      const recreate = await c("up", "-d");
      assertEquals(recreate.code, 0, recreate.stderr);
      assertMatch(recreate.stderr, /Recreating .*web_1/);
      assertMatch(recreate.stderr, /db_1 is up-to-date/);
      const newId = (await ok(t.d("ps", "-q", "--no-trunc", "--filter", `name=${project}_web_1`)))
        .trim();
      assertMatch(newId, /^[0-9a-f]{64}$/);
      assertOk(newId !== webId, "web was not recreated");
      body = "";
      for (let i = 0; i < 100 && !body.includes("greeting=hello-again"); i++) {
        body = await fetch(`http://127.0.0.1:${port}/cgi-bin/status`).then(
          (r) => r.text(),
          () => "",
        );
        if (!body.includes("greeting=hello-again")) await new Promise((r) => setTimeout(r, 200));
      }
      assertStringIncludes(body, "greeting=hello-again");
      assertStringIncludes(body, "db=stored-value");

      // Resources are the project's, labelled as compose labels them.
      const nets = await ok(t.d("network", "ls", "--format", "{{.Name}}"));
      assertStringIncludes(nets, `${project}_default`);
      const vols = await ok(t.d("volume", "ls", "--format", "{{.Name}}"));
      assertStringIncludes(vols, `${project}_dbdata`);

      const down = await c("down", "-v", "-t", "2");
      assertEquals(down.code, 0, `${down.stdout}\n${down.stderr}`);
      assertEquals((await ok(t.d("ps", "-aq"))).trim(), "");
      assertEquals((await ok(t.d("network", "ls", "-q", "--filter", "type=custom"))).trim(), "");
      assertEquals((await ok(t.d("volume", "ls", "-q"))).trim(), "");
      const stillUp = await fetch(`http://127.0.0.1:${port}/`).then(() => true, () => false);
      assertOk(!stillUp, "the published port still answers after down");
    } finally {
      await c("down", "-v", "-t", "1");
      await t.cleanup();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
);

rootTest(
  "api compose: two networks (one internal), aliases, scale, run --rm, stop/start/restart, down",
  async () => {
    const t = await setup();
    const dir = await Deno.makeTempDir({ prefix: "tsbox-api-compose2-" });
    const project = `t-apicnet${crypto.randomUUID().slice(0, 4)}`;
    const c = (...args: string[]) => compose(t.socket, dir, project, args);
    try {
      const ref = t.fx.refs.busybox;
      await ok(t.d("pull", "-q", ref));
      await Deno.writeTextFile(
        `${dir}/docker-compose.yml`,
        `version: "3.8"
services:
  front:
    image: ${ref}
    command: ["sh", "-c", "while true; do echo front | nc -l -p 7001; done"]
    networks: [public, private]
    init: true
  back:
    image: ${ref}
    command: ["sh", "-c", "while true; do echo back | nc -l -p 7002; done"]
    networks:
      private:
        aliases: [backend]
    hostname: backhost
    user: "1000"
    working_dir: /tmp
    stop_grace_period: 1s
  outsider:
    image: ${ref}
    command: ["sleep", "600"]
    networks: [public]
    scale: 2
    stop_grace_period: 1s
networks:
  public:
  private:
    internal: true
`,
      );
      const up = await c("up", "-d");
      assertEquals(up.code, 0, `${up.stdout}\n${up.stderr}`);
      const exec = (service: string, script: string) =>
        c("exec", "-T", service, "sh", "-c", script);
      const answer = async (service: string, script: string, want: string) => {
        let got = "";
        for (let i = 0; i < 100 && got !== want; i++) {
          got = (await exec(service, script)).stdout;
          if (got !== want) await new Promise((r) => setTimeout(r, 100));
        }
        assertEquals(got, want);
      };
      // back reaches front on the private network; front reaches back by its alias.
      await answer("back", "nc front 7001 </dev/null", "front\n");
      await answer("front", "nc backend 7002 </dev/null", "back\n");
      assertEquals((await exec("back", "hostname; id -u; pwd")).stdout, "backhost\n1000\n/tmp\n");
      // outsider shares only the public network with front: back's name does not resolve.
      await answer("outsider", "nc front 7001 </dev/null", "front\n");
      const cut = await c(
        "exec",
        "--index",
        "2",
        "-T",
        "outsider",
        "sh",
        "-c",
        "nc -w 2 backend 7002 </dev/null",
      );
      assertMatch(cut.stderr, /bad address 'backend'/);
      const ps = await c("ps", "-q");
      assertEquals(ps.stdout.trim().split("\n").length, 4, ps.stdout);
      const front = JSON.parse(await ok(t.d("inspect", `${project}_front_1`)))[0];
      assertEquals(
        Object.keys(front.NetworkSettings.Networks).sort(),
        [`${project}_private`, `${project}_public`],
      );
      const internal = JSON.parse(await ok(t.d("network", "inspect", `${project}_private`)))[0];
      assertEquals(internal.Internal, true);

      // A one-off container: its output, its exit code, and nothing left behind.
      const run = await c("run", "--rm", "-T", "back", "sh", "-c", "echo ran; exit 4");
      assertEquals([run.code, run.stdout], [4, "ran\n"], run.stderr);
      for (const cmd of [["stop", "back"], ["start", "back"], ["restart", "front"]]) {
        const r = await c(...cmd);
        assertEquals(r.code, 0, r.stderr);
      }
      await answer("front", "nc backend 7002 </dev/null", "back\n");

      const down = await c("down", "-t", "1");
      assertEquals(down.code, 0, `${down.stdout}\n${down.stderr}`);
      assertEquals((await ok(t.d("ps", "-aq"))).trim(), "");
      assertEquals((await ok(t.d("network", "ls", "-q", "--filter", "type=custom"))).trim(), "");
    } finally {
      await c("down", "-v", "-t", "1");
      await t.cleanup();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
);
