/**
 * `POST /build`'s query parameters through Debian's docker client (classic builder) at tsbox's
 * socket (root): `--cache-from` reads a cache `tsbox build --cache-to` pushed to a registry on
 * 127.0.0.1 (the RUN's random output is the first build's), `--build-arg`, `--platform` and
 * `--network none` apply, and the parameters tsbox's builder has nothing for (`--add-host`,
 * `--shm-size`, `--memory`, `--cpu-*`, `--cgroup-parent`, `--ulimit`, `--security-opt`,
 * `--isolation`, a user network, outputs other than the image) are docker's 400 naming the
 * parameter, with no image made.
 */
import { assertEquals, assertStringIncludes } from "./assert.ts";
import { ok, rawRequest, rootTest, setup } from "./api_helpers.ts";
import { dirWith, tempRoot, tsbox } from "./cli.ts";
import { startRegistry } from "./fixtures/registry.ts";

rootTest(
  "api build: cachefrom, buildargs, platform, networkmode; unsupported ones named",
  async () => {
    const t = await setup();
    const registry = await startRegistry();
    const other = await tempRoot();
    const base = t.fx.refs.busybox;
    const ctx = await dirWith({
      Dockerfile: [
        `FROM ${base}`,
        "ARG FLAVOUR",
        "RUN head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n' > /random",
        'RUN echo "$FLAVOUR" > /flavour; ls /sys/class/net > /nets',
        "",
      ].join("\n"),
    });
    const cache = `${registry.host}/cache/api:bc`;
    try {
      // Another store builds and pushes its cache.
      const pulled = await tsbox(["pull", "-q", base], { root: other.root });
      assertEquals(pulled.code, 0, pulled.stderr);
      const first = await tsbox([
        "build",
        "--network",
        "none",
        "--build-arg",
        "FLAVOUR=mint",
        "--cache-to",
        `type=registry,ref=${cache},mode=max`,
        "-t",
        "t-api/cache:1",
        ctx,
      ], { root: other.root });
      assertEquals(first.code, 0, first.stderr + first.stdout);
      const random = await tsbox(["run", "--rm", "t-api/cache:1", "cat", "/random"], {
        root: other.root,
      });
      assertEquals(random.code, 0, random.stderr);

      // The service's store reads it with --cache-from: both RUN steps are cache hits.
      await ok(t.d("pull", "-q", base));
      const built = await ok(t.d(
        "build",
        "--cache-from",
        cache,
        "--build-arg",
        "FLAVOUR=mint",
        "--network",
        "none",
        "--platform",
        "linux/amd64",
        "-t",
        "t-api/cache:2",
        ctx,
      ));
      // ARG and both RUN steps (ARG's is a hit without any cache, as in docker).
      assertEquals(built.match(/ ---> Using cache/g)?.length, 3, built);
      assertEquals(/RUN head[^\n]*\n ---> Using cache/.test(built), true, built);
      const inside = await ok(t.d(
        "run",
        "--rm",
        "t-api/cache:2",
        "sh",
        "-c",
        "cat /random; echo; cat /flavour /nets",
      ));
      assertEquals(inside, `${random.stdout}\nmint\nlo\n`);

      // Without the cache (another build arg) the steps run here, in no network but lo.
      const fresh = await ok(t.d(
        "build",
        "--build-arg",
        "FLAVOUR=lime",
        "--network",
        "none",
        "-t",
        "t-api/cache:3",
        ctx,
      ));
      assertEquals(/RUN [^\n]*\n ---> Using cache/.test(fresh), false, fresh);
      assertEquals(
        await ok(t.d("run", "--rm", "t-api/cache:3", "cat", "/flavour", "/nets")),
        "lime\nlo\n",
      );

      // What tsbox's builder cannot do as asked: docker's error naming the parameter, no image.
      const refused: [string[], string][] = [
        [["--add-host", "db:10.1.2.3"], "extrahosts"],
        [["--shm-size", "128m"], "shmsize"],
        [["--memory", "64m"], "memory"],
        [["--cpu-quota", "50000"], "cpuquota"],
        [["--cpuset-cpus", "0"], "cpusetcpus"],
        [["--cgroup-parent", "/x"], "cgroupparent"],
        [["--ulimit", "nofile=10:10"], "ulimits"],
        [
          ["--security-opt", "seccomp=unconfined"],
          "The daemon on this platform does not support setting security options on build",
        ],
        [["--isolation", "hyperv"], 'Unsupported isolation: "hyperv"'],
        [["--network", "t-api-nosuchnet"], "networkmode t-api-nosuchnet"],
      ];
      for (const [flags, named] of refused) {
        const r = await t.d("build", ...flags, "-t", "t-api/refused:1", ctx);
        assertEquals(r.code, 1, `${flags}: ${r.stdout}${r.stderr}`);
        assertStringIncludes(r.stderr, `Error response from daemon: ${named}`);
      }
      const images = await ok(t.d("images", "--format", "{{.Repository}}"));
      assertEquals(images.includes("t-api/refused"), false, images);

      // outputs other than the image (BuildKit's clients send them): 400 naming it.
      const outputs = encodeURIComponent(
        JSON.stringify([{ Type: "local", Attrs: { dest: "/x" } }]),
      );
      const res = await rawRequest(
        t.socket,
        `POST /v1.41/build?outputs=${outputs} HTTP/1.1\r\nHost: d\r\nContent-Length: 0\r\n\r\n`,
      );
      assertStringIncludes(res, "HTTP/1.1 400 ");
      assertStringIncludes(res, '{"message":"outputs: type \\"local\\" is not supported');
    } finally {
      await Deno.remove(ctx, { recursive: true }).catch(() => {});
      await registry.stop();
      await other.cleanup();
      await t.cleanup();
    }
  },
);
