import { assertEquals, assertThrows } from "../tests/assert.ts";
import {
  AF_INET,
  encodeAttrs,
  encodeMessage,
  IFA,
  ifaddrmsg,
  IFF_UP,
  ifinfomsg,
  IFLA,
  IFLA_INFO_KIND,
  ipv4Bytes,
  macBytes,
  macText,
  NLM_F_ACK,
  NLM_F_ACK_TLVS,
  NLM_F_CAPPED,
  NLM_F_CREATE,
  NLM_F_EXCL,
  NLM_F_REQUEST,
  NLMSG_ERROR,
  NLMSGERR_ATTR_MSG,
  parseAddress,
  parseAttrs,
  parseError,
  parseLink,
  parseMessages,
  parseRoute,
  RTA,
  RTM,
  rtmsg,
} from "./netlink_msg.ts";

function le32(n: number): number[] {
  return [n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, (n >>> 24) & 0xff];
}
function le16(n: number): number[] {
  return [n & 0xff, (n >> 8) & 0xff];
}
function ascii(s: string): number[] {
  return [...s].map((c) => c.charCodeAt(0));
}

Deno.test("a bridge's RTM_NEWLINK is encoded byte for byte as iproute2 sends it", () => {
  const flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
  const msg = encodeMessage(RTM.NEWLINK, flags, 7, ifinfomsg(), [
    { type: IFLA.IFNAME, str: "br0" },
    { type: IFLA.LINKINFO, nested: [{ type: IFLA_INFO_KIND, str: "bridge" }] },
  ]);
  assertEquals(Array.from(msg), [
    ...le32(56),
    ...le16(16),
    ...le16(0x605),
    ...le32(7),
    ...le32(0), // nlmsghdr
    ...new Array(16).fill(0), // ifinfomsg: AF_UNSPEC, index 0, flags 0, change 0
    ...le16(8),
    ...le16(3),
    ...ascii("br0"),
    0, // IFLA_IFNAME "br0\0"
    ...le16(16),
    ...le16(18), // IFLA_LINKINFO
    ...le16(11),
    ...le16(1),
    ...ascii("bridge"),
    0,
    0, // IFLA_INFO_KIND "bridge\0" + pad
  ]);
});

Deno.test("ifinfomsg carries index, flags and the change mask; ifaddrmsg and rtmsg their fields", () => {
  assertEquals(Array.from(ifinfomsg(5, IFF_UP, IFF_UP)), [
    0,
    0,
    0,
    0,
    ...le32(5),
    ...le32(1),
    ...le32(1),
  ]);
  assertEquals(Array.from(ifaddrmsg(AF_INET, 24, 9)), [2, 24, 0, 0, ...le32(9)]);
  assertEquals(Array.from(rtmsg(AF_INET, 0)), [2, 0, 0, 0, 254, 3, 0, 1, 0, 0, 0, 0]);
});

Deno.test("attributes round-trip, nested ones included, and a truncated one ends the list", () => {
  const bytes = encodeAttrs([
    { type: IFLA.MTU, u32: 1500 },
    { type: IFLA.LINKINFO, nested: [{ type: IFLA_INFO_KIND, str: "veth" }] },
    { type: IFLA.ADDRESS, bytes: macBytes("02:42:0a:5a:00:02") },
  ]);
  const attrs = parseAttrs(bytes);
  assertEquals(attrs.map((a) => a.type), [IFLA.MTU, IFLA.LINKINFO, IFLA.ADDRESS]);
  assertEquals(macText(attrs[2].data), "02:42:0a:5a:00:02");
  assertEquals(parseAttrs(attrs[1].data).map((a) => a.type), [IFLA_INFO_KIND]);
  // Cut inside the last attribute: the first two are still read, nothing past the end.
  assertEquals(parseAttrs(bytes.subarray(0, bytes.length - 4)).length, 2);
  // An attribute claiming less than its own header stops the walk.
  assertEquals(parseAttrs(new Uint8Array([2, 0, 1, 0, 0, 0, 0, 0])), []);
});

