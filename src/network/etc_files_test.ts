import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { UsageError } from "../errors.ts";
import { configText } from "./dns.ts";
import { bridgeNetworkName, parseAddHost } from "./endpoints.ts";
import { hostsFor, nameservers, onlyLoopbackResolvers, resolvConfFor } from "./etc_files.ts";

const HOST = "nameserver 127.0.0.53\nnameserver 10.0.0.2\nsearch corp.example\noptions edns0\n";

Deno.test("resolv.conf: user networks ask the embedded server, keeping search and options", () => {
  assertEquals(
    resolvConfFor({ hostResolvConf: HOST, embeddedDns: "10.90.1.1", dns: ["192.0.2.9"] }),
    "nameserver 10.90.1.1\nsearch corp.example\noptions edns0\n",
  );
});

Deno.test("resolv.conf: the default bridge gets the host's servers without loopback ones", () => {
  assertEquals(
    resolvConfFor({ hostResolvConf: HOST }),
    "nameserver 10.0.0.2\nsearch corp.example\noptions edns0\n",
  );
  assertEquals(
    resolvConfFor({
      hostResolvConf: HOST,
      dns: ["192.0.2.9"],
      dnsSearch: ["a.example"],
      dnsOptions: ["ndots:2"],
    }),
    "nameserver 192.0.2.9\nsearch a.example\noptions ndots:2\n",
  );
  // `--dns-search .`: no search domains at all.
  assertEquals(
    resolvConfFor({ hostResolvConf: HOST, dnsSearch: ["."] }),
    "nameserver 10.0.0.2\noptions edns0\n",
  );
});

Deno.test("hosts: an IPv6 address after the IPv4 one", () => {
  assertEquals(
    hostsFor("box", "10.90.1.2", [], "fd42::2").split("\n").slice(-3),
    ["10.90.1.2\tbox", "fd42::2\tbox", ""],
  );
});

Deno.test("hosts: the container's address for its hostname, extra hosts before it", () => {
  const text = hostsFor("web", "10.90.1.2", [["db", "192.0.2.5"]]);
  const lines = text.trim().split("\n");
  assertEquals(lines[0], "127.0.0.1\tlocalhost");
  assertEquals(lines.slice(-2), ["192.0.2.5\tdb", "10.90.1.2\tweb"]);
  assertEquals(hostsFor("x", undefined).trim().split("\n").at(-1), "127.0.1.1\tx");
});

Deno.test("--network values: which name a bridge network", () => {
  assertEquals(bridgeNetworkName(undefined, true), "bridge");
  assertEquals(bridgeNetworkName("default", true), "bridge");
  assertEquals(bridgeNetworkName("default", false), undefined, "rootless: private");
  assertEquals(bridgeNetworkName("bridge", true), "bridge");
  for (const m of ["private", "none", "host", "container:abc"]) {
    assertEquals(bridgeNetworkName(m, true), undefined);
  }
  assertEquals(bridgeNetworkName("app", true), "app");
});

Deno.test("--add-host NAME:IP, NAME=IP, host-gateway; a bad address is refused", () => {
  assertEquals(parseAddHost("db:192.0.2.5"), ["db", "192.0.2.5"]);
  assertEquals(parseAddHost("db=192.0.2.5"), ["db", "192.0.2.5"]);
  assertEquals(parseAddHost("gw:host-gateway"), ["gw", "host-gateway"]);
  assertEquals(parseAddHost("v6:[2001:db8::1]"), ["v6", "2001:db8::1"]);
  assertThrows(() => parseAddHost("db:nonsense"), UsageError, "invalid IP address");
});

Deno.test("aardvark-dns file: gateway first, one line per container, IPv6 where it has one", () => {
  assertEquals(
    configText("10.90.1.1", [
      { id: "a".repeat(64), ipv4: "10.90.1.2", names: ["web", "www", "aaaaaaaaaaaa"] },
      { id: "b".repeat(64), ipv4: "10.90.1.3", names: ["db"], dns: ["192.0.2.53"] },
      { id: "c".repeat(64), ipv4: "10.90.1.4", names: ["bad name"] },
      { id: "e".repeat(64), ipv4: "10.90.1.5", ipv6: "fd42::5", names: ["six"] },
    ]),
    `10.90.1.1\n${"a".repeat(64)} 10.90.1.2  web,www,aaaaaaaaaaaa\n` +
      `${"b".repeat(64)} 10.90.1.3  db 192.0.2.53\n` +
      `${"e".repeat(64)} 10.90.1.5 fd42::5 six\n`,
  );
});

Deno.test("aardvark-dns file: the network's upstreams after the gateway; unnamed entries", () => {
  assertEquals(
    configText(
      "10.90.0.1",
      [{ id: "d".repeat(64), ipv4: "10.90.0.2", names: [], unnamed: true }],
      ["127.0.0.53", "fe80::1%eth0", "::1"],
    ),
    `10.90.0.1 127.0.0.53,::1\n${"d".repeat(64)} 10.90.0.2  \n`,
  );
});

Deno.test("host resolvers: every nameserver; loopback-only hosts are told apart", () => {
  assertEquals(nameservers(HOST), ["127.0.0.53", "10.0.0.2"]);
  assertEquals(onlyLoopbackResolvers(HOST), false);
  assertEquals(onlyLoopbackResolvers("nameserver 127.0.0.53\noptions edns0\n"), true);
  assertEquals(onlyLoopbackResolvers("nameserver ::1\nnameserver 127.0.1.1\n"), true);
  assertEquals(onlyLoopbackResolvers(""), false);
});
