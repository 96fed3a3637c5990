/**
 * rtnetlink over a NETLINK_ROUTE socket: links (bridge, veth, up/down, master, moving a link into
 * another network namespace by fd, delete), addresses and routes. Messages are built and parsed
 * by ffi/netlink_msg.ts; this file only sends them and reads the answers.
 *
 * A socket belongs to the network namespace of the thread that created it, so
 * {@link Netlink.openIn} moves the calling (main) thread into a namespace with setns, makes the
 * socket, and moves back at once: every request on that socket then acts inside that namespace
 * while the process stays where it was. Every call is synchronous: the kernel answers rtnetlink
 * requests before `sendto` returns.
 *
 * @module
 */
import { check, cstr, errno, openLibc } from "./libc.ts";
import { SyscallError } from "./errors.ts";
import {
  type Address,
  AF_INET,
  AF_INET6,
  type Attr,
  encodeAttrs,
  encodeMessage,
  IFA,
  IFA_F_NODAD,
  ifaddrmsg,
  IFF_UP,
  ifinfomsg,
  IFLA,
  IFLA_INFO_DATA,
  IFLA_INFO_KIND,
  ipv4Bytes,
  ipv6Bytes,
  type Link,
  macBytes,
  type Message,
  NLM_F_ACK,
  NLM_F_CREATE,
  NLM_F_DUMP,
  NLM_F_EXCL,
  NLM_F_REQUEST,
  NLMSG_DONE,
  NLMSG_ERROR,
  parseAddress,
  parseError,
  parseLink,
  parseMessages,
  parseRoute,
  type Route,
  RT_SCOPE_LINK,
  RT_SCOPE_UNIVERSE,
  RTA,
  RTM,
  rtmsg,
  VETH_INFO_PEER,
} from "./netlink_msg.ts";

export type { Address, Link, Route } from "./netlink_msg.ts";

const libc = openLibc({
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  sendto: { parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"], result: "isize" },
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
  open: { parameters: ["buffer", "i32"], result: "i32" },
  setns: { parameters: ["i32", "i32"], result: "i32" },
});

const AF_NETLINK = 16;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0o2000000;
const NETLINK_ROUTE = 0;
const SOL_NETLINK = 270;
const NETLINK_CAP_ACK = 10;
const NETLINK_EXT_ACK = 11;
const CLONE_NEWNET = 0x40000000;
const O_RDONLY_CLOEXEC = 0o2000000;
const EINTR = 4;

/**
 * A request the kernel refused: `call` names the rtnetlink operation (`RTM_NEWLINK`), `args`
 * what it was about, `errno` is the NLMSG_ERROR code; the kernel's extended ack text, when it
 * gave one, ends the message.
 */
export class NetlinkError extends SyscallError {
  constructor(
    call: string,
    args: readonly unknown[],
    errno: number,
    /** The kernel's own explanation (extended ack), if any. */
    readonly detail?: string,
  ) {
    super(call, args, errno);
    this.name = "NetlinkError";
    if (detail) this.message += `: ${detail}`;
  }
}

const RTM_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(RTM).map(([k, v]) => [v, `RTM_${k}`]),
);

/** What to create as a veth pair. */
export interface VethOptions {
  /** Name of the end that stays in this socket's namespace. */
  readonly name: string;
  /** Name of the other end. */
  readonly peerName: string;
  /** Create the peer directly in the network namespace this fd refers to. */
  readonly peerNetnsFd?: number;
  /** The peer's MAC address (`aa:bb:cc:dd:ee:ff`). */
  readonly peerMac?: string;
  readonly mtu?: number;
}

/** A route to add. */
export interface RouteSpec {
  /** Destination in CIDR form; omitted for the default route. */
  readonly dst?: string;
  /** Next hop. */
  readonly gateway?: string;
  /** Outgoing interface index. */
  readonly oif?: number;
}

/** One NETLINK_ROUTE socket, in the network namespace where it was made. */
export class Netlink {
  #fd: number;
  #seq = 1;
  readonly #buf = new Uint8Array(65536);

  private constructor(fd: number) {
    this.#fd = fd;
  }

