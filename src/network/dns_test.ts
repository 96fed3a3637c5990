/**
 * syncNetworksDns against the real aardvark-dns (root: it binds port 53), with a config
 * directory of the test's own and "gateways" on loopback addresses (nothing leaves the host):
 * when it returns, the name is answered at once — after a first start (aardvark-dns 1.4 tells
 * its parent it is ready before binding), after a SIGHUP, and after the last file went (the
 * signalled aardvark-dns is ending) — and a network it cannot serve is a clear error.
 */
import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { aardvarkPid, DnsServerError, syncNetworksDns } from "./dns.ts";

const isRoot = Deno.uid() === 0;

/**
 * One A query for `name` to `server`:53 from address `from` (python, one try, no retry): the
 * answer's address. aardvark-dns answers names only to a container it knows by its address (it
 * forwards other requesters' queries), so `from` is one listed in the network's file.
 */
async function lookup(server: string, from: string, name: string): Promise<string> {
  const script = `
import socket, struct, sys
q = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
q += b"".join(bytes([len(p)]) + p.encode() for p in sys.argv[3].split(".")) + b"\\0"
q += struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.bind((sys.argv[2], 0))
s.connect((sys.argv[1], 53))
s.send(q)
r = s.recv(512)
print(socket.inet_ntoa(r[-4:]) if struct.unpack(">H", r[6:8])[0] else "none")
`;
  const out = await new Deno.Command("python3", {
    args: ["-c", script, server, from, name],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return dec.decode(out.stdout).trim() || dec.decode(out.stderr).trim().split("\n").pop()!;
}

Deno.test({
  name: "syncNetworksDns returns once aardvark-dns answers the network's names",
  ignore: !isRoot,
  fn: async () => {
    const dir = `/run/tsbox/aardvark-dns-unit-${Deno.pid}`;
    const before = Deno.env.get("TSBOX_DNS_DIR");
    Deno.env.set("TSBOX_DNS_DIR", dir);
    // Containers on loopback addresses; anything else is forwarded to 127.0.0.1 only.
    const net = (bridge: string, gateway: string, ...containers: [string, string][]) => ({
      bridge,
      gateway,
      upstreams: ["127.0.0.1"],
      entries: containers.map(([name, ipv4]) => ({
        id: `${name}-id`,
        ipv4,
        names: [name],
        dns: ["127.0.0.1"],
      })),
    });
    try {
      for (let round = 0; round < 5; round++) {
        // A first start: no aardvark-dns runs for this directory.
        syncNetworksDns([net("t-dnsa", "127.0.0.61", ["alpha", "127.0.0.71"])]);
        assertEquals(
          await lookup("127.0.0.61", "127.0.0.71", "alpha"),
          "127.0.0.71",
          `start ${round}`,
        );
        // A SIGHUP: one more container on the first network, and a second network.
        syncNetworksDns([
          net("t-dnsa", "127.0.0.61", ["alpha", "127.0.0.71"], ["beta", "127.0.0.72"]),
          net("t-dnsb", "127.0.0.62", ["gamma", "127.0.0.73"]),
        ]);
        assertEquals(
          await lookup("127.0.0.61", "127.0.0.71", "beta"),
          "127.0.0.72",
          `reload ${round}`,
        );
        assertEquals(
          await lookup("127.0.0.62", "127.0.0.73", "gamma"),
          "127.0.0.73",
          `reload ${round}`,
        );
        // The last files go (it ends by itself) and one comes back at once: whichever
        // aardvark-dns serves it, it answers.
        syncNetworksDns([net("t-dnsa", "127.0.0.61"), net("t-dnsb", "127.0.0.62")]);
        syncNetworksDns([net("t-dnsb", "127.0.0.62", ["delta", "127.0.0.74"])]);
        assertEquals(
          await lookup("127.0.0.62", "127.0.0.74", "delta"),
          "127.0.0.74",
          `after last ${round}`,
        );
        syncNetworksDns([net("t-dnsb", "127.0.0.62")]);
      }
      // An address it cannot listen on (not on this host): a container would meet no server.
      const unbound = net("t-dnsc", "192.0.2.61", ["eps", "127.0.0.75"]);
      assertThrows(
        () => syncNetworksDns([unbound], { require: true }),
        DnsServerError,
        "does not listen on 192.0.2.61:53",
      );
      // Without `require` (a container leaving, say) the change goes on.
      assertEquals(syncNetworksDns([unbound]), true);
    } finally {
      const pid = aardvarkPid();
      if (pid !== undefined) Deno.kill(pid, "SIGKILL");
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      if (before === undefined) Deno.env.delete("TSBOX_DNS_DIR");
      else Deno.env.set("TSBOX_DNS_DIR", before);
    }
  },
});
