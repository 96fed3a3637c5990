import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { isLoopback, ListenAddressError, parseHosts, tcpAddresses } from "./tcp_address.ts";

const TLS = { ca: "ca", cert: "cert", key: "key" };

Deno.test("tcp address: -H values as dockerd takes them", () => {
  const h = parseHosts([
    "tcp://127.0.0.1:2375",
    "tcp://[::1]:2376",
    "tcp://localhost:80",
    "tcp://:2377",
    "unix:///run/x.sock",
  ]);
  assertEquals(h.unix, "/run/x.sock");
  assertEquals(h.tcp.map((t) => [t.hostname, t.port]), [
    ["127.0.0.1", 2375],
    ["::1", 2376],
    ["127.0.0.1", 80],
    ["0.0.0.0", 2377],
  ]);
  for (const bad of ["tcp://1.2.3.4", "http://127.0.0.1:1", "tcp://127.0.0.1:0", "unix://x"]) {
    assertThrows(() => parseHosts([bad]), ListenAddressError);
  }
});

Deno.test("tcp address: loopback only without TLS, any address with client certificates", () => {
  for (const a of ["127.0.0.1", "127.9.8.7", "::1", "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1"]) {
    assertEquals(isLoopback(a), true, a);
  }
  for (const a of ["0.0.0.0", "::", "10.0.0.1", "128.0.0.1", "example.org", "127.0.0.256"]) {
    assertEquals(isLoopback(a), false, a);
  }
  const wide = parseHosts(["tcp://0.0.0.0:2376"]);
  const e = assertThrows(() => tcpAddresses(wide), ListenAddressError);
  assertEquals(e.exitCode, 125);
  assertEquals(tcpAddresses(wide, TLS), [{ hostname: "0.0.0.0", port: 2376, tls: TLS }]);
  assertEquals(tcpAddresses(parseHosts(["tcp://127.0.0.1:1"])), [
    { hostname: "127.0.0.1", port: 1, tls: undefined },
  ]);
});
