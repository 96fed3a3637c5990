/**
 * The proxy's event loop: one epoll instance, level-triggered, run synchronously on a dedicated
 * thread (the worker in proxy_worker.ts) that has been moved into the container's network
 * namespace. Host listeners were created before that move, so they stay in the host's namespace;
 * every upstream socket this thread creates lands in the container's.
 *
 * Why this shape (measured against alternatives, see bench/ports_bench.ts):
 * - Bytes move with splice(2) socket -> pipe -> socket, so payload never enters JS and is not
 *   copied through user space; JS only sees readiness events.
 * - All calls are synchronous FFI on this thread. Async (`nonblocking: true`) FFI would hand each
 *   call to Deno's blocking pool and resolve a promise on the main thread per chunk, which costs
 *   more CPU than the copy it saves on a machine where the client and server share two cores.
 * - Back-pressure: a direction reads from its source only when its pipe is empty, so at most one
 *   pipe (64 KiB) per direction is held by the proxy; a slow reader stalls the writer through
 *   the kernel's socket buffers, never through memory of ours.
 * - Half-close: EOF from one side becomes shutdown(SHUT_WR) on the other once the pipe drained;
 *   the other direction keeps flowing until it ends too.
 *
 * @module
 */
import {
  accept4Raw,
  AF_INET,
  AF_INET6,
  close,
  connectRaw,
  E,
  EPOLL_CTL_ADD,
  EPOLL_CTL_DEL,
  EPOLL_CTL_MOD,
  EPOLL_EVENT_SIZE,
  epollCreate,
  epollCtlRaw,
  EPOLLERR,
  epollEventAt,
  EPOLLHUP,
  EPOLLIN,
  EPOLLOUT,
  epollWaitRaw,
  eventfdDrain,
  getsockoptInt,
  IPPROTO_TCP,
  O_CLOEXEC,
  O_NONBLOCK,
  pipe2,
  recvfromRaw,
  sendtoRaw,
  setLingerZero,
  setsockoptInt,
  SHUT_WR,
  shutdownRaw,
  SO_ERROR,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOCK_NONBLOCK,
  SOCK_STREAM,
  socket,
  SOL_SOCKET,
  SPLICE_F_MOVE,
  SPLICE_F_NONBLOCK,
  spliceRaw,
  TCP_NODELAY,
} from "../../ffi/net.ts";

/** One host socket the loop serves. */
export interface LoopListener {
  readonly proto: "tcp" | "udp";
  /** The host socket: listening (tcp) or bound (udp); nonblocking. Owned by the caller. */
  readonly fd: number;
  /** Where to connect inside the container's network namespace. */
  readonly upstreamHost: string;
  readonly upstreamPort: number;
}

/** What the loop needs. */
export interface LoopConfig {
  readonly listeners: readonly LoopListener[];
  /** An eventfd: when it becomes readable the loop closes its connections and returns. */
  readonly wakeFd: number;
  /** A UDP flow without traffic for this long is forgotten. */
  readonly udpIdleMs: number;
  /**
   * Makes the sockets that reach the container (`socket(family, type | SOCK_NONBLOCK |
   * SOCK_CLOEXEC)`): by default created by this thread, which then must sit in the container's
   * network namespace; rootless, made there by a helper (netns_sockets.ts). Throws on failure.
   */
  readonly socket?: (family: number, type: number) => number;
}

const CHUNK = 65536;
const SPLICE_FLAGS = SPLICE_F_MOVE | SPLICE_F_NONBLOCK;
/** Rounds of one direction per wake-up, so one busy connection cannot starve the others. */
const ROUNDS = 16;

interface Half {
  src: number;
  dst: number;
  pipeR: number;
  pipeW: number;
  pending: number;
  eof: boolean;
  done: boolean;
}

interface Conn {
  client: number;
  upstream: number;
  connecting: boolean;
  /** client -> upstream */
  up: Half;
  /** upstream -> client */
  down: Half;
  closed: boolean;
}

