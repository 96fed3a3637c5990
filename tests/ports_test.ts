/**
 * Port publishing end to end (root): `tsbox run -p` with real containers from the fixture
 * registry, traffic only to 127.0.0.1, ports bound to 127.0.0.1.
 */
import { randomBytes } from "node:crypto";
import dgram from "node:dgram";
import { fixtureRegistry, NGINX_MARKER } from "./fixtures/images.ts";
import { assertEquals, assertMatch, assertOk, assertStringIncludes } from "./assert.ts";
import { tempRoot, tsbox } from "./cli.ts";
import { readAll, sha256, writeAll } from "./conn.ts";

const isRoot = Deno.uid() === 0;

function rootTest(name: string, fn: () => Promise<void>) {
  Deno.test({ name, ignore: !isRoot, sanitizeResources: false, sanitizeOps: false, fn });
}

interface Env {
  root: string;
  refs: { busybox: string; nginx: string };
  t: (args: string[]) => ReturnType<typeof tsbox>;
  ok: (args: string[]) => Promise<string>;
  cleanup: () => Promise<void>;
}

let shared: Promise<Env> | undefined;
function env(): Promise<Env> {
  shared ??= (async () => {
    const fx = await fixtureRegistry();
    const { root, cleanup } = await tempRoot();
    const t = (args: string[]) => tsbox(args, { root });
    const ok = async (args: string[]) => {
      const r = await t(args);
      assertEquals(r.code, 0, `tsbox ${args.join(" ")}: ${r.stdout}\n${r.stderr}`);
      return r.stdout;
    };
    for (const name of ["busybox", "nginx"] as const) await ok(["pull", "-q", fx.refs[name]]);
    return { root, refs: fx.refs, t, ok, cleanup };
  })();
  return shared;
}

/** A TCP port the kernel just handed out on 127.0.0.1 (closed again). */
function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** A UDP port the kernel just handed out on 127.0.0.1 (closed again). */
async function freeUdpPort(): Promise<number> {
  const s = dgram.createSocket("udp4");
  await new Promise<void>((resolve) => s.bind(0, "127.0.0.1", resolve));
  const port = s.address().port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** One HTTP/1.0 GET over a fresh connection; the whole response (headers and body). */
async function httpGet(port: number, path = "/"): Promise<Uint8Array> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await writeAll(conn, new TextEncoder().encode(`GET ${path} HTTP/1.0\r\nHost: x\r\n\r\n`));
    return await readAll(conn);
  } finally {
    conn.close();
  }
}

function body(response: Uint8Array): Uint8Array {
  for (let i = 0; i + 3 < response.length; i++) {
    if (
      response[i] === 13 && response[i + 1] === 10 && response[i + 2] === 13 &&
      response[i + 3] === 10
    ) return response.subarray(i + 4);
  }
  throw new Error("no end of headers");
}

async function refused(port: number): Promise<boolean> {
  try {
    const c = await Deno.connect({ hostname: "127.0.0.1", port });
    c.close();
    return false;
  } catch (err) {
    return err instanceof Deno.errors.ConnectionRefused;
  }
}

rootTest(
  "run -d -p nginx: GET through the port; closed after stop, answers after start",
  async () => {
    const e = await env();
    const port = freePort();
    const id = (await e.ok(["run", "-d", "-p", `127.0.0.1:${port}:80`, e.refs.nginx])).trim();
    try {
      const page = await until("nginx through the proxy", async () => {
        const text = new TextDecoder().decode(await httpGet(port));
        return text.includes(NGINX_MARKER) ? text : undefined;
      });
      assertMatch(page, /^HTTP\/1\.1 200 OK/);
      assertEquals(await e.ok(["port", id]), `80/tcp -> 127.0.0.1:${port}\n`);
      assertEquals(await e.ok(["port", id, "80"]), `127.0.0.1:${port}\n`);
      assertStringIncludes(await e.ok(["ps"]), `127.0.0.1:${port}->80/tcp`);
      const inspect = JSON.parse(await e.ok(["inspect", id]));
      assertEquals(inspect[0].NetworkSettings.Ports, {
        "80/tcp": [{ HostIp: "127.0.0.1", HostPort: String(port) }],
      });

      await e.ok(["stop", id]);
      assertOk(await refused(port), "the port still accepts connections after stop");
      assertEquals(await e.ok(["port", id]), "");

      await e.ok(["start", id]);
      const again = await until("nginx after start", async () => {
        const text = new TextDecoder().decode(await httpGet(port));
        return text.includes(NGINX_MARKER) ? text : undefined;
      });
      assertMatch(again, /^HTTP\/1\.1 200 OK/);
    } finally {
      await e.t(["rm", "-f", id]);
    }
    assertOk(await refused(port), "the port still accepts connections after rm -f");
  },
);

