/**
 * A networked container's /etc/resolv.conf and /etc/hosts, as docker writes them: on a user
 * network the resolver is the network's DNS server (aardvark-dns on the gateway address, which
 * answers containers' names and forwards the rest); on the default bridge the host's resolvers
 * (loopback ones left out: they are not reachable from the container) or `--dns`, and where the
 * host has only loopback resolvers, aardvark-dns on the gateway forwarding to them; `/etc/hosts`
 * maps the container's hostname to its address, plus `--add-host` entries. Pure functions.
 *
 * @module
 */

/** What the files are made from. */
export interface EtcInput {
  /** The host's /etc/resolv.conf text. */
  readonly hostResolvConf: string;
  /**
   * The nameservers a container on user networks uses (their gateways, where aardvark-dns
   * answers); absent on the default one.
   */
  readonly embeddedDns?: string | readonly string[];
  readonly dns?: readonly string[];
  readonly dnsSearch?: readonly string[];
  readonly dnsOptions?: readonly string[];
}

const LOOPBACK = /^(127\.|::1$)/;

function field(text: string, key: string): string[][] {
  return text.split("\n").map((l) => l.trim().split(/\s+/)).filter((w) => w[0] === key)
    .map((w) => w.slice(1));
}

/** Every `nameserver` of a resolv.conf text, loopback ones included, in order. */
export function nameservers(resolvConf: string): string[] {
  return field(resolvConf, "nameserver").map((w) => w[0])
    .filter((s): s is string => s !== undefined);
}

/**
 * Whether the host's resolvers are all on loopback (systemd-resolved's 127.0.0.53, a local
 * dnsmasq): a container copying them would reach none, so on the default bridge it asks
 * aardvark-dns on the gateway, which forwards to them from the host's namespace.
 */
export function onlyLoopbackResolvers(resolvConf: string): boolean {
  const all = nameservers(resolvConf);
  return all.length > 0 && all.every((s) => LOOPBACK.test(s));
}

/** The container's resolv.conf. */
export function resolvConfFor(i: EtcInput): string {
  const hostServers = nameservers(i.hostResolvConf).filter((s) => !LOOPBACK.test(s));
  // On a user network the embedded server answers and forwards (to --dns or the host's).
  const servers = i.embeddedDns !== undefined
    ? (typeof i.embeddedDns === "string" ? [i.embeddedDns] : [...i.embeddedDns])
    : i.dns?.length
    ? [...i.dns]
    : hostServers;
  const search = i.dnsSearch?.length
    ? i.dnsSearch.filter((d) => d !== ".")
    : field(i.hostResolvConf, "search").flat();
  const options = i.dnsOptions?.length
    ? [...i.dnsOptions]
    : field(i.hostResolvConf, "options").flat();
  const lines = servers.map((s) => `nameserver ${s}`);
  if (search.length) lines.push(`search ${search.join(" ")}`);
  if (options.length) lines.push(`options ${options.join(" ")}`);
  return lines.join("\n") + "\n";
}

/** The container's /etc/hosts: docker's defaults, extra hosts, then its own addresses. */
export function hostsFor(
  hostname: string,
  address: string | undefined,
  extraHosts: readonly (readonly [string, string])[] = [],
  address6?: string,
): string {
  const lines = [
    "127.0.0.1\tlocalhost",
    "::1\tlocalhost ip6-localhost ip6-loopback",
    "fe00::0\tip6-localnet",
    "ff00::0\tip6-mcastprefix",
    "ff02::1\tip6-allnodes",
    "ff02::2\tip6-allrouters",
    ...extraHosts.map(([name, ip]) => `${ip}\t${name}`),
    address !== undefined ? `${address}\t${hostname}` : `127.0.1.1\t${hostname}`,
    ...(address6 !== undefined ? [`${address6}\t${hostname}`] : []),
  ];
  return lines.join("\n") + "\n";
}
