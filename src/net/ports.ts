/**
 * Port publishing as docker spells it: parsing `-p`/`--publish`, `--expose` and `-P`, and
 * showing bindings the three ways docker does (`port`, the PORTS column of `ps`, and
 * `NetworkSettings.Ports` of `inspect`).
 *
 * @module
 */
import { UsageError } from "../errors.ts";

/** Transport protocol of a published port. */
export type Proto = "tcp" | "udp";

/**
 * One requested publication, before any socket exists. Host ports: `0..0` is an ephemeral port
 * chosen by the kernel, `n..n` exactly that port, `a..b` (with a single container port) the
 * first free port of the range, as docker does for `-p 8000-8010:80`.
 */
export interface PortMapping {
  /** Host address; "" means every address (0.0.0.0, and [::] where the host has IPv6). */
  readonly hostIp: string;
  readonly hostPortStart: number;
  readonly hostPortEnd: number;
  readonly containerPort: number;
  readonly proto: Proto;
}

/** A publication in effect: a concrete host address and port. */
export interface PortBinding {
  /** "0.0.0.0", "::", "127.0.0.1", ... (IPv6 without brackets). */
  readonly hostIp: string;
  readonly hostPort: number;
  readonly containerPort: number;
  readonly proto: Proto;
}

/** A container port with its protocol, the key docker uses: "80/tcp". */
export type PortKey = `${number}/${Proto}`;

interface Range {
  start: number;
  end: number;
}

function parseProto(text: string, spec: string): Proto {
  const p = text.toLowerCase();
  if (p === "tcp" || p === "udp") return p;
  if (p === "sctp") throw new UsageError(`sctp ports are not supported: ${spec}`);
  throw new UsageError(`invalid proto: ${text}`);
}

function parseRange(text: string, what: string, spec: string, allowZero: boolean): Range {
  const m = /^([0-9]+)(?:-([0-9]+))?$/.exec(text);
  if (!m) throw new UsageError(`invalid ${what}: ${text} (in ${spec})`);
  const start = Number(m[1]);
  const end = m[2] === undefined ? start : Number(m[2]);
  const min = allowZero && m[2] === undefined ? 0 : 1;
  if (start < min || start > 65535 || end < min || end > 65535) {
    throw new UsageError(`invalid ${what}: ${text} (in ${spec})`);
  }
  if (end < start) throw new UsageError(`invalid range specified for ${what}: ${text}`);
  return { start, end };
}

function isIPv4(ip: string): boolean {
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(ip);
  return v4 !== null && v4.slice(1).every((o) => Number(o) <= 255);
}

/** An IPv6 address as Go's net.ParseIP takes it: 8 groups, one `::`, an IPv4 tail allowed. */
function isIPv6(ip: string): boolean {
  const halves = ip.split("::");
  if (halves.length > 2) return false;
  const groups = halves.map((h) => (h === "" ? [] : h.split(":")));
  const all = groups.flat();
  let count = all.length;
  // A dotted IPv4 tail counts as two groups.
  if (all.length > 0 && all[all.length - 1].includes(".")) {
    if (!isIPv4(all[all.length - 1])) return false;
    all.pop();
    count++;
  }
  if (!all.every((g) => /^[0-9a-fA-F]{1,4}$/.test(g))) return false;
  return halves.length === 2 ? count <= 7 : count === 8;
}

function parseHostIp(text: string, spec: string): string {
  let ip = text;
  if (ip.startsWith("[") && ip.endsWith("]")) ip = ip.slice(1, -1);
  if (isIPv4(ip)) return ip;
  if (isIPv6(ip)) return ip.toLowerCase();
  throw new UsageError(`invalid IP address: ${ip} (in -p ${spec})`);
}

/**
 * Splits `ip:host:container`, keeping a bracketed IPv6 address whole. An unbracketed IPv6
 * address is taken when there are more than three fields, as docker does.
 */
function splitFields(rest: string, spec: string): [string, string, string] {
  if (rest.startsWith("[")) {
    const close = rest.indexOf("]");
    if (close < 0 || rest[close + 1] !== ":") throw new UsageError(`invalid port format: ${spec}`);
    const tail = rest.slice(close + 2).split(":");
    if (tail.length !== 2) throw new UsageError(`invalid port format: ${spec}`);
    return [rest.slice(0, close + 1), tail[0], tail[1]];
  }
  const parts = rest.split(":");
  if (parts.length === 1) return ["", "", parts[0]];
  if (parts.length === 2) return ["", parts[0], parts[1]];
  if (parts.length === 3) return [parts[0], parts[1], parts[2]];
  // Unbracketed IPv6: the last two fields are the ports.
  return [parts.slice(0, -2).join(":"), parts.at(-2)!, parts.at(-1)!];
}