rootTest("run -P publishes the image's EXPOSE 80 on an ephemeral port", async () => {
  const e = await env();
  const id = (await e.ok(["run", "-d", "-P", "--expose", "9000/udp", e.refs.nginx])).trim();
  try {
    const lines = (await e.ok(["port", id])).trim().split("\n");
    // 0.0.0.0 (and [::] where the host has IPv6) on the same ephemeral port; 9000/udp too.
    const tcp4 = lines.find((l) => l.startsWith("80/tcp -> 0.0.0.0:"));
    assertOk(tcp4, lines.join("\n"));
    assertOk(lines.some((l) => l.startsWith("9000/udp -> 0.0.0.0:")), lines.join("\n"));
    const port = Number(tcp4.split(":").at(-1));
    const text = await until("nginx on the -P port", async () => {
      const t = new TextDecoder().decode(await httpGet(port));
      return t.includes(NGINX_MARKER) ? t : undefined;
    });
    assertMatch(text, /200 OK/);
  } finally {
    await e.t(["rm", "-f", id]);
  }
});

rootTest("50 MB upload and 50 MB download through -p arrive byte-exact", async () => {
  const e = await env();
  const dir = await Deno.makeTempDir({ prefix: "tsbox-ports-" });
  const big = randomBytes(50_000_000);
  await Deno.writeFile(`${dir}/big.bin`, big);
  const web = freePort();
  const sink = freePort();
  const ids: string[] = [];
  try {
    ids.push((await e.ok([
      "run",
      "-d",
      "-p",
      `127.0.0.1:${web}:80`,
      "-v",
      `${dir}/big.bin:/usr/share/nginx/html/big.bin:ro`,
      e.refs.nginx,
    ])).trim());
    ids.push((await e.ok([
      "run",
      "-d",
      "-p",
      `127.0.0.1:${sink}:9000`,
      e.refs.busybox,
      "nc",
      "-ll",
      "-p",
      "9000",
      "-e",
      "sha256sum",
    ])).trim());
    const response = await until("nginx", async () => {
      const r = await httpGet(web, "/big.bin");
      return new TextDecoder().decode(r.subarray(0, 16)).includes("200") ? r : undefined;
    });
    const got = body(response);
    assertEquals(got.length, big.length);
    assertEquals(sha256(got), sha256(big));

    const reply = await until("nc sha256sum server", async () => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: sink });
      try {
        const reading = readAll(conn);
        await writeAll(conn, big);
        await conn.closeWrite();
        const text = new TextDecoder().decode(await reading);
        return text === "" ? undefined : text;
      } finally {
        conn.close();
      }
    });
    assertEquals(reply.trim().split(/\s+/)[0], sha256(big));
  } finally {
    for (const id of ids) await e.t(["rm", "-f", id]);
    await Deno.remove(dir, { recursive: true });
  }
});

rootTest(
  "half-close: the request's EOF reaches nc in the container, the reply comes back",
  async () => {
    const e = await env();
    const port = freePort();
    const id = (await e.ok([
      "run",
      "-d",
      "-p",
      `127.0.0.1:${port}:7000`,
      e.refs.busybox,
      "nc",
      "-ll",
      "-p",
      "7000",
      "-e",
      "sha256sum",
    ])).trim();
    try {
      const request = new TextEncoder().encode("half-closed request\n");
      const reply = await until("nc server", async () => {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port });
        try {
          await writeAll(conn, request);
          // sha256sum answers only once it has read EOF: the reply proves the shutdown passed.
          await conn.closeWrite();
          const text = new TextDecoder().decode(await readAll(conn));
          return text === "" ? undefined : text;
        } finally {
          conn.close();
        }
      });
      assertEquals(reply, `${sha256(request)}  -\n`);
    } finally {
      await e.t(["rm", "-f", id]);
    }
  },
);

