/**
 * Host sockets for published ports, created in the host's network namespace by the thread that
 * calls {@link openListeners} (the supervisor's main thread, which never leaves it).
 *
 * @module
 */
import { SyscallError } from "../../ffi/errors.ts";
import {
  AF_INET,
  AF_INET6,
  bind,
  close,
  E,
  getsockname,
  IPPROTO_IPV6,
  IPV6_V6ONLY,
  listen,
  setsockoptInt,
  SO_REUSEADDR,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOCK_NONBLOCK,
  SOCK_STREAM,
  socket,
  SOL_SOCKET,
} from "../../ffi/net.ts";
import { TsboxError } from "../errors.ts";
import type { PortBinding, PortMapping } from "./ports.ts";

/** A host port that cannot be bound; the message names the address and port like docker's. */
export class PortInUseError extends TsboxError {
  constructor(readonly hostIp: string, readonly hostPort: number, readonly reason: string) {
    const addr = hostIp.includes(":") ? `[${hostIp}]` : hostIp;
    super(`Bind for ${addr}:${hostPort} failed: ${reason}`);
    this.name = "PortInUseError";
  }
}

/** A bound host socket and the binding it serves. */
export interface HostListener {
  readonly binding: PortBinding;
  /** Nonblocking, close-on-exec; listening for tcp. */
  readonly fd: number;
}

const BACKLOG = 4096;

function openOne(ip: string, port: number, proto: "tcp" | "udp"): number {
  const v6 = ip.includes(":");
  const fd = socket(
    v6 ? AF_INET6 : AF_INET,
    (proto === "tcp" ? SOCK_STREAM : SOCK_DGRAM) | SOCK_NONBLOCK | SOCK_CLOEXEC,
  );
  try {
    // A restarted container must get its port back while old connections sit in TIME_WAIT;
    // on Linux this does not allow two live listeners on one port.
    if (proto === "tcp") setsockoptInt(fd, SOL_SOCKET, SO_REUSEADDR, 1);
    // [::] next to 0.0.0.0 on the same port: each family gets its own socket.
    if (v6) setsockoptInt(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1);
    bind(fd, { host: ip, port });
    if (proto === "tcp") listen(fd, BACKLOG);
    return fd;
  } catch (err) {
    close(fd);
    throw err;
  }
}

function reasonOf(err: unknown): string {
  if (err instanceof SyscallError) {
    if (err.errno === E.EADDRINUSE) return "port is already allocated";
    if (err.errno === E.EADDRNOTAVAIL) return "cannot assign requested address";
    return err.message;
  }
  return String(err);
}

let ipv6: boolean | undefined;
/** True when the host can bind IPv6 sockets (a kernel booted with ipv6.disable=1 cannot). */
function hostHasIPv6(): boolean {
  if (ipv6 !== undefined) return ipv6;
  try {
    close(openOne("::1", 0, "udp"));
    ipv6 = true;
  } catch {
    ipv6 = false;
  }
  return ipv6;
}

/** Binds one mapping: every address it names, the same port on each. */
function openMapping(m: PortMapping): HostListener[] {
  const ips = m.hostIp !== "" ? [m.hostIp] : hostHasIPv6() ? ["0.0.0.0", "::"] : ["0.0.0.0"];
  const ephemeral = m.hostPortStart === 0;
  // An ephemeral port free on 0.0.0.0 can be taken on [::]: retry with a new one a few times.
  const attempts = ephemeral ? 8 : m.hostPortEnd - m.hostPortStart + 1;
  let lastError: PortInUseError | undefined;
  for (let a = 0; a < attempts; a++) {
    const wanted = ephemeral ? 0 : m.hostPortStart + a;
    const got: HostListener[] = [];
    try {
      let port = wanted;
      for (const ip of ips) {
        let fd: number;
        try {
          fd = openOne(ip, port, m.proto);
        } catch (err) {
          throw new PortInUseError(ip, port, reasonOf(err));
        }
        port = getsockname(fd).port;
        got.push({
          fd,
          binding: { hostIp: ip, hostPort: port, containerPort: m.containerPort, proto: m.proto },
        });
      }
      return got;
    } catch (err) {
      for (const l of got) close(l.fd);
      if (!(err instanceof PortInUseError)) throw err;
      lastError = err;
    }
  }
  if (!ephemeral && m.hostPortEnd > m.hostPortStart) {
    throw new PortInUseError(
      lastError?.hostIp ?? (m.hostIp || "0.0.0.0"),
      lastError?.hostPort ?? m.hostPortStart,
      `no free port in ${m.hostPortStart}-${m.hostPortEnd}`,
    );
  }
  throw lastError!;
}

/**
 * Binds every mapping's host sockets, all or nothing: on failure every socket made so far is
 * closed and a {@link PortInUseError} names the first address and port that could not be had.
 */
export function openListeners(mappings: readonly PortMapping[]): HostListener[] {
  const all: HostListener[] = [];
  try {
    for (const m of mappings) all.push(...openMapping(m));
    return all;
  } catch (err) {
    closeListeners(all);
    throw err;
  }
}

/** Closes host sockets (the ports are free again right away). */
export function closeListeners(listeners: readonly HostListener[]): void {
  for (const l of listeners) close(l.fd);
}

/** The mappings that reproduce `bindings` exactly (the same ports on the next start). */
export function mappingsOf(bindings: readonly PortBinding[]): PortMapping[] {
  return bindings.map((b) => ({
    hostIp: b.hostIp,
    hostPortStart: b.hostPort,
    hostPortEnd: b.hostPort,
    containerPort: b.containerPort,
    proto: b.proto,
  }));
}