interface Flow {
  key: string;
  fd: number;
  host: UdpHost;
  /** The client's sockaddr, to send replies to. */
  addr: Uint8Array<ArrayBuffer>;
  last: number;
}

interface UdpHost {
  fd: number;
  listener: LoopListener;
  flows: Map<string, Flow>;
}

type Entry =
  | { kind: "listener"; listener: LoopListener }
  | { kind: "udp-host"; host: UdpHost }
  | { kind: "conn"; conn: Conn }
  | { kind: "flow"; flow: Flow }
  | { kind: "wake" };

function newHalf(src: number, dst: number): Half {
  return { src, dst, pipeR: -1, pipeW: -1, pending: 0, eof: false, done: false };
}

/** Runs until `wakeFd` fires; returns after closing every connection it made. */
export function runLoop(config: LoopConfig): void {
  const upstreamSocket = config.socket ??
    ((family: number, type: number) => socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC));
  const epfd = epollCreate();
  const entries: (Entry | undefined)[] = [];
  const interest: number[] = [];
  const conns = new Set<Conn>();
  const udpHosts: UdpHost[] = [];
  const events = new Uint8Array(EPOLL_EVENT_SIZE * 256);
  const eventView = new DataView(events.buffer);
  const dgram = new Uint8Array(65536);
  const from = new Uint8Array(28);

  // fds that reported EPOLLHUP: both directions are shut, and epoll reports the HUP on every
  // wait whatever the interest. While nothing is wanted from such an fd it leaves the set
  // ("parked", interest -1) instead of waking the loop in a spin.
  const hungUp: boolean[] = [];
  const watch = (fd: number, entry: Entry, ev: number) => {
    entries[fd] = entry;
    hungUp[fd] = false;
    interest[fd] = ev;
    epollCtlRaw(epfd, EPOLL_CTL_ADD, fd, ev);
  };
  const unwatch = (fd: number) => {
    if (entries[fd] === undefined) return;
    entries[fd] = undefined;
    if (interest[fd] !== -1) epollCtlRaw(epfd, EPOLL_CTL_DEL, fd, 0);
    interest[fd] = -1;
  };
  const want = (fd: number, ev: number) => {
    if (entries[fd] === undefined) return;
    const next = hungUp[fd] && ev === 0 ? -1 : ev;
    const now = interest[fd];
    if (next === now) return;
    if (next === -1) epollCtlRaw(epfd, EPOLL_CTL_DEL, fd, 0);
    else epollCtlRaw(epfd, now === -1 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, next);
    interest[fd] = next;
  };

  watch(config.wakeFd, { kind: "wake" }, EPOLLIN);
  for (const l of config.listeners) {
    if (l.proto === "tcp") watch(l.fd, { kind: "listener", listener: l }, EPOLLIN);
    else {
      const host: UdpHost = { fd: l.fd, listener: l, flows: new Map() };
      udpHosts.push(host);
      watch(l.fd, { kind: "udp-host", host }, EPOLLIN);
    }
  }

  const closeConn = (c: Conn, reset: boolean) => {
    if (c.closed) return;
    c.closed = true;
    conns.delete(c);
    for (const fd of [c.client, c.upstream]) {
      unwatch(fd);
      if (reset) setLingerZero(fd);
      close(fd);
    }
    for (const h of [c.up, c.down]) {
      if (h.pipeR >= 0) close(h.pipeR);
      if (h.pipeW >= 0) close(h.pipeW);
    }
  };

  /** Moves what it can in one direction; false when the connection broke. */
  const pump = (h: Half): boolean => {
    // A short read means the socket was drained: the next read would almost surely be EAGAIN,
    // and level-triggered epoll reports it again if more came, so skip that syscall (two per
    // request/response exchange).
    let drained = false;
    for (let round = 0; round < ROUNDS && !h.done; round++) {
      if (h.pending > 0) {
        const n = spliceRaw(h.pipeR, h.dst, h.pending, SPLICE_FLAGS);
        if (n === -E.EAGAIN) return true;
        if (n < 0) return false;
        h.pending -= n;
        if (h.pending > 0) return true; // the destination's buffer is full: wait for EPOLLOUT
      }
      if (h.eof) {
        shutdownRaw(h.dst, SHUT_WR);
        h.done = true;
        return true;
      }
      if (drained) return true;
      const n = spliceRaw(h.src, h.pipeW, CHUNK, SPLICE_FLAGS);
      if (n === -E.EAGAIN) return true;
      if (n < 0) return false;
      if (n === 0) h.eof = true;
      else {
        h.pending += n;
        drained = n < CHUNK;
      }
    }
    return true;
  };

  /** Recomputes what each side waits for, from the state of both directions. */
  const update = (c: Conn) => {
    if (c.up.done && c.down.done) return closeConn(c, false);
    const readUp = !c.up.eof && c.up.pending === 0;
    const writeUp = c.up.pending > 0;
    const readDown = !c.down.eof && c.down.pending === 0;
    const writeDown = c.down.pending > 0;
    // A side with nothing left to do leaves the set: epoll reports EPOLLHUP whatever the
    // interest, and a level-triggered HUP on an idle fd would spin the loop.
    // Once a side is neither read (its EOF came) nor written (the direction into it is done),
    // it never is again.
    if (c.up.eof && c.down.done) unwatch(c.client);
    else want(c.client, (readUp ? EPOLLIN : 0) | (writeDown ? EPOLLOUT : 0));
    if (c.down.eof && c.up.done) unwatch(c.upstream);
    else want(c.upstream, (readDown ? EPOLLIN : 0) | (writeUp ? EPOLLOUT : 0));
  };

  const connected = (c: Conn) => {
    c.connecting = false;
    for (const h of [c.up, c.down]) [h.pipeR, h.pipeW] = pipe2(O_NONBLOCK | O_CLOEXEC);
    setsockoptInt(c.upstream, IPPROTO_TCP, TCP_NODELAY, 1);
    if (!pump(c.up) || !pump(c.down)) return closeConn(c, true);
    update(c);
  };

  const accept = (l: LoopListener) => {
    for (let i = 0; i < 64; i++) {
      const client = accept4Raw(l.fd, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (client < 0) return; // EAGAIN, or a connection that died in the queue
      let upstream: number;
      try {
        const family = l.upstreamHost.includes(":") ? AF_INET6 : AF_INET;
        upstream = upstreamSocket(family, SOCK_STREAM);
      } catch {
        setLingerZero(client);
        close(client);
        continue;
      }
      setsockoptInt(client, IPPROTO_TCP, TCP_NODELAY, 1);
      const c: Conn = {
        client,
        upstream,
        connecting: true,
        up: newHalf(client, upstream),
        down: newHalf(upstream, client),
        closed: false,
      };
      conns.add(c);
      const r = connectRaw(upstream, { host: l.upstreamHost, port: l.upstreamPort });
      watch(client, { kind: "conn", conn: c }, 0);
      if (r === 0) {
        watch(upstream, { kind: "conn", conn: c }, 0);
        connected(c);
      } else if (r === -E.EINPROGRESS) {
        watch(upstream, { kind: "conn", conn: c }, EPOLLOUT);
      } else {
        // Refused right away (nothing listens yet): tell the client at once with a reset.
        entries[upstream] = { kind: "conn", conn: c };
        closeConn(c, true);
      }
    }
  };

  const onConn = (c: Conn, fd: number, ev: number) => {
    if (c.connecting) {
      if (fd !== c.upstream) {
        // The client hung up or errored before the upstream answered.
        if (ev & EPOLLERR) return closeConn(c, true);
        if (ev & EPOLLHUP) {
          hungUp[fd] = true;
          want(fd, 0);
        }
        return;
      }
      const err = getsockoptInt(c.upstream, SOL_SOCKET, SO_ERROR);
      if (err !== 0) return closeConn(c, true);
      return connected(c);
    }
    if (ev & EPOLLHUP) hungUp[fd] = true;
    // Only the directions this event can move: readable feeds the half this fd is the source
    // of, writable drains the half it is the destination of (an idle half would only EAGAIN).
    const all = (ev & (EPOLLERR | EPOLLHUP)) !== 0;
    const isClient = fd === c.client;
    const readable = all || (ev & EPOLLIN) !== 0;
    const writable = all || (ev & EPOLLOUT) !== 0;
    const upNeeded = isClient ? readable : writable;
    const downNeeded = isClient ? writable : readable;
    if ((upNeeded && !pump(c.up)) || (downNeeded && !pump(c.down))) return closeConn(c, true);
    if (c.closed) return;
    if ((ev & EPOLLERR) && !(c.up.done && c.down.done)) return closeConn(c, true);
    update(c);
  };

  const onUdpHost = (host: UdpHost) => {
    for (let i = 0; i < 256; i++) {
      from.fill(0);
      const n = recvfromRaw(host.fd, dgram, from);
      if (n < 0) return;
      const family = from[0] | (from[1] << 8);
      const addr = from.slice(0, family === AF_INET6 ? 28 : 16);
      const key = Array.from(addr).join(",");
      let flow = host.flows.get(key);
      if (!flow) {
        const up = host.listener.upstreamHost.includes(":") ? AF_INET6 : AF_INET;
        let fd: number;
        try {
          fd = upstreamSocket(up, SOCK_DGRAM);
        } catch {
          continue;
        }
        if (
          connectRaw(fd, {
            host: host.listener.upstreamHost,
            port: host.listener.upstreamPort,
          }) < 0
        ) {
          close(fd);
          continue;
        }
        flow = { key, fd, host, addr, last: 0 };
        host.flows.set(key, flow);
        watch(fd, { kind: "flow", flow }, EPOLLIN);
      }
      flow.last = Date.now();
      // A refused or full upstream drops the datagram, as UDP would.
      sendtoRaw(flow.fd, dgram.subarray(0, n), null);
    }
  };

  const onFlow = (flow: Flow) => {
    for (let i = 0; i < 256; i++) {
      const n = recvfromRaw(flow.fd, dgram, null);
      if (n === -E.EAGAIN) return;
      // ECONNREFUSED: an earlier datagram found no listener; the flow itself stays usable.
      if (n < 0) continue;
      flow.last = Date.now();
      sendtoRaw(flow.host.fd, dgram.subarray(0, n), flow.addr);
    }
  };

  const dropFlow = (flow: Flow) => {
    flow.host.flows.delete(flow.key);
    unwatch(flow.fd);
    close(flow.fd);
  };

  let lastSweep = Date.now();
  const sweep = () => {
    const now = Date.now();
    lastSweep = now;
    for (const host of udpHosts) {
      for (const flow of [...host.flows.values()]) {
        if (now - flow.last >= config.udpIdleMs) dropFlow(flow);
      }
    }
  };
  const sweepEvery = Math.max(10, Math.min(1000, Math.floor(config.udpIdleMs / 2)));

  try {
    for (;;) {
      const anyFlows = udpHosts.some((h) => h.flows.size > 0);
      const n = epollWaitRaw(epfd, events, anyFlows ? sweepEvery : -1);
      if (n < 0) {
        if (n === -E.EINTR) continue;
        throw new Error(`epoll_wait failed: errno ${-n}`);
      }
      for (let i = 0; i < n; i++) {
        const [ev, fd] = epollEventAt(eventView, i);
        const entry = entries[fd];
        if (!entry) continue;
        switch (entry.kind) {
          case "wake":
            eventfdDrain(fd);
            return;
          case "listener":
            accept(entry.listener);
            break;
          case "conn":
            if (!entry.conn.closed) onConn(entry.conn, fd, ev);
            break;
          case "udp-host":
            onUdpHost(entry.host);
            break;
          case "flow":
            onFlow(entry.flow);
            break;
        }
      }
      if (anyFlows && Date.now() - lastSweep >= sweepEvery) sweep();
    }
  } finally {
    for (const c of [...conns]) closeConn(c, false);
    for (const host of udpHosts) for (const flow of [...host.flows.values()]) dropFlow(flow);
    close(epfd);
  }
}