rootTest("UDP echo through -p PORT:PORT/udp", async () => {
  const e = await env();
  const port = await freeUdpPort();
  // Debian's python3 from the host (read-only) serves UDP echo inside the container's netns.
  const echo = "import socket\n" +
    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n" +
    `s.bind(("0.0.0.0", ${port}))\n` +
    "while True:\n    d, a = s.recvfrom(65536)\n    s.sendto(d.upper(), a)\n";
  const id = (await e.ok([
    "run",
    "-d",
    "-p",
    `127.0.0.1:${port}:${port}/udp`,
    "-v",
    "/usr:/usr:ro",
    "-v",
    "/usr/lib64:/lib64:ro",
    "-v",
    "/usr/lib:/lib:ro",
    e.refs.busybox,
    "/usr/bin/python3",
    "-c",
    echo,
  ])).trim();
  try {
    assertEquals(await e.ok(["port", id]), `${port}/udp -> 127.0.0.1:${port}\n`);
    const sock = dgram.createSocket("udp4");
    try {
      const reply = await until("UDP echo", () =>
        new Promise<string | undefined>((resolve) => {
          const timer = setTimeout(() => resolve(undefined), 500);
          sock.once("message", (m) => {
            clearTimeout(timer);
            resolve(`${m}`);
          });
          sock.send("ping over udp", port, "127.0.0.1");
        }));
      assertEquals(reply, "PING OVER UDP");
    } finally {
      sock.close();
    }
  } finally {
    await e.t(["rm", "-f", id]);
  }
});

rootTest("200 concurrent connections through -p all complete", async () => {
  const e = await env();
  const port = freePort();
  const id = (await e.ok(["run", "-d", "-p", `127.0.0.1:${port}:80`, e.refs.nginx])).trim();
  try {
    await until("nginx", async () => (await httpGet(port)).length > 0 ? true : undefined);
    const results = await Promise.all(
      Array.from(
        { length: 200 },
        async () => new TextDecoder().decode(await httpGet(port)).includes(NGINX_MARKER),
      ),
    );
    assertEquals(results.filter(Boolean).length, 200);
  } finally {
    await e.t(["rm", "-f", id]);
  }
});

rootTest("a host port in use: exit 125, the port named, no container left", async () => {
  const e = await env();
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (taken.addr as Deno.NetAddr).port;
  try {
    const before = await e.ok(["ps", "-a", "-q"]);
    const r = await e.t([
      "run",
      "-d",
      "--name",
      "clash",
      "-p",
      `127.0.0.1:${port}:80`,
      e.refs.nginx,
    ]);
    assertEquals(r.code, 125, r.stderr);
    assertStringIncludes(r.stderr, `127.0.0.1:${port}`);
    assertStringIncludes(r.stderr, "port is already allocated");
    assertEquals(await e.ok(["ps", "-a", "-q"]), before);
    assertEquals((await e.t(["inspect", "clash"])).code, 1);
  } finally {
    taken.close();
  }
});

rootTest("--network host: -p is discarded with docker's warning", async () => {
  const e = await env();
  const r = await e.t([
    "run",
    "--rm",
    "--network",
    "host",
    "-p",
    "127.0.0.1:1:80",
    e.refs.busybox,
    "true",
  ]);
  assertEquals(r.code, 0, r.stderr);
  assertStringIncludes(
    r.stderr,
    "WARNING: Published ports are discarded when using host network mode",
  );
});

rootTest(
  "--network container:NAME joins that container's namespace and its published ports",
  async () => {
    const e = await env();
    const port = freePort();
    const web = (await e.ok(["run", "-d", "-p", `127.0.0.1:${port}:8080`, e.refs.nginx])).trim();
    try {
      // A second container serves 8080 inside nginx's namespace: nginx's proxy reaches it.
      const side = (await e.ok([
        "run",
        "-d",
        "--network",
        `container:${web.slice(0, 12)}`,
        e.refs.busybox,
        "nc",
        "-ll",
        "-p",
        "8080",
        "-e",
        "echo",
        "from the joined container",
      ])).trim();
      try {
        const reply = await until("the side container through nginx's port", async () => {
          const conn = await Deno.connect({ hostname: "127.0.0.1", port });
          try {
            const text = new TextDecoder().decode(await readAll(conn));
            return text === "" ? undefined : text;
          } finally {
            conn.close();
          }
        });
        assertEquals(reply, "from the joined container\n");
        // And it sees nginx on its own loopback.
        const r = await e.t([
          "run",
          "--rm",
          "--network",
          `container:${web}`,
          e.refs.busybox,
          "wget",
          "-qO-",
          "http://127.0.0.1/",
        ]);
        assertEquals(r.code, 0, r.stderr);
        assertStringIncludes(r.stdout, NGINX_MARKER);
      } finally {
        await e.t(["rm", "-f", side]);
      }
      const clash = await e.t([
        "run",
        "--rm",
        "--network",
        `container:${web}`,
        "-p",
        "80",
        e.refs.busybox,
      ]);
      assertEquals(clash.code, 125);
      assertStringIncludes(clash.stderr, "conflicting options: port publishing");
    } finally {
      await e.t(["rm", "-f", web]);
    }
  },
);