  /** A socket in the calling thread's network namespace. */
  static open(): Netlink {
    const fd = check(
      libc.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE),
      "socket",
      ["AF_NETLINK", "NETLINK_ROUTE"],
    );
    try {
      const one = new Uint8Array(new Int32Array([1]).buffer);
      // Errors then echo only the request's header, and carry the kernel's text (best effort:
      // older kernels lack the options).
      libc.setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, one, 4);
      libc.setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, one, 4);
      const sa = new Uint8Array(12);
      new DataView(sa.buffer).setUint16(0, AF_NETLINK, true);
      check(libc.bind(fd, sa, sa.length), "bind", ["AF_NETLINK"]);
    } catch (err) {
      libc.close(fd);
      throw err;
    }
    return new Netlink(fd);
  }

  /**
   * A socket in the network namespace `netnsFd` refers to: the calling thread joins it just long
   * enough to make the socket (no await in between) and returns to its own at once.
   */
  static openIn(netnsFd: number): Netlink {
    const own = check(
      libc.open(cstr("/proc/thread-self/ns/net"), O_RDONLY_CLOEXEC),
      "open",
      ["/proc/thread-self/ns/net"],
    );
    try {
      if (libc.setns(netnsFd, CLONE_NEWNET) < 0) {
        throw new SyscallError("setns", [netnsFd, "net"], errno());
      }
      let made: Netlink | undefined, failure: unknown;
      try {
        made = Netlink.open();
      } catch (err) {
        failure = err;
      }
      if (libc.setns(own, CLONE_NEWNET) < 0) {
        // The thread would stay in the other namespace: nothing after this would be safe.
        const e = errno();
        made?.close();
        throw new SyscallError("setns", [own, "net (back to our own)"], e);
      }
      if (!made) throw failure;
      return made;
    } finally {
      libc.close(own);
    }
  }

  /** Closes the socket. */
  close(): void {
    if (this.#fd >= 0) libc.close(this.#fd);
    this.#fd = -1;
  }

  /**
   * Sends one request and returns the messages of its answer (for a dump, every part up to
   * NLMSG_DONE). Throws {@link NetlinkError} when the kernel answers with an error.
   */
  request(
    type: number,
    flags: number,
    header: Uint8Array,
    attrs: readonly Attr[],
    what: readonly unknown[],
  ): Message[] {
    const seq = this.#seq++;
    const msg = encodeMessage(type, flags | NLM_F_REQUEST | NLM_F_ACK, seq, header, attrs);
    const call = RTM_NAMES[type] ?? `netlink(${type})`;
    const sa = new Uint8Array(12);
    new DataView(sa.buffer).setUint16(0, AF_NETLINK, true);
    for (;;) {
      const n = Number(libc.sendto(this.#fd, msg, BigInt(msg.length), 0, sa, sa.length));
      if (n >= 0) break;
      const e = errno();
      if (e !== EINTR) throw new SyscallError("sendto", ["netlink", call, ...what], e);
    }
    const out: Message[] = [];
    for (;;) {
      const n = Number(libc.recv(this.#fd, this.#buf, BigInt(this.#buf.length), 0));
      if (n < 0) {
        const e = errno();
        if (e === EINTR) continue;
        throw new SyscallError("recv", ["netlink", call, ...what], e);
      }
      for (const m of parseMessages(this.#buf.slice(0, n))) {
        if (m.seq !== seq) continue; // a late answer to an earlier request
        if (m.type === NLMSG_ERROR) {
          const { error, message } = parseError(m);
          if (error === 0) return out;
          throw new NetlinkError(call, what, -error, message);
        }
        if (m.type === NLMSG_DONE) return out;
        out.push(m);
      }
    }
  }

  /** Every link in this namespace. */
  links(): Link[] {
    return this.request(RTM.GETLINK, NLM_F_DUMP, ifinfomsg(), [], ["dump"])
      .filter((m) => m.type === RTM.NEWLINK).map((m) => parseLink(m.payload));
  }

  /** The link named `name`, or undefined when there is none. */
  link(name: string): Link | undefined {
    try {
      const [m] = this.request(RTM.GETLINK, 0, ifinfomsg(), [{ type: IFLA.IFNAME, str: name }], [
        name,
      ]);
      return m ? parseLink(m.payload) : undefined;
    } catch (err) {
      if (err instanceof NetlinkError && (err.code === "ENODEV" || err.code === "ENOENT")) {
        return undefined;
      }
      throw err;
    }
  }

  /** The link named `name`; throws a NetlinkError (ENODEV) when missing. */
  requireLink(name: string): Link {
    const l = this.link(name);
    if (!l) throw new NetlinkError("RTM_GETLINK", [name], 19);
    return l;
  }

  /** Creates a bridge (fails with EEXIST when a link of that name exists). */
  createBridge(name: string): Link {
    this.request(RTM.NEWLINK, NLM_F_CREATE | NLM_F_EXCL, ifinfomsg(), [
      { type: IFLA.IFNAME, str: name },
      { type: IFLA.LINKINFO, nested: [{ type: IFLA_INFO_KIND, str: "bridge" }] },
    ], [name, "bridge"]);
    return this.requireLink(name);
  }

  /** Creates a veth pair; returns the end in this namespace. */
  createVeth(o: VethOptions): Link {
    const peer: Attr[] = [{ type: IFLA.IFNAME, str: o.peerName }];
    if (o.peerNetnsFd !== undefined) peer.push({ type: IFLA.NET_NS_FD, u32: o.peerNetnsFd });
    if (o.peerMac) peer.push({ type: IFLA.ADDRESS, bytes: macBytes(o.peerMac) });
    if (o.mtu) peer.push({ type: IFLA.MTU, u32: o.mtu });
    const peerInfo = new Uint8Array([...ifinfomsg(), ...encodeAttrs(peer)]);
    const attrs: Attr[] = [{ type: IFLA.IFNAME, str: o.name }];
    if (o.mtu) attrs.push({ type: IFLA.MTU, u32: o.mtu });
    attrs.push({
      type: IFLA.LINKINFO,
      nested: [
        { type: IFLA_INFO_KIND, str: "veth" },
        { type: IFLA_INFO_DATA, nested: [{ type: VETH_INFO_PEER, bytes: peerInfo }] },
      ],
    });
    this.request(RTM.NEWLINK, NLM_F_CREATE | NLM_F_EXCL, ifinfomsg(), attrs, [
      o.name,
      `veth peer ${o.peerName}`,
    ]);
    return this.requireLink(o.name);
  }

  /** Sets a link up or down. */
  setUp(index: number, up = true): void {
    this.request(RTM.NEWLINK, 0, ifinfomsg(index, up ? IFF_UP : 0, IFF_UP), [], [
      index,
      up ? "up" : "down",
    ]);
  }

  /** Enslaves a link to a bridge (`master` 0 releases it). */
  setMaster(index: number, master: number): void {
    this.request(RTM.NEWLINK, 0, ifinfomsg(index), [{ type: IFLA.MASTER, u32: master }], [
      index,
      `master ${master}`,
    ]);
  }

  /** Sets a link's MAC address. */
  setMac(index: number, mac: string): void {
    this.request(RTM.NEWLINK, 0, ifinfomsg(index), [{ type: IFLA.ADDRESS, bytes: macBytes(mac) }], [
      index,
      `address ${mac}`,
    ]);
  }

  /** Sets a link's alias (IFLA_IFALIAS, at most 255 bytes; "" removes it). */
  setAlias(index: number, alias: string): void {
    if (new TextEncoder().encode(alias).length > 255) {
      throw new RangeError(`interface alias longer than 255 bytes: ${alias}`);
    }
    this.request(RTM.NEWLINK, 0, ifinfomsg(index), [{ type: IFLA.IFALIAS, str: alias }], [
      index,
      `alias ${alias}`,
    ]);
  }

  /** Renames a link (it must be down). */
  rename(index: number, name: string): void {
    this.request(RTM.NEWLINK, 0, ifinfomsg(index), [{ type: IFLA.IFNAME, str: name }], [
      index,
      `name ${name}`,
    ]);
  }

  /** Moves a link into the network namespace `netnsFd` refers to. */
  moveToNetns(index: number, netnsFd: number): void {
    this.request(RTM.NEWLINK, 0, ifinfomsg(index), [{ type: IFLA.NET_NS_FD, u32: netnsFd }], [
      index,
      `netns fd ${netnsFd}`,
    ]);
  }

  /** Deletes a link (deleting one end of a veth pair deletes both). */
  deleteLink(index: number): void {
    this.request(RTM.DELLINK, 0, ifinfomsg(index), [], [index]);
  }

  /** Deletes the link named `name`; false when there was none. */
  deleteLinkByName(name: string): boolean {
    try {
      this.request(RTM.DELLINK, 0, ifinfomsg(), [{ type: IFLA.IFNAME, str: name }], [name]);
      return true;
    } catch (err) {
      if (err instanceof NetlinkError && (err.code === "ENODEV" || err.code === "ENOENT")) {
        return false;
      }
      throw err;
    }
  }

  /** Adds an IPv4 address `ip/prefixLen` to a link (EEXIST when it has it already). */
  addAddress(index: number, ip: string, prefixLen: number): void {
    const bytes = ipv4Bytes(ip);
    this.request(RTM.NEWADDR, NLM_F_CREATE | NLM_F_EXCL, ifaddrmsg(AF_INET, prefixLen, index), [
      { type: IFA.LOCAL, bytes },
      { type: IFA.ADDRESS, bytes },
      { type: IFA.BROADCAST, bytes: broadcastOf(bytes, prefixLen) },
    ], [index, `${ip}/${prefixLen}`]);
  }

  /**
   * Adds an IPv6 address `ip/prefixLen` to a link, usable at once (no duplicate address
   * detection: tsbox gives the addresses of its subnets out itself). EEXIST when it has it.
   */
  addAddress6(index: number, ip: string, prefixLen: number): void {
    const bytes = ipv6Bytes(ip);
    this.request(
      RTM.NEWADDR,
      NLM_F_CREATE | NLM_F_EXCL,
      ifaddrmsg(AF_INET6, prefixLen, index, 0, IFA_F_NODAD),
      [{ type: IFA.LOCAL, bytes }, { type: IFA.ADDRESS, bytes }],
      [index, `${ip}/${prefixLen}`],
    );
  }

  /** Every IPv4 address in this namespace. */
  addresses(): Address[] {
    return this.request(RTM.GETADDR, NLM_F_DUMP, ifaddrmsg(AF_INET, 0, 0), [], ["dump"])
      .filter((m) => m.type === RTM.NEWADDR).map((m) => parseAddress(m.payload));
  }

  /** Adds an IPv4 route to the main table (EEXIST when an equal one exists). */
  addRoute(r: RouteSpec): void {
    const [dst, len] = r.dst ? splitCidr(r.dst) : ["0.0.0.0", 0];
    const attrs: Attr[] = [];
    if (len > 0) attrs.push({ type: RTA.DST, bytes: ipv4Bytes(dst) });
    if (r.gateway) attrs.push({ type: RTA.GATEWAY, bytes: ipv4Bytes(r.gateway) });
    if (r.oif !== undefined) attrs.push({ type: RTA.OIF, u32: r.oif });
    const scope = r.gateway ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK;
    this.request(RTM.NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, rtmsg(AF_INET, len, { scope }), attrs, [
      r.dst ?? "default",
      r.gateway ? `via ${r.gateway}` : "",
    ]);
  }

  /** Adds an IPv6 default route through `gateway` (EEXIST when an equal one exists). */
  addDefaultRoute6(gateway: string): void {
    this.request(
      RTM.NEWROUTE,
      NLM_F_CREATE | NLM_F_EXCL,
      rtmsg(AF_INET6, 0, { scope: RT_SCOPE_UNIVERSE }),
      [{ type: RTA.GATEWAY, bytes: ipv6Bytes(gateway) }],
      ["default", `via ${gateway}`],
    );
  }

  /** Every IPv4 route (IPv6 with `family` AF_INET6) of every table in this namespace. */
  routes(family = AF_INET): Route[] {
    return this.request(RTM.GETROUTE, NLM_F_DUMP, rtmsg(family, 0, { table: 0 }), [], ["dump"])
      .filter((m) => m.type === RTM.NEWROUTE).map((m) => parseRoute(m.payload));
  }
}

function splitCidr(cidr: string): [string, number] {
  const [ip, len] = cidr.split("/");
  const n = Number(len ?? "32");
  if (!Number.isInteger(n) || n < 0 || n > 32) throw new RangeError(`not an IPv4 CIDR: ${cidr}`);
  return [ip, n];
}

function broadcastOf(ip: Uint8Array, prefixLen: number): Uint8Array {
  const n = ((ip[0] << 24) | (ip[1] << 16) | (ip[2] << 8) | ip[3]) >>> 0;
  const mask = prefixLen === 0 ? 0 : (~0 << (32 - prefixLen)) >>> 0;
  const b = (n | ~mask) >>> 0;
  return new Uint8Array([b >>> 24, (b >>> 16) & 0xff, (b >>> 8) & 0xff, b & 0xff]);
}
