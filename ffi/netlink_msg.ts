/**
 * rtnetlink messages as bytes: building requests (links, addresses, routes) and parsing what the
 * kernel answers. Pure TypeScript, no system calls; ffi/netlink.ts sends and receives them.
 *
 * Layout (all host byte order, little-endian on the machines tsbox runs on): a 16-byte
 * `nlmsghdr` {len u32, type u16, flags u16, seq u32, pid u32}, a fixed family header
 * (`ifinfomsg` 16 bytes, `ifaddrmsg` 8, `rtmsg` 12), then attributes {len u16, type u16, data}
 * each padded to 4 bytes. Nested attributes hold attributes as their data.
 *
 * @module
 */

/** Netlink message types and flags (linux/netlink.h, linux/rtnetlink.h). */
export const NLMSG_ERROR = 2;
/** End of a multipart (dump) answer. */
export const NLMSG_DONE = 3;
/** A request. */
export const NLM_F_REQUEST = 0x1;
/** Part of a multipart answer. */
export const NLM_F_MULTI = 0x2;
/** Ask for an acknowledgement (an NLMSG_ERROR with code 0). */
export const NLM_F_ACK = 0x4;
/** Dump: every object (NLM_F_ROOT | NLM_F_MATCH). */
export const NLM_F_DUMP = 0x300;
/** New: replace an existing object. */
export const NLM_F_REPLACE = 0x100;
/** New: fail with EEXIST when the object exists. */
export const NLM_F_EXCL = 0x200;
/** New: create the object when it does not exist. */
export const NLM_F_CREATE = 0x400;
/** Error ack: the echoed request is only its header (NETLINK_CAP_ACK). */
export const NLM_F_CAPPED = 0x100;
/** Error ack: extended ack attributes follow (NETLINK_EXT_ACK). */
export const NLM_F_ACK_TLVS = 0x200;
/** Extended ack attribute: a text message. */
export const NLMSGERR_ATTR_MSG = 1;

/** rtnetlink message types. */
export const RTM = {
  NEWLINK: 16,
  DELLINK: 17,
  GETLINK: 18,
  SETLINK: 19,
  NEWADDR: 20,
  DELADDR: 21,
  GETADDR: 22,
  NEWROUTE: 24,
  DELROUTE: 25,
  GETROUTE: 26,
} as const;

/** Link attributes (IFLA_*). */
export const IFLA = {
  ADDRESS: 1,
  IFNAME: 3,
  MTU: 4,
  LINK: 5,
  MASTER: 10,
  OPERSTATE: 16,
  LINKINFO: 18,
  NET_NS_PID: 19,
  IFALIAS: 20,
  NET_NS_FD: 28,
} as const;
/** IFLA_LINKINFO nested attributes. */
export const IFLA_INFO_KIND = 1;
/** Kind-specific data (for veth: the peer). */
export const IFLA_INFO_DATA = 2;
/** IFLA_INFO_DATA of a veth: the peer's ifinfomsg and attributes. */
export const VETH_INFO_PEER = 1;

/** Address attributes (IFA_*). */
export const IFA = { ADDRESS: 1, LOCAL: 2, LABEL: 3, BROADCAST: 4 } as const;
/** Route attributes (RTA_*). */
export const RTA = { DST: 1, OIF: 4, GATEWAY: 5, PRIORITY: 6, PREFSRC: 7, TABLE: 15 } as const;

/** Interface flags. */
export const IFF_UP = 0x1;
/** Address families. */
export const AF_UNSPEC = 0;
/** IPv4. */
export const AF_INET = 2;
/** IPv6. */
export const AF_INET6 = 10;
/** Address flag: no duplicate address detection (the address is usable at once). */
export const IFA_F_NODAD = 0x02;
/** The main routing table. */
export const RT_TABLE_MAIN = 254;
/** Route origin: set by an administrator (tsbox). */
export const RTPROT_BOOT = 3;
/** Route scope: global (through a gateway). */
export const RT_SCOPE_UNIVERSE = 0;
/** Route scope: directly attached. */
export const RT_SCOPE_LINK = 253;
/** Route type: a unicast route. */
export const RTN_UNICAST = 1;

const NLMSG_HDRLEN = 16;

function align4(n: number): number {
  return (n + 3) & ~3;
}