/**
 * Parses one `-p` value: `80`, `8080:80`, `127.0.0.1:8080:80`, `127.0.0.1::80`, `[::1]:8080:80`,
 * `8080:80/udp`, `8000-8010:8000-8010`, `8000-8010:80`, `8000-8010`.
 */
export function parsePublish(spec: string): PortMapping[] {
  const slash = spec.lastIndexOf("/");
  const hasProto = slash >= 0 && !spec.slice(slash).includes("]");
  const proto = hasProto ? parseProto(spec.slice(slash + 1), spec) : "tcp";
  const rest = hasProto ? spec.slice(0, slash) : spec;
  if (rest === "") throw new UsageError(`no port specified: ${spec}`);
  const [ipText, hostText, containerText] = splitFields(rest, spec);
  const hostIp = ipText === "" ? "" : parseHostIp(ipText, spec);
  if (containerText === "") throw new UsageError(`no port specified: ${spec}`);
  const container = parseRange(containerText, "containerPort", spec, false);
  const host = hostText === ""
    ? { start: 0, end: 0 }
    : parseRange(hostText, "hostPort", spec, true);
  const cLen = container.end - container.start;
  const hLen = host.end - host.start;
  const out: PortMapping[] = [];
  if (host.start === 0) {
    for (let p = container.start; p <= container.end; p++) {
      out.push({ hostIp, hostPortStart: 0, hostPortEnd: 0, containerPort: p, proto });
    }
  } else if (cLen === 0) {
    out.push({
      hostIp,
      hostPortStart: host.start,
      hostPortEnd: host.end,
      containerPort: container.start,
      proto,
    });
  } else if (cLen === hLen) {
    for (let i = 0; i <= cLen; i++) {
      out.push({
        hostIp,
        hostPortStart: host.start + i,
        hostPortEnd: host.start + i,
        containerPort: container.start + i,
        proto,
      });
    }
  } else {
    throw new UsageError(
      `invalid ranges specified for container and host Ports: ${containerText} and ${hostText}`,
    );
  }
  return out;
}

/** Parses one `--expose` value (`80`, `80/udp`, `8000-8010/tcp`) into port keys. */
export function parseExpose(spec: string): PortKey[] {
  const [portText, protoText, ...extra] = spec.split("/");
  if (extra.length > 0) throw new UsageError(`invalid port format for --expose: ${spec}`);
  const proto = protoText === undefined ? "tcp" : parseProto(protoText, spec);
  const r = parseRange(portText, "port", spec, false);
  const out: PortKey[] = [];
  for (let p = r.start; p <= r.end; p++) out.push(`${p}/${proto}`);
  return out;
}

/** Splits a port key ("80/tcp", or "80" which docker reads as tcp). */
export function splitPortKey(key: string): { port: number; proto: Proto } {
  const [portText, protoText] = key.split("/");
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new UsageError(`invalid exposed port: ${key}`);
  }
  return { port, proto: protoText === undefined ? "tcp" : parseProto(protoText, key) };
}

/** What `run` asked for, in docker's terms. */
export interface PublishFlags {
  /** `-p`/`--publish` values. */
  readonly publish?: readonly string[];
  /** `-P`/`--publish-all`. */
  readonly publishAll?: boolean;
  /** `--expose` values. */
  readonly expose?: readonly string[];
}

/** The ports a container exposes and the publications it asks for. */
export interface PortPlan {
  /** Every exposed port (image EXPOSE, --expose, and each published one), sorted. */
  readonly exposed: readonly PortKey[];
  readonly mappings: readonly PortMapping[];
}

function comparePortKeys(a: string, b: string): number {
  const pa = splitPortKey(a), pb = splitPortKey(b);
  return pa.port - pb.port || pa.proto.localeCompare(pb.proto);
}

/**
 * Combines `-p`, `-P` and `--expose` with the image's `ExposedPorts`: `-P` publishes each
 * exposed port that no `-p` names on an ephemeral host port of every address.
 */
