/**
 * The proxy against real servers in a real private network namespace (root): Python servers
 * started with `unshare -n`, reached only through the proxy's host port on 127.0.0.1.
 */
import { createHash, randomBytes } from "node:crypto";
import dgram from "node:dgram";
import { assertEquals, assertMatch, assertOk, assertRejects } from "../../tests/assert.ts";
import { closeListeners, openListeners, PortInUseError } from "./listeners.ts";
import type { PortMapping } from "./ports.ts";
import { PortProxy } from "./proxy.ts";
import { readAll, sha256, writeAll } from "../../tests/conn.ts";

const isRoot = Deno.uid() === 0;
const SERVER = new URL("./testdata/netns_server.py", import.meta.url).pathname;
const BASE = 7000;

function rootTest(name: string, fn: () => Promise<void>) {
  Deno.test({ name, ignore: !isRoot, sanitizeResources: false, sanitizeOps: false, fn });
}

interface NetnsServer {
  pid: number;
  /** The next line the server prints. */
  line(): Promise<string>;
  stop(): Promise<void>;
}

/** The servers in a new network namespace; with `userns`, one owned by a new user namespace. */
async function netnsServer(userns = false): Promise<NetnsServer> {
  const child = new Deno.Command("unshare", {
    args: [
      ...(userns ? ["--user", "--map-root-user"] : []),
      "--net",
      "--",
      "python3",
      SERVER,
      String(BASE),
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  const line = async (): Promise<string> => {
    for (;;) {
      const nl = buffered.indexOf("\n");
      if (nl >= 0) {
        const l = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        return l;
      }
      const { value, done } = await lines.read();
      if (done) throw new Error("server exited");
      buffered += value;
    }
  };
  assertEquals(await line(), "ready");
  return {
    pid: child.pid,
    line,
    stop: async () => {
      child.kill("SIGKILL");
      await child.status;
      await lines.cancel().catch(() => {});
      await child.stdin.close().catch(() => {});
    },
  };
}

function tcp(containerPort: number): PortMapping {
  return { hostIp: "127.0.0.1", hostPortStart: 0, hostPortEnd: 0, containerPort, proto: "tcp" };
}

async function withProxy(
  mappings: PortMapping[],
  fn: (ports: number[], server: NetnsServer) => Promise<void>,
  udpIdleMs?: number,
  /** Serve through the socket helper (netns_sockets.ts), as for a plain user's container. */
  helper = false,
): Promise<void> {
  const server = await netnsServer(helper);
  try {
    const proxy = await PortProxy.open(mappings, {
      netns: server.pid,
      udpIdleMs,
      userns: helper ? server.pid : undefined,
    });
    try {
      await fn(proxy.bindings.map((b) => b.hostPort), server);
    } finally {
      await proxy.stop();
    }
  } finally {
    await server.stop();
  }
}

/** What the Python `source` server sends: a 4 MiB seeded block, repeated. */
function sourceBytes(n: number): Uint8Array {
  const block = stream(Math.min(n, 4 << 20));
  const out = new Uint8Array(n);
  for (let at = 0; at < n; at += block.length) out.set(block.subarray(0, n - at), at);
  return out;
}

/** The Python server's seeded stream. */
function stream(n: number): Uint8Array {
  const out = new Uint8Array(n);
  let at = 0;
  for (let counter = 0; at < n; counter++) {
    const c = new Uint8Array(8);
    new DataView(c.buffer).setBigUint64(0, BigInt(counter), true);
    const block = createHash("sha256").update(c).digest();
    for (let i = 0; i < 1024 && at < n; i++) {
      out.set(block.subarray(0, Math.min(32, n - at)), at);
      at += 32;
    }
  }
  return out;
}

rootTest("proxy: full duplex echo of 4 MiB, written and read at the same time", async () => {
  await withProxy([tcp(BASE)], async ([port]) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const data = randomBytes(4 << 20);
    const reading = readAll(conn);
    await writeAll(conn, data);
    await conn.closeWrite();
    const got = await reading;
    assertEquals(got.length, data.length);
    assertEquals(sha256(got), sha256(data));
    conn.close();
  });
});

rootTest("proxy: 50 MB upload and 50 MB download arrive byte-exact", async () => {
  await withProxy([tcp(BASE + 1), tcp(BASE + 2)], async ([digestPort, sourcePort]) => {
    const up = randomBytes(50_000_000);
    const c1 = await Deno.connect({ hostname: "127.0.0.1", port: digestPort });
    const reply = readAll(c1);
    await writeAll(c1, up);
    await c1.closeWrite();
    assertEquals(new TextDecoder().decode(await reply), `${sha256(up)} ${up.length}\n`);
    c1.close();

    const c2 = await Deno.connect({ hostname: "127.0.0.1", port: sourcePort });
    await writeAll(c2, new TextEncoder().encode("50000000\n"));
    const down = await readAll(c2);
    assertEquals(down.length, 50_000_000);
    assertEquals(sha256(down), sha256(sourceBytes(50_000_000)));
    c2.close();
  });
});

rootTest("proxy: half-close reaches the server and its reply still comes back", async () => {
  await withProxy([tcp(BASE + 1)], async ([port]) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await writeAll(conn, new TextEncoder().encode("hello"));
    await conn.closeWrite();
    const reply = new TextDecoder().decode(await readAll(conn));
    assertEquals(reply, `${sha256(new TextEncoder().encode("hello"))} 5\n`);
    conn.close();
  });
});

rootTest("proxy: a slow reader stalls the server instead of filling the proxy", async () => {
  await withProxy([tcp(BASE + 3)], async ([port], server) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    // Nothing is read: the server's writes must block after socket buffers and one pipe.
    const line = await server.line();
    assertMatch(line, /^blocked \d+$/);
    const written = Number(line.split(" ")[1]);
    assertOk(written > 0, line);
    assertOk(written < 48 << 20, `server wrote ${written} bytes into a reader that reads none`);
    // Then reading resumes and data flows again.
    const buf = new Uint8Array(1 << 16);
    let got = 0;
    while (got < written + (8 << 20)) got += (await conn.read(buf)) ?? 0;
    conn.close();
  });
});

