import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { UsageError } from "../errors.ts";
import {
  formatPortsColumn,
  networkSettingsPorts,
  parseExpose,
  parsePublish,
  planPorts,
  type PortBinding,
  portLines,
  type PortMapping,
  type Proto,
} from "./ports.ts";

const m = (
  hostIp: string,
  h0: number,
  h1: number,
  containerPort: number,
  proto: Proto = "tcp",
): PortMapping => ({
  hostIp,
  hostPortStart: h0,
  hostPortEnd: h1,
  containerPort,
  proto,
});

Deno.test("parsePublish: every form docker accepts", () => {
  assertEquals(parsePublish("8080:80"), [m("", 8080, 8080, 80)]);
  assertEquals(parsePublish("127.0.0.1:8080:80"), [m("127.0.0.1", 8080, 8080, 80)]);
  assertEquals(parsePublish("80"), [m("", 0, 0, 80)]);
  assertEquals(parsePublish("127.0.0.1::80"), [m("127.0.0.1", 0, 0, 80)]);
  assertEquals(parsePublish("8080:80/udp"), [m("", 8080, 8080, 80, "udp")]);
  assertEquals(parsePublish("8080:80/TCP"), [m("", 8080, 8080, 80)]);
  assertEquals(parsePublish("[::1]:8080:80"), [m("::1", 8080, 8080, 80)]);
  assertEquals(parsePublish("[::]:53:53/udp"), [m("::", 53, 53, 53, "udp")]);
  assertEquals(parsePublish("::1:8080:80"), [m("::1", 8080, 8080, 80)]);
  assertEquals(parsePublish("8000-8002:9000-9002"), [
    m("", 8000, 8000, 9000),
    m("", 8001, 8001, 9001),
    m("", 8002, 8002, 9002),
  ]);
  assertEquals(parsePublish("8000-8010:80"), [m("", 8000, 8010, 80)]);
  assertEquals(parsePublish("7000-7001"), [m("", 0, 0, 7000), m("", 0, 0, 7001)]);
});

Deno.test("parsePublish: rejects what docker rejects", () => {
  for (
    const bad of [
      "",
      "abc",
      "8080:",
      "8080:0",
      "70000:80",
      "8080:80/icmp",
      "8000-8002:80-81",
      "1.2.3:8080:80",
      "300.1.1.1:8080:80",
      "8002-8000:80",
      "[::1:8080:80",
      // Four fields: docker reads "127.0.0.1:18081" as the address, which is none.
      "127.0.0.1:18081:80:90",
      "1::2::3:80:80",
      "1:2:3:4:5:6:7:8:9:80:80",
      "fe80::g:80:80",
    ]
  ) {
    let threw: unknown;
    try {
      parsePublish(bad);
    } catch (e) {
      threw = e;
    }
    assertEquals(threw instanceof UsageError, true, `accepted ${JSON.stringify(bad)}`);
  }
  assertThrows(() => parsePublish("80/sctp"), UsageError, "not supported");
  assertThrows(
    () => parsePublish("127.0.0.1:18081:80:90"),
    UsageError,
    "invalid IP address: 127.0.0.1:18081 (in -p 127.0.0.1:18081:80:90)",
  );
  assertEquals(parsePublish("::ffff:127.0.0.1:8080:80"), [m("::ffff:127.0.0.1", 8080, 8080, 80)]);
  assertEquals(parsePublish("1:2:3:4:5:6:7:8:8080:80"), [m("1:2:3:4:5:6:7:8", 8080, 8080, 80)]);
});

Deno.test("parseExpose: ports, ranges and protocols", () => {
  assertEquals(parseExpose("80"), ["80/tcp"]);
  assertEquals(parseExpose("53/udp"), ["53/udp"]);
  assertEquals(parseExpose("8000-8002/tcp"), ["8000/tcp", "8001/tcp", "8002/tcp"]);
  assertThrows(() => parseExpose("http"), UsageError);
});

Deno.test("planPorts: -P publishes image and --expose ports not named by -p", () => {
  const plan = planPorts(
    { publish: ["8080:80"], publishAll: true, expose: ["9000/udp"] },
    { "80/tcp": {}, "443/tcp": {} },
  );
  assertEquals(plan.exposed, ["80/tcp", "443/tcp", "9000/udp"]);
  assertEquals(plan.mappings, [
    m("", 8080, 8080, 80),
    m("", 0, 0, 443),
    m("", 0, 0, 9000, "udp"),
  ]);
  // Without -P, exposed ports stay unpublished; -p ports count as exposed.
  const quiet = planPorts({ publish: ["5000:5000"] }, { "80/tcp": {} });
  assertEquals(quiet.exposed, ["80/tcp", "5000/tcp"]);
  assertEquals(quiet.mappings, [m("", 5000, 5000, 5000)]);
});

const bindings: PortBinding[] = [
  { hostIp: "::", hostPort: 8080, containerPort: 80, proto: "tcp" },
  { hostIp: "0.0.0.0", hostPort: 8080, containerPort: 80, proto: "tcp" },
  { hostIp: "127.0.0.1", hostPort: 5353, containerPort: 53, proto: "udp" },
];

Deno.test("portLines: like docker port, all or one port", () => {
  assertEquals(portLines(bindings), [
    "53/udp -> 127.0.0.1:5353",
    "80/tcp -> 0.0.0.0:8080",
    "80/tcp -> [::]:8080",
  ]);
  assertEquals(portLines(bindings, "80/tcp"), ["0.0.0.0:8080", "[::]:8080"]);
  assertEquals(portLines(bindings, "80"), ["0.0.0.0:8080", "[::]:8080"]);
  assertEquals(portLines(bindings, "81"), []);
});

Deno.test("formatPortsColumn: docker's PORTS text with ranges and exposed-only ports", () => {
  assertEquals(
    formatPortsColumn(bindings, ["80/tcp", "53/udp", "443/tcp"]),
    "0.0.0.0:8080->80/tcp, 127.0.0.1:5353->53/udp, [::]:8080->80/tcp, 443/tcp",
  );
  const range = [0, 1, 2].map((i) => ({
    hostIp: "0.0.0.0",
    hostPort: 8000 + i,
    containerPort: 9000 + i,
    proto: "tcp" as const,
  }));
  assertEquals(formatPortsColumn(range), "0.0.0.0:8000-8002->9000-9002/tcp");
  assertEquals(formatPortsColumn([]), "");
});

Deno.test("networkSettingsPorts: docker's inspect shape", () => {
  assertEquals(networkSettingsPorts(bindings, ["443/tcp"]), {
    "53/udp": [{ HostIp: "127.0.0.1", HostPort: "5353" }],
    "80/tcp": [{ HostIp: "0.0.0.0", HostPort: "8080" }, { HostIp: "::", HostPort: "8080" }],
    "443/tcp": null,
  });
});
