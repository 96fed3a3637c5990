import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { UsageError } from "../errors.ts";
import {
  addressAt6,
  contains6,
  formatIPv6,
  formatSubnet6,
  overlaps6,
  parseIPv6,
  parseSubnet6,
  ulaFor,
} from "./cidr6.ts";

Deno.test("IPv6 text: parsed and written back in RFC 5952's form", () => {
  for (
    const [text, out] of [
      ["fd42:7b:1::", "fd42:7b:1::"],
      ["::1", "::1"],
      ["::", "::"],
      ["2001:DB8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
      ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"],
      ["fe80:0:0:0:0:0:0:0", "fe80::"],
    ]
  ) {
    const n = parseIPv6(text);
    assertEquals(n === undefined ? undefined : formatIPv6(n), out, text);
  }
  for (const bad of ["1::2::3", "1:2:3", "12345::", "fe80::1%eth0", "::ffff:1.2.3.4", "g::"]) {
    assertEquals(parseIPv6(bad), undefined, bad);
  }
});

Deno.test("IPv6 subnets: prefix range, host bits, overlap, addresses, a ULA per network", () => {
  const s = parseSubnet6("fd42:7b:1::/64");
  assertEquals(formatSubnet6(s), "fd42:7b:1::/64");
  assertEquals(addressAt6(s, 1), "fd42:7b:1::1");
  assertEquals(addressAt6(s, 258), "fd42:7b:1::102");
  assertEquals(contains6(s, parseIPv6("fd42:7b:1::ffff")!), true);
  assertEquals(contains6(s, parseIPv6("fd42:7b:2::1")!), false);
  assertEquals(overlaps6(s, parseSubnet6("fd42:7b:1::/48")), true);
  assertEquals(overlaps6(s, parseSubnet6("fd42:7b:2::/64")), false);
  assertThrows(() => parseSubnet6("fd42:7b:1::1/64"), UsageError, "did you mean fd42:7b:1::/64");
  assertThrows(() => parseSubnet6("fd42::/32"), UsageError, "between /48 and /120");
  assertThrows(() => parseSubnet6("10.0.0.0/8"), UsageError, "IPv6 CIDR");
  assertEquals(formatSubnet6(ulaFor("0123456789abcdef".repeat(4))), "fd01:2345:6789:abcd::/64");
});