rootTest("proxy: 200 concurrent connections all complete", async () => {
  await withProxy([tcp(BASE)], async ([port]) => {
    const one = async (i: number) => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      const data = new TextEncoder().encode(`connection ${i} `.repeat(1000));
      const reading = readAll(conn);
      await writeAll(conn, data);
      await conn.closeWrite();
      const got = await reading;
      conn.close();
      return sha256(got) === sha256(data);
    };
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => one(i)));
    assertEquals(results.filter((ok) => ok).length, 200);
  });
});

rootTest("proxy: a refused upstream closes the client", async () => {
  await withProxy([tcp(BASE + 9)], async ([port]) => {
    // The reset can come so soon that connect() itself reports it; otherwise the first read
    // sees the reset (rejects) or EOF (null). Either way the client is not left hanging.
    const conn = await Deno.connect({ hostname: "127.0.0.1", port }).catch((e: Error) => e);
    if (conn instanceof Error) {
      assertOk(conn instanceof Deno.errors.ConnectionReset, String(conn));
      return;
    }
    const r = await conn.read(new Uint8Array(16)).catch((e: Error) => e);
    assertOk(r === null || r instanceof Error, `read returned ${r}`);
    conn.close();
  });
});

/**
 * The proxy's UDP flow sockets in the server's network namespace: connected sockets whose peer is
 * the echo server at 127.0.0.1:BASE (the kernel's table lists addresses as little-endian hex).
 */
function flowSockets(serverPid: number): number {
  const peer = `0100007F:${BASE.toString(16).toUpperCase().padStart(4, "0")}`;
  return Deno.readTextFileSync(`/proc/${serverPid}/net/udp`).split("\n").slice(1)
    .filter((line) => line.trim().split(/\s+/)[2] === peer).length;
}