/** One attribute to encode: a type and bytes, a string (NUL-terminated), a u32, or nested. */
export type Attr =
  | { type: number; bytes: Uint8Array }
  | { type: number; str: string }
  | { type: number; u32: number }
  | { type: number; nested: readonly Attr[] };

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function attrData(a: Attr): Uint8Array {
  if ("bytes" in a) return a.bytes;
  if ("str" in a) {
    const s = encoder.encode(a.str);
    const out = new Uint8Array(s.length + 1);
    out.set(s);
    return out;
  }
  if ("u32" in a) {
    const out = new Uint8Array(4);
    new DataView(out.buffer).setUint32(0, a.u32, true);
    return out;
  }
  return encodeAttrs(a.nested);
}

/** Encodes attributes one after the other, each padded to 4 bytes. */
export function encodeAttrs(attrs: readonly Attr[]): Uint8Array {
  const parts = attrs.map((a) => [a.type, attrData(a)] as const);
  const size = parts.reduce((n, [, d]) => n + align4(4 + d.length), 0);
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  let at = 0;
  for (const [type, data] of parts) {
    view.setUint16(at, 4 + data.length, true);
    view.setUint16(at + 2, type, true);
    out.set(data, at + 4);
    at += align4(4 + data.length);
  }
  return out;
}

/** An attribute read back: its type (nested flag bits cleared) and its data. */
export interface RawAttr {
  readonly type: number;
  readonly data: Uint8Array;
}

/** Parses the attributes in `buf` (stops at a truncated one rather than reading past it). */
export function parseAttrs(buf: Uint8Array): RawAttr[] {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const out: RawAttr[] = [];
  let at = 0;
  while (at + 4 <= buf.length) {
    const len = view.getUint16(at, true);
    if (len < 4 || at + len > buf.length) break;
    out.push({ type: view.getUint16(at + 2, true) & 0x3fff, data: buf.subarray(at + 4, at + len) });
    at += align4(len);
  }
  return out;
}

/** `ifinfomsg`: family, type, index, flags, change mask. */
export function ifinfomsg(index = 0, flags = 0, change = 0): Uint8Array {
  const out = new Uint8Array(16);
  const v = new DataView(out.buffer);
  v.setUint8(0, AF_UNSPEC);
  v.setInt32(4, index, true);
  v.setUint32(8, flags, true);
  v.setUint32(12, change, true);
  return out;
}

/** `ifaddrmsg`: family, prefix length, flags, scope, index. */
export function ifaddrmsg(
  family: number,
  prefixLen: number,
  index: number,
  scope = 0,
  flags = 0,
): Uint8Array {
  const out = new Uint8Array(8);
  const v = new DataView(out.buffer);
  v.setUint8(0, family);
  v.setUint8(1, prefixLen);
  v.setUint8(2, flags);
  v.setUint8(3, scope);
  v.setUint32(4, index, true);
  return out;
}

/** `rtmsg`: family, dst/src lengths, tos, table, protocol, scope, type, flags. */
export function rtmsg(
  family: number,
  dstLen: number,
  options: { table?: number; protocol?: number; scope?: number; type?: number } = {},
): Uint8Array {
  const out = new Uint8Array(12);
  const v = new DataView(out.buffer);
  v.setUint8(0, family);
  v.setUint8(1, dstLen);
  v.setUint8(4, options.table ?? RT_TABLE_MAIN);
  v.setUint8(5, options.protocol ?? RTPROT_BOOT);
  v.setUint8(6, options.scope ?? RT_SCOPE_UNIVERSE);
  v.setUint8(7, options.type ?? RTN_UNICAST);
  return out;
}

/** A whole netlink message: header, family header, attributes. */
export function encodeMessage(
  type: number,
  flags: number,
  seq: number,
  header: Uint8Array,
  attrs: readonly Attr[] = [],
): Uint8Array<ArrayBuffer> {
  const body = encodeAttrs(attrs);
  const len = NLMSG_HDRLEN + align4(header.length) + body.length;
  const out = new Uint8Array(len);
  const v = new DataView(out.buffer);
  v.setUint32(0, len, true);
  v.setUint16(4, type, true);
  v.setUint16(6, flags, true);
  v.setUint32(8, seq, true);
  v.setUint32(12, 0, true);
  out.set(header, NLMSG_HDRLEN);
  out.set(body, NLMSG_HDRLEN + align4(header.length));
  return out;
}