Deno.test("a link, an address and a route are parsed from kernel-shaped payloads", () => {
  const link = new Uint8Array([
    ...ifinfomsg(12, IFF_UP | 0x1000),
    ...encodeAttrs([
      { type: IFLA.IFNAME, str: "tsbox0" },
      { type: IFLA.MTU, u32: 1500 },
      { type: IFLA.MASTER, u32: 3 },
      { type: IFLA.ADDRESS, bytes: macBytes("aa:bb:cc:dd:ee:ff") },
      { type: IFLA.LINKINFO, nested: [{ type: IFLA_INFO_KIND, str: "bridge" }] },
    ]),
  ]);
  assertEquals(parseLink(link), {
    index: 12,
    name: "tsbox0",
    flags: 0x1001,
    mtu: 1500,
    master: 3,
    kind: "bridge",
    mac: "aa:bb:cc:dd:ee:ff",
  });
  const addr = new Uint8Array([
    ...ifaddrmsg(AF_INET, 24, 12),
    ...encodeAttrs([
      { type: IFA.ADDRESS, bytes: ipv4Bytes("10.90.0.1") },
      { type: IFA.LOCAL, bytes: ipv4Bytes("10.90.0.1") },
    ]),
  ]);
  assertEquals(parseAddress(addr), {
    family: AF_INET,
    prefixLen: 24,
    index: 12,
    address: "10.90.0.1",
  });
  const route = new Uint8Array([
    ...rtmsg(AF_INET, 0),
    ...encodeAttrs([
      { type: RTA.TABLE, u32: 254 },
      { type: RTA.GATEWAY, bytes: ipv4Bytes("10.90.0.1") },
      { type: RTA.OIF, u32: 2 },
    ]),
  ]);
  assertEquals(parseRoute(route), {
    family: AF_INET,
    dst: "0.0.0.0",
    dstLen: 0,
    table: 254,
    type: 1,
    scope: 0,
    oif: 2,
    gateway: "10.90.0.1",
  });
});

Deno.test("NLMSG_ERROR: an ack, an errno, and the kernel's extended ack text", () => {
  const ack = encodeMessage(
    NLMSG_ERROR,
    0,
    3,
    new Uint8Array([...le32(0), ...new Array(16).fill(0)]),
  );
  const [m] = parseMessages(ack);
  assertEquals(m.seq, 3);
  assertEquals(parseError(m), { error: 0 });

  const echoed = new Uint8Array(16);
  new DataView(echoed.buffer).setUint32(0, 48, true); // the request was 48 bytes; capped
  const err = encodeMessage(
    NLMSG_ERROR,
    NLM_F_CAPPED | NLM_F_ACK_TLVS,
    4,
    new Uint8Array([...le32(-17 >>> 0), ...echoed]),
    [{ type: NLMSGERR_ATTR_MSG, str: "Device already exists" }],
  );
  assertEquals(parseError(parseMessages(err)[0]), {
    error: -17,
    message: "Device already exists",
  });
});

Deno.test("a datagram of several messages is split; one overrunning the buffer is refused", () => {
  const a = encodeMessage(RTM.NEWLINK, 2, 1, ifinfomsg(1), [{ type: IFLA.IFNAME, str: "lo" }]);
  const b = encodeMessage(3, 2, 1, new Uint8Array(4));
  const both = new Uint8Array([...a, ...b]);
  const msgs = parseMessages(both);
  assertEquals(msgs.map((m) => m.type), [RTM.NEWLINK, 3]);
  assertEquals(parseLink(msgs[0].payload).name, "lo");
  const bad = new Uint8Array(a);
  new DataView(bad.buffer).setUint32(0, 4096, true);
  assertThrows(() => parseMessages(bad), RangeError);
});

Deno.test("bad addresses are refused by the encoders", () => {
  assertThrows(() => ipv4Bytes("10.0.0"), RangeError);
  assertThrows(() => ipv4Bytes("10.0.0.256"), RangeError);
  assertThrows(() => macBytes("02:42:0a:5a:00"), RangeError);
});