async function until(what: string, cond: () => boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

rootTest("proxy: UDP datagrams go both ways per client, flows expire when idle", async () => {
  const udp: PortMapping = {
    hostIp: "127.0.0.1",
    hostPortStart: 0,
    hostPortEnd: 0,
    containerPort: BASE,
    proto: "udp",
  };
  await withProxy([udp], async ([port], server) => {
    const exchange = async (msg: string) => {
      const sock = dgram.createSocket("udp4");
      const got = new Promise<string>((resolve) => sock.once("message", (m) => resolve(`${m}`)));
      sock.send(msg, port, "127.0.0.1");
      const reply = await got;
      sock.close();
      return reply;
    };
    assertEquals(flowSockets(server.pid), 0);
    const [a, b] = await Promise.all([exchange("from a"), exchange("from b")]);
    assertEquals([a, b], ["from a", "from b"]);
    // One upstream socket per client, each closed by the proxy once idle for 300 ms.
    const flows = flowSockets(server.pid);
    assertOk(flows === 2 || flows === 0, `${flows} flows`); // 0: already expired (slow machine)
    await until("the idle flows to be closed", () => flowSockets(server.pid) === 0);
    // A returning client gets a new flow, which expires in turn.
    assertEquals(await exchange("again"), "again");
    await until("the new flow to be closed", () => flowSockets(server.pid) === 0);
  }, 300);
});

// --- the rootless route: upstream sockets made in the namespace by the stub helper ---

rootTest(
  "proxy through the socket helper: duplex echo and 200 connections (many batches)",
  async () => {
    await withProxy(
      [tcp(BASE)],
      async ([port]) => {
        const one = async (i: number) => {
          const conn = await Deno.connect({ hostname: "127.0.0.1", port });
          const data = new TextEncoder().encode(
            `connection ${i} `.repeat(i === 0 ? 100_000 : 1000),
          );
          const reading = readAll(conn);
          await writeAll(conn, data);
          await conn.closeWrite();
          const got = await reading;
          conn.close();
          return sha256(got) === sha256(data);
        };
        const results = await Promise.all(Array.from({ length: 200 }, (_, i) => one(i)));
        assertEquals(results.filter((ok) => ok).length, 200);
      },
      undefined,
      true,
    );
  },
);

rootTest("proxy through the socket helper: UDP flows reach the namespace's server", async () => {
  const udp: PortMapping = { ...tcp(BASE), proto: "udp" };
  await withProxy(
    [udp],
    async ([port], server) => {
      const sock = dgram.createSocket("udp4");
      const got = new Promise<string>((resolve) => sock.once("message", (m) => resolve(`${m}`)));
      sock.send("through the helper", port, "127.0.0.1");
      assertEquals(await got, "through the helper");
      sock.close();
      // The flow's socket is one of the namespace's (seen in its own /proc/net/udp).
      assertEquals(flowSockets(server.pid), 1);
    },
    undefined,
    true,
  );
});

rootTest(
  "proxy through the socket helper: a helper that cannot join fails the start clearly",
  async () => {
    const server = await netnsServer();
    try {
      // Our own user namespace: setns into the namespace one is in is refused (EINVAL).
      const err = await assertRejects(
        () => PortProxy.open([tcp(BASE)], { netns: server.pid, userns: "/proc/self/ns/user" }),
      );
      assertMatch(
        (err as Error).message,
        /^port proxy: socket helper: join the container's user namespace: setns\(\): EINVAL/,
      );
    } finally {
      await server.stop();
    }
  },
);

rootTest("proxy: stop closes the host port", async () => {
  const server = await netnsServer();
  try {
    const proxy = await PortProxy.open([tcp(BASE)], { netns: server.pid });
    const port = proxy.bindings[0].hostPort;
    const open = await Deno.connect({ hostname: "127.0.0.1", port });
    await proxy.stop();
    // The proxied connection was closed, and nothing listens any more.
    assertEquals(await open.read(new Uint8Array(4)).catch(() => null), null);
    open.close();
    await assertRejects(() => Deno.connect({ hostname: "127.0.0.1", port }));
  } finally {
    await server.stop();
  }
});

Deno.test("listeners: a port in use fails with the port named, and nothing stays bound", () => {
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const takenPort = (taken.addr as Deno.NetAddr).port;
  const free = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const freePort = (free.addr as Deno.NetAddr).port;
  free.close();
  try {
    const mappings: PortMapping[] = [
      { ...tcp(80), hostPortStart: freePort, hostPortEnd: freePort },
      { ...tcp(81), hostPortStart: takenPort, hostPortEnd: takenPort },
    ];
    let error: unknown;
    try {
      openListeners(mappings);
    } catch (e) {
      error = e;
    }
    assertOk(error instanceof PortInUseError, String(error));
    assertEquals(
      error.message,
      `Bind for 127.0.0.1:${takenPort} failed: port is already allocated`,
    );
    // The first mapping's socket was closed again.
    const again = openListeners([mappings[0]]);
    assertEquals(again[0].binding.hostPort, freePort);
    closeListeners(again);
  } finally {
    taken.close();
  }
});

Deno.test("listeners: a host port range takes the first free port", () => {
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const p = (taken.addr as Deno.NetAddr).port;
  try {
    const ls = openListeners([{ ...tcp(80), hostPortStart: p, hostPortEnd: p + 5 }]);
    assertOk(ls[0].binding.hostPort > p && ls[0].binding.hostPort <= p + 5);
    closeListeners(ls);
  } finally {
    taken.close();
  }
});
