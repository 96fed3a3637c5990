/**
 * `tsbox system service -H tcp://HOST:PORT`: the Engine API on TCP, only when asked. Without TLS
 * a non-loopback address is refused (exit 125, nothing listens); on loopback the docker client
 * works over it. With `--tlsverify --tlscacert --tlscert --tlskey` (certificates made by openssl
 * here) Debian's docker client with DOCKER_TLS_VERIFY and its certificate pulls and runs, while
 * a client with no certificate, with one from another CA, or speaking plain HTTP is refused at
 * the handshake. Everything listens and connects on 127.0.0.1 only.
 */
import { assertEquals, assertOk, assertStringIncludes } from "./assert.ts";
import { fixtureRegistry } from "./fixtures/images.ts";
import { tempRoot } from "./cli.ts";
import {
  CLIENTS,
  DOCKER,
  MAIN,
  type Result,
  rootTest,
  type Service,
  startService,
} from "./api_helpers.ts";

/** A port free on 127.0.0.1 a moment ago. */
function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function run(
  cmd: string,
  args: string[],
  env: Record<string, string> = {},
  stdin?: string,
) {
  const child = new Deno.Command(cmd, {
    args,
    env,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

async function openssl(dir: string, ...args: string[]): Promise<void> {
  const r = await new Deno.Command("openssl", { args, cwd: dir, stdout: "null", stderr: "piped" })
    .output();
  assertEquals(r.code, 0, new TextDecoder().decode(r.stderr));
}

/** A CA and a certificate it signed for `cn`, with `ext` lines; files `<name>-*.pem`. */
async function certificates(dir: string) {
  const ca = async (name: string) => {
    await openssl(
      dir,
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      `${name}-key.pem`,
      "-out",
      `${name}.pem`,
      "-days",
      "2",
      "-subj",
      `/CN=${name}`,
    );
  };
  const signed = async (name: string, caName: string, ext: string) => {
    await Deno.writeTextFile(`${dir}/${name}.ext`, ext);
    await openssl(
      dir,
      "req",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      `${name}-key.pem`,
      "-out",
      `${name}.csr`,
      "-subj",
      `/CN=${name}`,
    );
    await openssl(
      dir,
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      `${caName}.pem`,
      "-CAkey",
      `${caName}-key.pem`,
      "-CAcreateserial",
      "-out",
      `${name}-cert.pem`,
      "-days",
      "2",
      "-extfile",
      `${name}.ext`,
    );
  };
  await ca("ca");
  await ca("otherca");
  await signed("server", "ca", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
  await signed("client", "ca", "extendedKeyUsage=clientAuth\n");
  await signed("stranger", "otherca", "extendedKeyUsage=clientAuth\n");
  // docker's DOCKER_CERT_PATH layout: ca.pem, cert.pem, key.pem.
  const certPath = async (name: string, cert: string) => {
    await Deno.mkdir(`${dir}/${name}`);
    await Deno.copyFile(`${dir}/ca.pem`, `${dir}/${name}/ca.pem`);
    await Deno.copyFile(`${dir}/${cert}-cert.pem`, `${dir}/${name}/cert.pem`);
    await Deno.copyFile(`${dir}/${cert}-key.pem`, `${dir}/${name}/key.pem`);
  };
  await certPath("good", "client");
  await certPath("bad", "stranger");
}

/** Waits until something accepts TCP connections on 127.0.0.1:`port`. */
async function waitForPort(port: number): Promise<void> {
  for (let i = 0; i < 300; i++) {
    const c = await Deno.connect({ hostname: "127.0.0.1", port }).catch(() => undefined);
    if (c) {
      c.close();
      return;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing listens on 127.0.0.1:${port}`);
}

/** The docker client at tcp://127.0.0.1:`port`, with TLS from `certs` when given. */
function dockerTcp(
  port: number,
  config: string,
  args: string[],
  certs?: string,
  stdin?: string,
  client = DOCKER!,
) {
  const env: Record<string, string> = {
    DOCKER_HOST: `tcp://127.0.0.1:${port}`,
    DOCKER_CONFIG: config,
    DOCKER_BUILDKIT: "0",
    NO_COLOR: "1",
  };
  if (certs) Object.assign(env, { DOCKER_TLS_VERIFY: "1", DOCKER_CERT_PATH: certs });
  return run(client, args, env, stdin);
}

async function okOf(p: Promise<Result>): Promise<string> {
  const r = await p;
  assertEquals(r.code, 0, `${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

async function withService(
  extra: string[],
  port: number,
  fn: (s: Service, dir: string) => Promise<void>,
  prepare?: (dir: string) => Promise<void>,
) {
  const { root, cleanup } = await tempRoot();
  const dir = await Deno.makeTempDir({ prefix: "tsbox-api-tcp-" });
  await Deno.mkdir(`${dir}/docker-config`);
  let service: Service | undefined;
  try {
    await prepare?.(dir);
    service = await startService(
      root,
      `${dir}/tsbox.sock`,
      extra.map((a) => a.replaceAll("$DIR", dir)),
    );
    await waitForPort(port);
    await fn(service, dir);
  } finally {
    await service?.stop();
    await cleanup();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

rootTest(
  "api tcp: a non-loopback address without TLS is refused (125), nothing listens",
  async () => {
    const { root, cleanup } = await tempRoot();
    try {
      for (const host of ["0.0.0.0", "[::]", "localhost.example"]) {
        const port = freePort();
        const r = await run(Deno.execPath(), [
          "run",
          "-A",
          "--quiet",
          MAIN,
          "--root",
          root,
          "system",
          "service",
          "--socket",
          `${root}/api.sock`,
          "--timeout",
          "0",
          "-H",
          `tcp://${host}:${port}`,
        ]);
        assertEquals(r.code, 125, r.stderr);
        assertStringIncludes(r.stderr, `tcp://${host}:${port} without TLS`);
        const c = await Deno.connect({ hostname: "127.0.0.1", port }).catch(() => undefined);
        c?.close();
        assertEquals(c, undefined, `something listens on ${port}`);
        // The unix socket it had made is gone again.
        assertEquals(await Deno.lstat(`${root}/api.sock`).catch(() => undefined), undefined);
      }
      // TLS files without --tlsverify would be TLS without client certificates: refused too.
      const r = await run(Deno.execPath(), [
        "run",
        "-A",
        "--quiet",
        MAIN,
        "--root",
        root,
        "system",
        "service",
        "--socket",
        `${root}/api.sock`,
        "-H",
        `tcp://127.0.0.1:${freePort()}`,
        "--tlscert",
        "/nonexistent.pem",
      ]);
      assertEquals(r.code, 125, r.stderr);
      assertStringIncludes(r.stderr, "need --tlsverify");
    } finally {
      await cleanup();
    }
  },
);

rootTest("api tcp: loopback without TLS serves the docker client", async () => {
  const fx = await fixtureRegistry();
  const port = freePort();
  await withService(["-H", `tcp://127.0.0.1:${port}`], port, async (_s, dir) => {
    const config = `${dir}/docker-config`;
    const v = await okOf(
      dockerTcp(port, config, ["version", "--format", "{{.Server.APIVersion}}"]),
    );
    assertEquals(v.trim(), "1.41");
    await okOf(dockerTcp(port, config, ["pull", "-q", fx.refs.busybox]));
    // An attached run: the hijacked stream over TCP.
    const hi = await dockerTcp(port, config, [
      "run",
      "--rm",
      fx.refs.busybox,
      "sh",
      "-c",
      "echo hi; exit 4",
    ]);
    assertEquals([hi.code, hi.stdout], [4, "hi\n"], hi.stderr);
  });
});

rootTest(
  "api tcp: --tlsverify admits the docker client with a certificate of the CA, refuses others",
  async () => {
    const fx = await fixtureRegistry();
    const port = freePort();
    await withService(
      [
        "-H",
        `tcp://127.0.0.1:${port}`,
        "--tlsverify",
        "--tlscacert",
        "$DIR/ca.pem",
        "--tlscert",
        "$DIR/server-cert.pem",
        "--tlskey",
        "$DIR/server-key.pem",
      ],
      port,
      async (_s, dir) => {
        const config = `${dir}/docker-config`;
        const good = `${dir}/good`;
        const v = await okOf(
          dockerTcp(port, config, ["version", "--format", "{{.Server.APIVersion}}"], good),
        );
        assertEquals(v.trim(), "1.41");
        const pull = await okOf(dockerTcp(port, config, ["pull", fx.refs.busybox], good));
        assertStringIncludes(pull, "Pull complete");
        // Every docker client installed (Debian's 20.10, a newer one): attached runs over TLS.
        for (const client of CLIENTS) {
          const hi = await dockerTcp(
            port,
            config,
            ["run", "--rm", "-i", fx.refs.busybox, "sh", "-c", "echo hi; exit 5"],
            good,
            undefined,
            client,
          );
          assertEquals([hi.code, hi.stdout], [5, "hi\n"], `${client}: ${hi.stderr}`);
          // stdin through the TLS stream, its end (docker's half close) seen by the container.
          const cat = await dockerTcp(
            port,
            config,
            ["run", "--rm", "-i", fx.refs.busybox, "sh", "-c", "cat; echo end"],
            good,
            "through tls\n",
            client,
          );
          assertEquals(
            [cat.code, cat.stdout],
            [0, "through tls\nend\n"],
            `${client}: ${cat.stderr}`,
          );
        }
        const images = await okOf(
          dockerTcp(port, config, ["images", "--format", "{{.Repository}}:{{.Tag}}"], good),
        );
        assertEquals(images.trim(), fx.refs.busybox);

        // A certificate another CA signed: the handshake fails, no API answer.
        const stranger = await dockerTcp(port, config, ["version"], `${dir}/bad`);
        assertOk(stranger.code !== 0, stranger.stdout);
        assertOk(!/Server:/.test(stranger.stdout), stranger.stdout);
        // TLS 1.3 checks the client's certificate after the client's side of the handshake:
        // the client sees the server's alert, or the reset that follows it.
        assertOk(/certificate|connection reset|EOF/i.test(stranger.stderr), stranger.stderr);
        // Without TLS at all the docker client gets no answer.
        const plain = await dockerTcp(port, config, ["version"]);
        assertOk(plain.code !== 0, plain.stdout);
        assertOk(!/Server:/.test(plain.stdout), plain.stdout);

        // curl: the right certificate gets _ping's OK; none, or another CA's, gets nothing.
        const url = `https://127.0.0.1:${port}/_ping`;
        const withCert = await run("curl", [
          "-sS",
          "--cacert",
          `${dir}/ca.pem`,
          "--cert",
          `${good}/cert.pem`,
          "--key",
          `${good}/key.pem`,
          url,
        ]);
        assertEquals([withCert.code, withCert.stdout], [0, "OK"], withCert.stderr);
        const noCert = await run("curl", ["-sS", "--cacert", `${dir}/ca.pem`, url]);
        assertOk(noCert.code !== 0, noCert.stdout);
        assertEquals(noCert.stdout, "");
        const otherCa = await run("curl", [
          "-sS",
          "--cacert",
          `${dir}/ca.pem`,
          "--cert",
          `${dir}/bad/cert.pem`,
          "--key",
          `${dir}/bad/key.pem`,
          url,
        ]);
        assertOk(otherCa.code !== 0, otherCa.stdout);
        assertEquals(otherCa.stdout, "");
        const http = await run("curl", ["-sS", `http://127.0.0.1:${port}/_ping`]);
        assertOk(http.stdout !== "OK", http.stdout);
        // The service survived the refused clients.
        assertEquals(
          (await okOf(dockerTcp(port, config, ["ps", "-aq"], good))).trim(),
          "",
        );
      },
      certificates,
    );
  },
);
