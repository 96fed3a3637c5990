import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { UsageError } from "../errors.ts";
import {
  contains,
  DEFAULT_POOLS,
  formatIPv4,
  formatSubnet,
  lastOf,
  macFor,
  overlaps,
  parseHostAddress,
  parseIPv4,
  parseSubnet,
  pickSubnet,
} from "./cidr.ts";

Deno.test("addresses and subnets parse, format and compare", () => {
  assertEquals(parseIPv4("10.90.0.1"), 0x0a5a0001);
  assertEquals(parseIPv4("255.255.255.255"), 0xffffffff);
  for (const bad of ["10.90.0", "10.90.0.256", "010.1.1.1", "a.b.c.d", "1.2.3.4.5", ""]) {
    assertEquals(parseIPv4(bad), undefined, bad);
  }
  assertEquals(formatIPv4(0xc0a80001), "192.168.0.1");
  const s = parseSubnet("10.90.4.0/22");
  assertEquals(formatSubnet(s), "10.90.4.0/22");
  assertEquals(formatIPv4(lastOf(s)), "10.90.7.255");
  assertEquals(contains(s, parseIPv4("10.90.7.9")!), true);
  assertEquals(contains(s, parseIPv4("10.90.8.1")!), false);
  assertEquals(overlaps(s, parseSubnet("10.90.0.0/16")), true);
  assertEquals(overlaps(s, parseSubnet("10.90.8.0/24")), false);
  assertEquals(macFor(parseIPv4("10.90.0.2")!), "02:42:0a:5a:00:02");
});

Deno.test("bad subnets and host addresses are refused with the reason", () => {
  const cases: [string, string][] = [
    ["10.1.0.0", "expected IPv4 CIDR"],
    ["10.1.0.0/33", "expected IPv4 CIDR"],
    ["fd00::/64", "expected IPv4 CIDR"],
    ["10.0.0.0/4", "between /8 and /30"],
    ["10.1.0.0/31", "between /8 and /30"],
    ["10.1.2.3/16", "did you mean 10.1.0.0/16?"],
  ];
  for (const [text, why] of cases) assertThrows(() => parseSubnet(text), UsageError, why);
  const s = parseSubnet("10.1.0.0/24");
  assertEquals(formatIPv4(parseHostAddress("10.1.0.9", s, "--ip")), "10.1.0.9");
  assertThrows(
    () => parseHostAddress("10.2.0.9", s, "--ip"),
    UsageError,
    "not in subnet 10.1.0.0/24",
  );
  assertThrows(() => parseHostAddress("10.1.0.0", s, "--gateway"), UsageError, "network address");
  assertThrows(() => parseHostAddress("10.1.0.255", s, "--ip"), UsageError, "broadcast address");
  assertThrows(() => parseHostAddress("x", s, "--ip"), UsageError, "not an IPv4 address");
});

Deno.test("the pool gives the first subnet that overlaps nothing taken", () => {
  assertEquals(formatSubnet(pickSubnet(DEFAULT_POOLS, [])!), "10.90.0.0/24");
  const taken = [
    parseSubnet("10.90.0.0/23"),
    parseSubnet("10.90.2.128/25"),
    parseSubnet("10.0.0.0/8"),
  ]
    .slice(0, 2);
  assertEquals(formatSubnet(pickSubnet(DEFAULT_POOLS, taken)!), "10.90.3.0/24");
  assertEquals(pickSubnet(DEFAULT_POOLS, [parseSubnet("10.0.0.0/8")]), undefined);
});
