/**
 * The "outside world" of network tests (root): a network namespace of the test's own holding an
 * upstream host, 198.51.100.1/24 (a documentation range), behind a veth pair the test makes,
 * with a route for that /24 only. {@link makeUpstream} checks that the route to the upstream
 * leaves through that veth before anything is sent, and fails otherwise: test traffic never
 * goes to any other address. It serves a directory over HTTP (python's http.server, whose
 * access log tells which address a request came from) and, with `names`, answers DNS queries for
 * them on port 53 (A records; NXDOMAIN for anything else), a tiny responder of the test's own.
 *
 * @module
 */
import { assertEquals } from "./assert.ts";

/** The upstream host's address. */
export const UPSTREAM = "198.51.100.1";
/** The host's end of the test's veth pair. */
export const UPSTREAM_HOST_SIDE = "198.51.100.254";

/** Runs a command; its exit code and output. */
export function sh(cmd: string, ...args: string[]): { code: number; out: string; err: string } {
  const r = new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).outputSync();
  const dec = new TextDecoder();
  return { code: r.code, out: dec.decode(r.stdout), err: dec.decode(r.stderr) };
}

function must(r: { code: number; out: string; err: string }, what: string): string {
  assertEquals(r.code, 0, `${what}: ${r.err}`);
  return r.out;
}

/**
 * A DNS responder in python bound to `bind`:53: A records for the names given (argv[1], JSON),
 * NXDOMAIN for every other name, no recursion; each name asked is printed on stdout. Queries
 * are parsed only as far as the question.
 */
export const dnsResponder = (bind: string): string => `
import json, socket, struct, sys
names = {k.lower().rstrip("."): v for k, v in json.loads(sys.argv[1]).items()}
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("${bind}", 53))
while True:
    q, peer = s.recvfrom(512)
    try:
        i, labels = 12, []
        while q[i]:
            labels.append(q[i + 1:i + 1 + q[i]].decode("ascii", "replace"))
            i += 1 + q[i]
        qtype = struct.unpack(">H", q[i + 1:i + 3])[0]
        question = q[12:i + 5]
    except Exception:
        continue
    print(".".join(labels), flush=True)
    ip = names.get(".".join(labels).lower())
    if ip and qtype == 1:
        answer = b"\\xc0\\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + socket.inet_aton(ip)
        head = q[:2] + struct.pack(">HHHHH", 0x8180, 1, 1, 0, 0)
    else:
        answer = b""
        head = q[:2] + struct.pack(">HHHHH", 0x8180 if ip else 0x8183, 1, 0, 0, 0)
    s.sendto(head + question + answer, peer)
`;

/** An upstream namespace serving files over HTTP. */
export interface Upstream {
  readonly ns: string;
  /** The HTTP server's access log so far (one line per request, client address first). */
  log(): string;
  /** Stops the server, removes the veth pair and the namespace. */
  remove(): Promise<void>;
}

/**
 * Makes the upstream namespace `ns` (veth `<tag>h`/`<tag>u`), checks the route to it, and
 * serves `dir` on port `port` there.
 */
export async function makeUpstream(
  ns: string,
  tag: string,
  dir: string,
  port: number,
  names?: Readonly<Record<string, string>>,
): Promise<Upstream> {
  const host = `${tag}h`, peer = `${tag}u`;
  let server: Deno.ChildProcess | undefined;
  let dns: Deno.ChildProcess | undefined;
  let log = "";
  let reading: Promise<void> | undefined;
  const remove = async () => {
    if (dns) {
      try {
        dns.kill("SIGKILL");
      } catch { /* gone */ }
      await dns.status;
    }
    if (server) {
      try {
        server.kill("SIGTERM");
      } catch { /* gone */ }
      await server.status;
      await reading;
    }
    sh("ip", "link", "del", host);
    sh("ip", "netns", "del", ns);
  };
  try {
    must(sh("ip", "netns", "add", ns), `netns add ${ns}`);
    must(sh("ip", "link", "add", host, "type", "veth", "peer", "name", peer), "veth");
    must(sh("ip", "link", "set", peer, "netns", ns), "move");
    must(sh("ip", "addr", "add", `${UPSTREAM_HOST_SIDE}/24`, "dev", host), "addr");
    must(sh("ip", "link", "set", host, "up"), "up");
    must(sh("ip", "-n", ns, "addr", "add", `${UPSTREAM}/24`, "dev", peer), "addr up");
    must(sh("ip", "-n", ns, "link", "set", peer, "up"), "up peer");
    must(sh("ip", "-n", ns, "link", "set", "lo", "up"), "lo");
    // Before any packet: the route to the upstream leaves through our own veth, or stop here.
    const route = JSON.parse(must(sh("ip", "-j", "route", "get", UPSTREAM), "route get")) as {
      dev: string;
    }[];
    assertEquals(route[0]?.dev, host, `route to ${UPSTREAM} does not leave through ${host}`);
    server = new Deno.Command("ip", {
      args: ["netns", "exec", ns, "/usr/bin/python3", "-m", "http.server", "-d", dir, `${port}`],
      stdout: "null",
      stderr: "piped",
    }).spawn();
    if (names) {
      dns = new Deno.Command("ip", {
        args: [
          "netns",
          "exec",
          ns,
          "/usr/bin/python3",
          "-c",
          dnsResponder(UPSTREAM),
          JSON.stringify(names),
        ],
        stdout: "null",
        stderr: "null",
      }).spawn();
    }
    const s = server;
    reading = (async () => {
      for await (const chunk of s.stderr.pipeThrough(new TextDecoderStream())) log += chunk;
    })();
    const end = Date.now() + 20_000;
    for (;;) {
      const probe = sh(
        "ip",
        "netns",
        "exec",
        ns,
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "--max-time",
        "2",
        `http://${UPSTREAM}:${port}/`,
      );
      if (probe.code === 0) break;
      if (Date.now() > end) throw new Error("the upstream's server did not answer");
      await new Promise((r) => setTimeout(r, 100));
    }
  } catch (err) {
    await remove();
    throw err;
  }
  return { ns, log: () => log, remove };
}

/**
 * Another tool's firewall, as a test's own canary: a table with a forward chain and a rule,
 * made before the test's networks. tsbox must leave it exactly as it was (it never flushes or
 * touches other tables). A canary of the test's own, not the host's whole ruleset: other tools
 * and other tests running at the same time change theirs meanwhile.
 */
export function canaryTable(): { unchanged(): boolean; text(): string; remove(): void } {
  const name = `tsbox_canary_${Deno.pid}`;
  const text = () =>
    sh("nft", "list", "table", "ip", name).out.replace(/counter packets \d+ bytes \d+/g, "counter");
  must(
    sh(
      "nft",
      `add table ip ${name}; add chain ip ${name} canary { type filter hook forward priority 10; policy accept; }; add rule ip ${name} canary ip saddr 192.0.2.0/24 counter accept`,
    ),
    "canary table",
  );
  const before = text();
  // A failing test still leaves no table of its own behind.
  globalThis.addEventListener("unload", () => sh("nft", "delete", "table", "ip", name));
  return {
    unchanged: () => text() === before && before.includes("192.0.2.0/24"),
    text,
    remove: () => void sh("nft", "delete", "table", "ip", name),
  };
}