/** One message of a datagram the kernel sent. */
export interface Message {
  readonly type: number;
  readonly flags: number;
  readonly seq: number;
  /** What follows the 16-byte header. */
  readonly payload: Uint8Array;
}

/** Splits a received datagram into its messages. */
export function parseMessages(buf: Uint8Array): Message[] {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const out: Message[] = [];
  let at = 0;
  while (at + NLMSG_HDRLEN <= buf.length) {
    const len = view.getUint32(at, true);
    if (len < NLMSG_HDRLEN || at + len > buf.length) {
      throw new RangeError(`netlink: message of ${len} bytes at ${at} overruns ${buf.length}`);
    }
    out.push({
      type: view.getUint16(at + 4, true),
      flags: view.getUint16(at + 6, true),
      seq: view.getUint32(at + 8, true),
      payload: buf.subarray(at + NLMSG_HDRLEN, at + len),
    });
    at += align4(len);
  }
  return out;
}

/** An NLMSG_ERROR payload: 0 for an acknowledgement, else a negative errno, and its text. */
export interface ErrorPayload {
  /** 0 (ack) or -errno. */
  readonly error: number;
  /** The kernel's extended ack message, when it gave one. */
  readonly message?: string;
}

/** Parses an NLMSG_ERROR payload (with the extended ack text if present). */
export function parseError(msg: Message): ErrorPayload {
  const p = msg.payload;
  if (p.length < 4) throw new RangeError("netlink: short NLMSG_ERROR");
  const view = new DataView(p.buffer, p.byteOffset, p.byteLength);
  const error = view.getInt32(0, true);
  if (!(msg.flags & NLM_F_ACK_TLVS) || p.length < 4 + NLMSG_HDRLEN) return { error };
  // The echoed request: its header alone when capped, else the whole request.
  const echoed = msg.flags & NLM_F_CAPPED ? NLMSG_HDRLEN : view.getUint32(4, true);
  const attrs = parseAttrs(p.subarray(4 + align4(echoed)));
  const text = attrs.find((a) => a.type === NLMSGERR_ATTR_MSG);
  return text ? { error, message: cString(text.data) } : { error };
}

/** A NUL-terminated string attribute as text. */
export function cString(data: Uint8Array): string {
  const end = data.indexOf(0);
  return decoder.decode(end < 0 ? data : data.subarray(0, end));
}

function u32(data: Uint8Array): number {
  return new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(0, true);
}

/** Formats a MAC address's bytes as `aa:bb:...`. */
export function macText(data: Uint8Array): string {
  return Array.from(data, (b) => b.toString(16).padStart(2, "0")).join(":");
}

/** Parses `aa:bb:cc:dd:ee:ff` into 6 bytes. */
export function macBytes(mac: string): Uint8Array {
  const parts = mac.split(":");
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{2}$/.test(p))) {
    throw new RangeError(`not a MAC address: ${mac}`);
  }
  return new Uint8Array(parts.map((p) => parseInt(p, 16)));
}

/** Parses a dotted quad into 4 bytes. */
export function ipv4Bytes(ip: string): Uint8Array {
  const parts = ip.split(".");
  if (parts.length !== 4 || parts.some((p) => !/^[0-9]{1,3}$/.test(p) || Number(p) > 255)) {
    throw new RangeError(`not an IPv4 address: ${ip}`);
  }
  return new Uint8Array(parts.map(Number));
}

/** An IPv6 address's 16 bytes (no zone, no embedded IPv4); throws a RangeError otherwise. */
export function ipv6Bytes(ip: string): Uint8Array {
  const bad = () => new RangeError(`not an IPv6 address: ${ip}`);
  if (!/^[0-9a-fA-F:]+$/.test(ip)) throw bad();
  const halves = ip.split("::");
  if (halves.length > 2) throw bad();
  const groups = (s: string) => (s === "" ? [] : s.split(":"));
  const head = groups(halves[0]), tail = halves.length === 2 ? groups(halves[1]) : [];
  const fill = 8 - head.length - tail.length;
  if (halves.length === 1 ? fill !== 0 : fill < 1) throw bad();
  const all = [...head, ...Array(halves.length === 2 ? fill : 0).fill("0"), ...tail];
  const out = new Uint8Array(16);
  all.forEach((g, i) => {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) throw bad();
    out[2 * i] = parseInt(g, 16) >> 8;
    out[2 * i + 1] = parseInt(g, 16) & 0xff;
  });
  return out;
}

