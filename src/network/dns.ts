/**
 * Container names on user networks, served by Debian's `aardvark-dns` driven exactly as netavark
 * drives it: a config directory with one file per network (first line: the addresses to listen
 * on, the bridge's gateway; then one line per container: `ID IPV4 IPV6 NAMES [DNS]`), started as
 * `aardvark-dns --config DIR -p 53 run` (it forks, writes `aardvark.pid` and answers once the
 * parent exits), told of every change with SIGHUP, and ending by itself when the last file is
 * gone. It listens only on tsbox bridges' gateway addresses (never an open resolver on the
 * host's interfaces) and forwards other names to a container's `--dns` servers or the host's.
 *
 * The files and the signal are written under the host network lock, from the state database as
 * it is then, so concurrent changes never leave a stale file behind.
 *
 * @module
 */
import { killPid } from "../../ffi/process.ts";
import { TsboxError } from "../errors.ts";

/** The config directory (per boot, host-wide like the bridges; file names are bridge names). */
export const DNS_DIR = "/run/tsbox/aardvark-dns";

/**
 * The config directory in use: {@link DNS_DIR}, or `TSBOX_DNS_DIR` (tests: an aardvark-dns of
 * their own, which they may kill, serving only their networks).
 */
export function dnsDir(): string {
  return Deno.env.get("TSBOX_DNS_DIR") || DNS_DIR;
}

/** Where Debian, Fedora and others install it (netavark's search path), then $PATH. */
const CANDIDATES = [
  "/usr/lib/podman/aardvark-dns",
  "/usr/libexec/podman/aardvark-dns",
  "/usr/local/libexec/podman/aardvark-dns",
  "/usr/local/lib/podman/aardvark-dns",
];

/** One container's record in a network's file. */
export interface DnsEntry {
  /** The container id. */
  readonly id: string;
  readonly ipv4: string;
  /** Its IPv6 address (networks made with `--ipv6`): names resolve to it too (AAAA). */
  readonly ipv6?: string;
  /** Name, aliases, short id. */
  readonly names: readonly string[];
  /** `--dns` servers its other queries are forwarded to (the host's when empty). */
  readonly dns?: readonly string[];
  /** Known by address only (no names served): written even with no names. */
  readonly unnamed?: boolean;
}

/** The aardvark-dns binary, or undefined when it is not installed (names are then not served). */
export function aardvarkBinary(): string | undefined {
  const env = Deno.env.get("TSBOX_AARDVARK_DNS");
  const paths = env
    ? [env]
    : [...CANDIDATES, ...(Deno.env.get("PATH") ?? "").split(":").map((d) => `${d}/aardvark-dns`)];
  for (const p of paths) {
    try {
      if (Deno.statSync(p).isFile) return p;
    } catch { /* next */ }
  }
  return undefined;
}

const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** An address aardvark-dns parses (it refuses the whole file over one it cannot). */
const PLAIN_IP = /^(\d{1,3}(\.\d{1,3}){3}|[0-9a-fA-F:]*:[0-9a-fA-F:.]*)$/;

/**
 * A network's file: the gateway (where it listens) and the network's upstream resolvers, then one
 * line per container (aardvark's format: id, IPv4, IPv6 or empty, names, its own upstreams). `upstreams` are the host's resolvers as
 * tsbox reads them, loopback ones included: aardvark-dns runs in the host's namespace and
 * reaches them, which containers could not. An entry without names (`unnamed`) is known by its
 * address only: it gets forwarding and no container names (docker's default bridge).
 */
export function configText(
  gateway: string,
  entries: readonly DnsEntry[],
  upstreams: readonly string[] = [],
): string {
  const servers = upstreams.filter((u) => PLAIN_IP.test(u));
  const lines = [servers.length ? `${gateway} ${servers.join(",")}` : gateway];
  for (const e of entries) {
    // A name aardvark would misparse (blank, comma) is left out rather than break the file.
    const names = e.names.filter((n) => NAME.test(n));
    if (names.length === 0 && !e.unnamed) continue;
    const dns = e.dns?.length ? ` ${e.dns.filter((d) => PLAIN_IP.test(d)).join(",")}` : "";
    lines.push(`${e.id} ${e.ipv4} ${e.ipv6 ?? ""} ${names.join(",")}${dns}`);
  }
  return lines.join("\n") + "\n";
}