export function planPorts(
  flags: PublishFlags,
  imageExposed: Readonly<Record<string, unknown>> | undefined,
): PortPlan {
  const mappings = (flags.publish ?? []).flatMap(parsePublish);
  const exposed = new Set<PortKey>();
  for (const key of Object.keys(imageExposed ?? {})) {
    const { port, proto } = splitPortKey(key);
    exposed.add(`${port}/${proto}`);
  }
  for (const e of flags.expose ?? []) for (const k of parseExpose(e)) exposed.add(k);
  if (flags.publishAll) {
    const named = new Set(mappings.map((m) => `${m.containerPort}/${m.proto}`));
    for (const key of [...exposed].sort(comparePortKeys)) {
      if (named.has(key)) continue;
      const { port, proto } = splitPortKey(key);
      mappings.push({ hostIp: "", hostPortStart: 0, hostPortEnd: 0, containerPort: port, proto });
    }
  }
  for (const m of mappings) exposed.add(`${m.containerPort}/${m.proto}`);
  return { exposed: [...exposed].sort(comparePortKeys), mappings };
}

function hostAddr(ip: string, port: number | string): string {
  return ip.includes(":") ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/** Lines of `tsbox port CONTAINER [PORT[/PROTO]]`: `80/tcp -> 0.0.0.0:8080`. */
export function portLines(bindings: readonly PortBinding[], filter?: string): string[] {
  let wanted: { port: number; proto: Proto } | undefined;
  if (filter !== undefined) wanted = splitPortKey(filter);
  return sortBindings(bindings)
    .filter((b) => !wanted || (b.containerPort === wanted.port && b.proto === wanted.proto))
    .map((b) =>
      wanted
        ? hostAddr(b.hostIp, b.hostPort)
        : `${b.containerPort}/${b.proto} -> ${hostAddr(b.hostIp, b.hostPort)}`
    );
}

function sortBindings(bindings: readonly PortBinding[]): PortBinding[] {
  return [...bindings].sort((a, b) =>
    a.containerPort - b.containerPort || a.proto.localeCompare(b.proto) ||
    Number(a.hostIp.includes(":")) - Number(b.hostIp.includes(":")) ||
    a.hostIp.localeCompare(b.hostIp) || a.hostPort - b.hostPort
  );
}

/**
 * The PORTS column of `ps`: `0.0.0.0:8080->80/tcp, [::]:8080->80/tcp`, consecutive ports joined
 * into ranges (`0.0.0.0:8000-8002->8000-8002/tcp`) and exposed-only ports as `443/tcp`.
 */
export function formatPortsColumn(
  bindings: readonly PortBinding[],
  exposed: readonly string[] = [],
): string {
  interface Group {
    ip: string;
    proto: Proto;
    h0: number;
    h1: number;
    c0: number;
    c1: number;
  }
  const groups: Group[] = [];
  const sorted = [...bindings].sort((a, b) =>
    Number(a.hostIp.includes(":")) - Number(b.hostIp.includes(":")) ||
    a.hostIp.localeCompare(b.hostIp) || a.proto.localeCompare(b.proto) ||
    a.containerPort - b.containerPort
  );
  for (const b of sorted) {
    const g = groups.at(-1);
    if (
      g && g.ip === b.hostIp && g.proto === b.proto && b.containerPort === g.c1 + 1 &&
      b.hostPort === g.h1 + 1
    ) {
      g.c1++;
      g.h1++;
    } else {
      groups.push({
        ip: b.hostIp,
        proto: b.proto,
        h0: b.hostPort,
        h1: b.hostPort,
        c0: b.containerPort,
        c1: b.containerPort,
      });
    }
  }
  const span = (a: number, b: number) => a === b ? `${a}` : `${a}-${b}`;
  // Docker lists the published ports, then the exposed ones nothing is bound to.
  const published = new Set(bindings.map((b) => `${b.containerPort}/${b.proto}`));
  const parts = groups.map((g) =>
    `${hostAddr(g.ip, span(g.h0, g.h1))}->${span(g.c0, g.c1)}/${g.proto}`
  );
  for (const key of [...exposed].sort(comparePortKeys)) {
    if (!published.has(key)) parts.push(key);
  }
  return parts.join(", ");
}

/** One entry of docker's `NetworkSettings.Ports` lists. */
export interface DockerPortBinding {
  HostIp: string;
  HostPort: string;
}

/**
 * `NetworkSettings.Ports` as docker shows it: every exposed port as a key, with the host
 * bindings, or null when it is not published.
 */
export function networkSettingsPorts(
  bindings: readonly PortBinding[],
  exposed: readonly string[] = [],
): Record<string, DockerPortBinding[] | null> {
  const out: Record<string, DockerPortBinding[] | null> = {};
  for (const key of [...exposed].sort(comparePortKeys)) out[key] = null;
  for (const b of sortBindings(bindings)) {
    const key = `${b.containerPort}/${b.proto}`;
    (out[key] ??= []).push({ HostIp: b.hostIp, HostPort: String(b.hostPort) });
  }
  return out;
}