/** Formats an address's bytes (IPv4 dotted quad; IPv6 as full hex groups). */
export function ipText(data: Uint8Array): string {
  if (data.length === 4) return Array.from(data).join(".");
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  return Array.from({ length: data.length / 2 }, (_, i) => v.getUint16(i * 2).toString(16))
    .join(":");
}

/** A network interface as RTM_NEWLINK describes it. */
export interface Link {
  readonly index: number;
  readonly name: string;
  /** IFF_* flags (IFF_UP = 1). */
  readonly flags: number;
  readonly mtu?: number;
  /** The bridge (or other master) this link is enslaved to. */
  readonly master?: number;
  /** `bridge`, `veth`, ... (absent for physical devices). */
  readonly kind?: string;
  readonly mac?: string;
  /** The interface's alias (`ip link set NAME alias TEXT`), when it has one. */
  readonly alias?: string;
}

/** Parses an RTM_NEWLINK payload. */
export function parseLink(payload: Uint8Array): Link {
  const v = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const index = v.getInt32(4, true);
  const flags = v.getUint32(8, true);
  let name = "", mtu: number | undefined, master: number | undefined, kind: string | undefined;
  let mac: string | undefined, alias: string | undefined;
  for (const a of parseAttrs(payload.subarray(16))) {
    if (a.type === IFLA.IFNAME) name = cString(a.data);
    else if (a.type === IFLA.IFALIAS) alias = cString(a.data);
    else if (a.type === IFLA.MTU) mtu = u32(a.data);
    else if (a.type === IFLA.MASTER) master = u32(a.data);
    else if (a.type === IFLA.ADDRESS) mac = macText(a.data);
    else if (a.type === IFLA.LINKINFO) {
      const k = parseAttrs(a.data).find((n) => n.type === IFLA_INFO_KIND);
      if (k) kind = cString(k.data);
    }
  }
  return { index, name, flags, mtu, master, kind, mac, ...(alias ? { alias } : {}) };
}

/** An interface address as RTM_NEWADDR describes it. */
export interface Address {
  readonly family: number;
  readonly prefixLen: number;
  readonly index: number;
  /** IFA_LOCAL (the interface's own address) or, failing that, IFA_ADDRESS. */
  readonly address: string;
}

/** Parses an RTM_NEWADDR payload. */
export function parseAddress(payload: Uint8Array): Address {
  const v = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const attrs = parseAttrs(payload.subarray(8));
  const local = attrs.find((a) => a.type === IFA.LOCAL) ??
    attrs.find((a) => a.type === IFA.ADDRESS);
  return {
    family: v.getUint8(0),
    prefixLen: v.getUint8(1),
    index: v.getUint32(4, true),
    address: local ? ipText(local.data) : "",
  };
}

/** A route as RTM_NEWROUTE describes it. */
export interface Route {
  readonly family: number;
  /** Destination prefix ("0.0.0.0" with dstLen 0 for a default route). */
  readonly dst: string;
  readonly dstLen: number;
  readonly table: number;
  readonly type: number;
  readonly scope: number;
  readonly oif?: number;
  readonly gateway?: string;
}

/** Parses an RTM_NEWROUTE payload. */
export function parseRoute(payload: Uint8Array): Route {
  const v = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const family = v.getUint8(0);
  let table = v.getUint8(4);
  let dst = family === AF_INET ? "0.0.0.0" : "::";
  let oif: number | undefined, gateway: string | undefined;
  for (const a of parseAttrs(payload.subarray(12))) {
    if (a.type === RTA.DST) dst = ipText(a.data);
    else if (a.type === RTA.OIF) oif = u32(a.data);
    else if (a.type === RTA.GATEWAY) gateway = ipText(a.data);
    else if (a.type === RTA.TABLE) table = u32(a.data);
  }
  return {
    family,
    dst,
    dstLen: v.getUint8(1),
    table,
    type: v.getUint8(7),
    scope: v.getUint8(6),
    oif,
    gateway,
  };
}
