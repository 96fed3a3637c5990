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

/** The config directory (per boot, host-wide like the bridges; file names are bridge names). */
export const DNS_DIR = "/run/tsbox/aardvark-dns";

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
  /** Name, aliases, short id. */
  readonly names: readonly string[];
  /** `--dns` servers its other queries are forwarded to (the host's when empty). */
  readonly dns?: readonly string[];
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

/** A network's file: gateway, then one line per container (aardvark's format, IPv6 empty). */
export function configText(gateway: string, entries: readonly DnsEntry[]): string {
  const lines = [gateway];
  for (const e of entries) {
    // A name aardvark would misparse (blank, comma) is left out rather than break the file.
    const names = e.names.filter((n) => NAME.test(n));
    if (names.length === 0) continue;
    const dns = e.dns?.length ? ` ${e.dns.join(",")}` : "";
    lines.push(`${e.id} ${e.ipv4}  ${names.join(",")}${dns}`);
  }
  return lines.join("\n") + "\n";
}

function runningPid(): number | undefined {
  try {
    const pid = Number(Deno.readTextFileSync(`${DNS_DIR}/aardvark.pid`).trim());
    if (!Number.isInteger(pid) || pid <= 0) return undefined;
    const comm = Deno.readTextFileSync(`/proc/${pid}/comm`).trim();
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return comm === "aardvark-dns" && state !== "Z" ? pid : undefined;
  } catch {
    return undefined;
  }
}

function hasNetworkFiles(): boolean {
  try {
    for (const e of Deno.readDirSync(DNS_DIR)) if (e.name !== "aardvark.pid") return true;
  } catch { /* no directory */ }
  return false;
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
): boolean {
  const binary = aardvarkBinary();
  if (!binary) return false;
  Deno.mkdirSync(DNS_DIR, { recursive: true, mode: 0o700 });
  const file = `${DNS_DIR}/${bridge}`;
  if (entries.length > 0) {
    const temp = `${file}.tmp`;
    Deno.writeTextFileSync(temp, configText(gateway, entries), { mode: 0o600 });
    Deno.renameSync(temp, file); // aardvark never reads half a file
  } else {
    try {
      Deno.removeSync(file);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
  }
  const pid = runningPid();
  if (pid !== undefined) {
    // With no file left it stops by itself (and removes its pid file).
    killPid(pid, 1);
  } else if (hasNetworkFiles()) {
    // The parent returns once the forked server is ready; it keeps no pipe of ours, and a
    // session of its own keeps a foreground run's ctrl-c (its process group's SIGINT) off it.
    const out = new Deno.Command(binary, {
      args: ["--config", DNS_DIR, "-p", "53", "run"],
      stdin: "null",
      stdout: "null",
      stderr: "null",
      detached: true,
    }).outputSync();
    if (!out.success) throw new Error(`${binary} failed to start (exit ${out.code})`);
  }
  return true;
}