function runningPid(): number | undefined {
  try {
    const pid = Number(Deno.readTextFileSync(`${dnsDir()}/aardvark.pid`).trim());
    if (!Number.isInteger(pid) || pid <= 0) return undefined;
    const comm = Deno.readTextFileSync(`/proc/${pid}/comm`).trim();
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return comm === "aardvark-dns" && state !== "Z" ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Whether `bridge` has a file (aardvark-dns serves it). */
export function hasNetworkFile(bridge: string): boolean {
  try {
    return Deno.statSync(`${dnsDir()}/${bridge}`).isFile;
  } catch {
    return false;
  }
}

function hasNetworkFiles(): boolean {
  try {
    for (const e of Deno.readDirSync(dnsDir())) if (e.name !== "aardvark.pid") return true;
  } catch { /* no directory */ }
  return false;
}

/** One network's DNS as {@link syncNetworksDns} writes it. */
export interface NetworkDns {
  /** The bridge: the file's name (aardvark's network name). */
  readonly bridge: string;
  /** Where aardvark-dns listens for this network. */
  readonly gateway: string;
  /** Its containers; none removes the file. */
  readonly entries: readonly DnsEntry[];
  /** The network's upstream resolvers. */
  readonly upstreams?: readonly string[];
}

/**
 * Writes (or, with no entries, removes) `bridge`'s file and tells aardvark-dns: SIGHUP when it
 * runs, a start when it does not and a file exists. Call under the host network lock. Returns
 * false when aardvark-dns is not installed.
 */
export function syncNetworkDns(
  bridge: string,
  gateway: string,
  entries: readonly DnsEntry[],
  upstreams: readonly string[] = [],
): boolean {
  return syncNetworksDns([{ bridge, gateway, entries, upstreams }]);
}

/**
 * {@link syncNetworkDns} for several networks at once, with one signal: a container on several
 * networks is listed in each network's file under its one id, which is how aardvark-dns knows it
 * as a member of all of them (its lookups then answer names of every network it is on, from
 * whichever of its addresses it asks). Call under the host network lock.
 *
 * Returns once aardvark-dns serves every network written (see {@link awaitServed}). With
 * `require` (a container is about to use these servers), a network it does not come to serve
 * throws {@link DnsServerError} rather than release a container whose resolver is a closed port;
 * without it (a container leaving, a rename) the change goes on after the wait.
 */
export function syncNetworksDns(
  networks: readonly NetworkDns[],
  opts: { readonly require?: boolean } = {},
): boolean {
  const binary = aardvarkBinary();
  if (!binary) return false;
  if (networks.length === 0) return true;
  const dir = dnsDir();
  Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const written: Served[] = [];
  for (const n of networks) {
    const file = `${dir}/${n.bridge}`;
    if (n.entries.length > 0) {
      const temp = `${file}.tmp`;
      Deno.writeTextFileSync(temp, configText(n.gateway, n.entries, n.upstreams), {
        mode: 0o600,
      });
      // Read time 0: aardvark-dns's read of it is then seen (relatime updates an atime older
      // than the mtime), see awaitServed.
      Deno.utimeSync(temp, 0, new Date());
      Deno.renameSync(temp, file); // aardvark never reads half a file
      written.push({ bridge: n.bridge, file, gateway: n.gateway });
    } else {
      try {
        Deno.removeSync(file);
      } catch (err) {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
      }
    }
  }
  const pid = runningPid();
  if (pid !== undefined) {
    // With no file left it stops by itself (and removes its pid file).
    killPid(pid, 1);
  } else if (hasNetworkFiles()) {
    startAardvark(binary);
  }
  // Waited for even when nothing requires it: a signal to an aardvark-dns that has not yet set
  // up its SIGHUP handler (it does before it binds) ends it.
  const starts = { left: MAX_STARTS };
  for (const w of written) {
    const missing = awaitServed(binary, w, starts);
    if (missing !== undefined && opts.require) {
      throw new DnsServerError(w.bridge, w.gateway, missing);
    }
  }
  return true;
}

/** aardvark-dns did not come to serve a network: its containers would meet a closed port. */
export class DnsServerError extends TsboxError {
  constructor(readonly bridge: string, readonly gateway: string, reason: string) {
    super(
      `DNS server of network bridge ${bridge} not ready: aardvark-dns (config ${dnsDir()}) ` +
        `${reason}; names and lookups on ${gateway}:53 would fail`,
    );
    this.name = "DnsServerError";
  }
}

/** A network file and the address aardvark-dns listens on for it. */
interface Served {
  readonly bridge: string;
  readonly file: string;
  readonly gateway: string;
}

/**
 * How long aardvark-dns is waited for to serve a network after a start or a SIGHUP (it takes
 * milliseconds; seconds only on a loaded host) before {@link DnsServerError}.
 */
const SERVE_WAIT_MS = 10_000;

/** Starts of aardvark-dns within one sync (it ended while signalled, or failed at start). */
const MAX_STARTS = 3;

/**
 * Waits until aardvark-dns serves `w`'s network as written, after a start or a SIGHUP. Version
 * 1.4 tells its parent it is ready before it has read any file or bound any socket (the parent
 * returns at once), and answers SIGHUP by closing every server, reading every file and binding
 * again; a container released meanwhile meets a closed port (ICMP port unreachable: its first
 * lookup fails with ECONNREFUSED, seen under load). The network is served once the file has been
 * read (its atime moves past the 0 it was written with) and the running aardvark-dns itself
 * holds a UDP socket on the gateway's port 53 (/proc/net/udp of this namespace and its fds: a
 * socket of another process on that address does not count). An aardvark-dns that ends
 * meanwhile (signalled while it was stopping as its last file had gone, or failing) is started
 * again: a new one reads every file. Returns why the network is not served when the wait ends
 * without it, undefined when it is (or the file is gone: nothing to serve).
 */
function awaitServed(binary: string, w: Served, starts: { left: number }): string | undefined {
  const end = Date.now() + SERVE_WAIT_MS;
  const wait = new Int32Array(new SharedArrayBuffer(4));
  // Where reads never update atime (noatime), the socket is all there is to go by.
  let read = !atimeUpdates(w.file);
  let pid: number | undefined;
  for (;;) {
    pid = runningPid();
    if (pid === undefined && starts.left > 0 && hasNetworkFiles()) {
      starts.left--;
      startAardvark(binary);
      continue;
    }
    try {
      read ||= (Deno.statSync(w.file).atime?.getTime() ?? 0) > 0;
    } catch {
      return undefined; // the file is gone (another change): nothing to wait for
    }
    if (pid !== undefined && read && holdsUdpSocket(pid, w.gateway)) return undefined;
    if (Date.now() >= end) break;
    Atomics.wait(wait, 0, 0, 5);
  }
  const secs = `${SERVE_WAIT_MS / 1000} s`;
  if (pid === undefined) return `is not running (it ended at start ${MAX_STARTS} times)`;
  if (!read) return `(pid ${pid}) did not read ${w.file} within ${secs}`;
  return `(pid ${pid}) does not listen on ${w.gateway}:53 after ${secs}`;
}

/** Whether process `pid` holds a UDP socket bound to `ip` port 53 (this network namespace). */
function holdsUdpSocket(pid: number, ip: string): boolean {
  const local = udpSocketText(ip);
  if (local === undefined) return true; // not an IPv4 address: nothing to look for
  const inodes = new Set<string>();
  try {
    for (const line of Deno.readTextFileSync("/proc/net/udp").split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[1] === local && f[9]) inodes.add(`socket:[${f[9]}]`);
    }
    if (inodes.size === 0) return false;
    for (const fd of Deno.readDirSync(`/proc/${pid}/fd`)) {
      try {
        if (inodes.has(Deno.readLinkSync(`/proc/${pid}/fd/${fd.name}`))) return true;
      } catch { /* closed meanwhile */ }
    }
  } catch { /* it ended */ }
  return false;
}

let atimeKnown: boolean | undefined;

/** Whether reads of `path` update its atime: its mount is not `noatime` (mountinfo). */
function atimeUpdates(path: string): boolean {
  if (atimeKnown !== undefined) return atimeKnown;
  let best = "", noatime = false;
  try {
    for (const line of Deno.readTextFileSync("/proc/self/mountinfo").split("\n")) {
      const f = line.split(" ");
      const point = f[4]?.replace(/\\040/g, " ");
      if (point === undefined) continue;
      const under = point === "/" || path === point || path.startsWith(`${point}/`);
      if (under && point.length >= best.length) {
        best = point;
        noatime = (f[5] ?? "").split(",").includes("noatime");
      }
    }
  } catch { /* assume it does */ }
  return atimeKnown = !noatime;
}

/** An IPv4 address and port 53 as /proc/net/udp shows a local socket (`0100A8C0:0035`). */
function udpSocketText(ip: string): string | undefined {
  const parts = ip.split(".").map(Number);
  if (parts.length !== 4 || parts.some((p) => !(p >= 0 && p <= 255))) return undefined;
  const hex = parts.reverse().map((p) => p.toString(16).toUpperCase().padStart(2, "0")).join("");
  return `${hex}:0035`;
}

/**
 * Starts aardvark-dns over every network file. Its parent returns once the forked server has
 * written its pid file, before it serves anything: callers wait with {@link awaitServed}. It
 * keeps no pipe of ours, and a session of its own keeps a foreground run's ctrl-c (its process
 * group's SIGINT) off it.
 */
function startAardvark(binary: string): void {
  const out = new Deno.Command(binary, {
    args: ["--config", dnsDir(), "-p", "53", "run"],
    stdin: "null",
    stdout: "null",
    stderr: "null",
    detached: true,
  }).outputSync();
  if (!out.success) throw new Error(`${binary} failed to start (exit ${out.code})`);
}

/** The running aardvark-dns's PID (from the pid file it writes), or undefined. */
export function aardvarkPid(): number | undefined {
  return runningPid();
}

/**
 * Whether names are due but not served: network files exist and no aardvark-dns runs (it was
 * killed, or crashed). Cheap (a few reads of /proc), no lock: a hint for {@link reviveDns}.
 */
export function dnsDown(): boolean {
  return runningPid() === undefined && hasNetworkFiles() && aardvarkBinary() !== undefined;
}

/**
 * Starts aardvark-dns again when it is down while networks still have files. Call under the host
 * network lock (the check and the start are two steps). Returns true when it started it.
 */
export function reviveDns(): boolean {
  const binary = aardvarkBinary();
  if (!binary || runningPid() !== undefined || !hasNetworkFiles()) return false;
  startAardvark(binary);
  return true;
}
