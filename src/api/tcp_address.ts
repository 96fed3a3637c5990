/**
 * The service's `-H tcp://HOST:PORT` addresses, as dockerd and podman take them, and the rule
 * that guards them: the API is as powerful as root, so without TLS client certificates it is
 * served on loopback only; with `--tlsverify` (and its CA, certificate and key) on any address.
 *
 * @module
 */
import { TsboxError } from "../errors.ts";
import type { TlsFiles } from "./tls_listener.ts";

/** A `-H` value or a TLS setting the service cannot listen with. */
export class ListenAddressError extends TsboxError {
  constructor(message: string) {
    super(message);
    this.name = "ListenAddressError";
  }
}

/** One TCP address to serve on. */
export interface TcpAddress {
  /** The address to bind, an IP literal or a host name (`localhost` is bound as 127.0.0.1). */
  readonly hostname: string;
  readonly port: number;
  /** With TLS: only clients with a certificate signed by `tls.ca` are served. */
  readonly tls?: TlsFiles;
}

/** What `-H` values name: TCP addresses, and a unix socket when one is given. */
export interface HostList {
  readonly tcp: { hostname: string; port: number; uri: string }[];
  readonly unix?: string;
}

/** Parses `-H` values (`tcp://HOST:PORT`, `unix:///path`). */
export function parseHosts(values: readonly string[]): HostList {
  const tcp: HostList["tcp"] = [];
  let unix: string | undefined;
  for (const value of values) {
    if (value.startsWith("unix://")) {
      const path = value.slice("unix://".length);
      if (!path.startsWith("/")) {
        throw new ListenAddressError(`-H ${value}: a unix socket needs an absolute path`);
      }
      if (unix !== undefined && unix !== path) {
        throw new ListenAddressError(`-H ${value}: tsbox serves one unix socket (${unix})`);
      }
      unix = path;
      continue;
    }
    const m = /^tcp:\/\/(\[[0-9a-fA-F:.]+\]|[^:/[\]]*):(\d{1,5})\/?$/.exec(value);
    if (!m) {
      throw new ListenAddressError(
        `-H ${value}: expected tcp://HOST:PORT or unix:///PATH (as dockerd's -H)`,
      );
    }
    const port = Number(m[2]);
    if (port < 1 || port > 65535) throw new ListenAddressError(`-H ${value}: bad port ${m[2]}`);
    let hostname = m[1].replace(/^\[(.*)\]$/, "$1");
    // dockerd's tcp://:2376 means every address.
    if (hostname === "") hostname = "0.0.0.0";
    if (hostname === "localhost") hostname = "127.0.0.1";
    tcp.push({ hostname, port, uri: value });
  }
  return { tcp, unix };
}

/** Whether `hostname` is a loopback address literal (127.0.0.0/8, ::1, IPv4-mapped 127/8). */
export function isLoopback(hostname: string): boolean {
  const v4 = /^(?:::ffff:)?(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/i.exec(hostname);
  if (v4) return v4.slice(1).every((x) => Number(x) <= 255) && v4[1] === "127";
  return /^(0{0,4}:){2,7}0{0,3}1$/.test(hostname) || hostname === "::1";
}

/**
 * The TCP addresses to serve: with `tls` each admits only verified clients; without, each must
 * be a loopback address, else {@link ListenAddressError} names it and what to do.
 */
export function tcpAddresses(hosts: HostList, tls?: TlsFiles): TcpAddress[] {
  return hosts.tcp.map(({ hostname, port, uri }) => {
    if (!tls && !isLoopback(hostname)) {
      throw new ListenAddressError(
        `refusing to serve the Docker API on ${uri} without TLS: anyone who reaches it is root ` +
          `on this host. Listen on a loopback address (tcp://127.0.0.1:${port}), or require ` +
          `client certificates with --tlsverify --tlscacert FILE --tlscert FILE --tlskey FILE`,
      );
    }
    return { hostname, port, tls };
  });
}

/** Reads the PEM files of `--tlscacert`, `--tlscert`, `--tlskey`, naming a missing one. */
export async function readTlsFiles(
  o: { tlscacert?: string; tlscert?: string; tlskey?: string },
): Promise<TlsFiles> {
  const read = async (flag: string, path: string | undefined) => {
    if (!path) {
      throw new ListenAddressError(
        `--tlsverify needs --tlscacert, --tlscert and --tlskey: ${flag} is missing`,
      );
    }
    try {
      return await Deno.readTextFile(path);
    } catch (err) {
      throw new ListenAddressError(`${flag} ${path}: ${(err as Error).message}`);
    }
  };
  return {
    ca: await read("--tlscacert", o.tlscacert),
    cert: await read("--tlscert", o.tlscert),
    key: await read("--tlskey", o.tlskey),
  };
}
