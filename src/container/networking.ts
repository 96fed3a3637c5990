/**
 * The container side of bridge networks, kept apart from the start/stop code: what `create`
 * records (`--network NAME`, `--ip`, `--network-alias`, `--dns*`, `--add-host`) and the two
 * calls a supervisor makes around each run (connect before PID 1 is released, disconnect once it
 * has ended). `private`, `none` and `host` containers without resolver flags load none of it.
 *
 * @module
 */
import { lazyImport } from "../lazy.ts";
import { loadNetworkStack } from "./network_release.ts";
import type { Store } from "../store/mod.ts";
import { isRootless } from "../runtime/rootless.ts";
import { TsboxError, UsageError } from "../errors.ts";
import {
  bridgeNetworkName,
  type EndpointConfig,
  type NetConfig,
  type NetFlags,
  planNetConfig,
} from "../network/endpoints.ts";
import { containerDir } from "./paths.ts";
import {
  type ContainerRecord,
  isActive,
  reconcile,
  requireContainer,
  type RunConfig,
} from "./state.ts";

/** Whether `--network` asks for a user-mode network: by name, or rootless the default. */
function wantsOutbound(mode: string, rootless: boolean): boolean {
  return mode === "pasta" || mode === "slirp4netns" ||
    (rootless && (mode === "default" || mode === "bridge"));
}

/**
 * A user-mode network's settings (slirp4netns or pasta): asked for by name it fails where the
 * helper cannot run; the rootless default gets a one-line warning and the `private` namespace.
 */
async function outboundNetConfig(
  store: Store,
  flags: NetFlags,
  bridged: boolean,
  notice: (line: string) => void,
): Promise<NetConfig | undefined> {
  const mode = flags.network ?? "default";
  if (mode === "pasta" && bridged) {
    // As root pasta drops to `nobody` before it opens /proc/PID/ns/net, which nobody may open.
    throw new UsageError("--network pasta is for rootless containers: as root use bridge");
  }
  const { chooseOutbound } = await lazyImport<typeof import("../network/outbound.ts")>(
    new URL("../network/outbound.ts", import.meta.url),
  );
  const { helper, problem } = chooseOutbound(mode);
  const rest = planNetConfig(store, { ...flags, network: "private" }, bridged, () => {});
  if (helper !== undefined) return { ...(rest ?? { endpoints: [] }), outbound: helper };
  if (mode === "pasta" || mode === "slirp4netns") throw new TsboxError(problem!);
  notice(`WARNING: ${problem}: the container gets a private network namespace with no route out`);
  return rest;
}

/**
 * The network settings to record for a new container, or undefined when it needs none. As
 * root `default`/`bridge` is the default bridge network; rootless it is slirp4netns or pasta
 * (outbound access as the user, outbound.ts), or the `private` namespace where neither runs.
 */
export async function netConfigFrom(
  store: Store,
  flags: NetFlags,
  notice: (line: string) => void = () => {},
): Promise<NetConfig | undefined> {
  const bridged = !isRootless();
  if (wantsOutbound(flags.network ?? "default", !bridged)) {
    return await outboundNetConfig(store, flags, bridged, notice);
  }
  const wanted = bridgeNetworkName(flags.network, bridged) !== undefined ||
    flags.ip !== undefined || flags.ip6 !== undefined ||
    (flags.networkAlias?.length ?? 0) > 0 || (flags.dns?.length ?? 0) > 0 ||
    (flags.dnsSearch?.length ?? 0) > 0 || (flags.dnsOption?.length ?? 0) > 0 ||
    (flags.addHost?.length ?? 0) > 0;
  if (!wanted) return undefined;
  if ((flags.network ?? "default") === "default") {
    const { nftablesAvailable } = await lazyImport<typeof import("../../ffi/nftables.ts")>(
      new URL("../../ffi/nftables.ts", import.meta.url),
    );
    if (!nftablesAvailable()) {
      // The default must not make every run fail on a host without nftables' library: the
      // container gets tsbox's lo-only namespace, and the user is told why.
      notice(
        "WARNING: libnftables.so.1 cannot be loaded: the container gets a private network " +
          "namespace with no route out (Debian: apt-get install libnftables1)",
      );
      return planNetConfig(store, { ...flags, network: "private" }, bridged, () => {});
    }
  }
  const { ensureDefaultNetwork, findNetwork, foreignForwardDrops, forwardDropWarning } =
    await lazyImport<typeof import("../network/mod.ts")>(
      new URL("../network/mod.ts", import.meta.url),
    );
  const net = planNetConfig(store, flags, bridged, ensureDefaultNetwork);
  // Another table's forward chain that drops by policy (docker's) would silently cut the
  // container off: said once here, at run and create, as `info` says it.
  const routed = (net?.endpoints ?? []).map((e) => findNetwork(store, e.networkId))
    .filter((n) => n !== undefined && !n.internal).map((n) => n!.subnet);
  if (routed.length > 0) {
    const drops = foreignForwardDrops();
    if (drops.length > 0) notice(forwardDropWarning(drops, routed));
  }
  return net;
}

/** What a supervisor calls around one run of a container. */
export interface NetworkHooks {
  /** PID 1 sits in its new network namespace and is not released yet. */
  connect(pid: number): Promise<void>;
  /** PID 1 has ended (or the start failed after connect). */
  disconnect(): void;
}

/**
 * The hooks for `c`, or undefined when it has no network settings of tsbox's to apply; `warn`
 * hears of trouble while it runs.
 */
export async function networkHooks(
  store: Store,
  c: ContainerRecord,
  warn?: (message: string) => void,
): Promise<NetworkHooks | undefined> {
  const net = c.config.net;
  if (!net) return undefined;
  const { connectContainer, disconnectContainer } = await loadNetworkStack();
  const subject = {
    id: c.id,
    hostname: c.config.hostname,
    stateDir: containerDir(store.root, c.id),
    net,
  };
  return {
    connect: async (pid) => {
      connectContainer(store, subject, pid, warn);
      if (net.outbound !== undefined) {
        // The route out is up before PID 1 runs its program (undone by disconnect on failure).
        const { startOutbound } = await lazyImport<typeof import("../network/outbound.ts")>(
          new URL("../network/outbound.ts", import.meta.url),
        );
        await startOutbound(subject.stateDir, pid, net.outbound);
      }
    },
    disconnect: () => void disconnectContainer(store, c.id),
  };
}

/** Options of `network connect`. */
export interface ConnectOptions {
  readonly aliases?: readonly string[];
  readonly ip?: string;
  readonly ip6?: string;
}

/** Rewrites the container's recorded endpoints in one transaction. */
function updateEndpoints(
  store: Store,
  id: string,
  change: (endpoints: EndpointConfig[]) => EndpointConfig[],
): void {
  store.db.transaction(() => {
    const row = store.db.get<{ config: string }>("SELECT config FROM containers WHERE id = ?", id);
    if (!row) throw new TsboxError(`No such container: ${id}`);
    const config = JSON.parse(row.config) as RunConfig;
    const net: NetConfig = {
      ...(config.net ?? {}),
      endpoints: change([...(config.net?.endpoints ?? [])]),
    };
    store.db.run(
      "UPDATE containers SET config = ? WHERE id = ?",
      JSON.stringify({ ...config, net }),
      id,
    );
  });
}

/** Whether `c` runs now with the network settings its supervisor applies (see networkHooks). */
function runningWithHooks(c: ContainerRecord): boolean {
  return isActive(c.state) && c.pid !== undefined;
}

/**
 * `network connect [--alias A] [--ip IP] NET CONTAINER`: records the network with the container
 * and, when it runs, attaches it now (its supervisor detaches it at exit with the others).
 */
export async function connectNetwork(
  store: Store,
  netRef: string,
  containerRef: string,
  o: ConnectOptions,
): Promise<void> {
  const c = reconcile(store, requireContainer(store, containerRef));
  const mode = c.config.network;
  if (mode === "host" || mode === "none" || mode.startsWith("container:")) {
    throw new UsageError(
      `container sharing network namespace with another container or host cannot be connected ` +
        `to any other network (network mode ${mode.replace(/^container:.*/, "container")})`,
    );
  }
  const { requireNetwork, DEFAULT_NETWORK } = await lazyImport<typeof import("../network/mod.ts")>(
    new URL("../network/mod.ts", import.meta.url),
  );
  const net = requireNetwork(store, netRef);
  const aliases = [...(o.aliases ?? [])];
  if (
    net.name === DEFAULT_NETWORK &&
    (aliases.length > 0 || o.ip !== undefined || o.ip6 !== undefined)
  ) {
    throw new UsageError(
      "network-scoped aliases and --ip are only supported for user-defined networks",
    );
  }
  const endpoints = c.config.net?.endpoints ?? [];
  if (endpoints.some((e) => e.networkId === net.id)) {
    throw new TsboxError(
      `endpoint with name ${c.name} already exists in network ${net.name}`,
    );
  }
  const running = runningWithHooks(c);
  if (running && !c.config.net) {
    // Its supervisor started it without network settings and would not detach it at exit.
    throw new TsboxError(
      `container ${c.name} runs in a private network namespace: stop it, connect it, start it`,
    );
  }
  if (o.ip6 !== undefined) {
    const { checkIp6Flag } = await lazyImport<typeof import("../network/endpoints.ts")>(
      new URL("../network/endpoints.ts", import.meta.url),
    );
    checkIp6Flag(net, o.ip6);
  }
  const ep: EndpointConfig = {
    networkId: net.id,
    network: net.name,
    aliases,
    ip: o.ip,
    ...(o.ip6 !== undefined ? { ip6: o.ip6 } : {}),
  };
  if (running) {
    const { connectEndpoint, userResolver } = await loadNetworkStack();
    connectEndpoint(store, c.id, c.pid!, ep);
    userResolver(store, containerDir(store.root, c.id), c.config.net!, net);
  }
  try {
    updateEndpoints(store, c.id, (list) => [...list, ep]);
  } catch (err) {
    if (running) {
      const { disconnectEndpoint } = await loadNetworkStack();
      disconnectEndpoint(store, net, c.id);
    }
    throw err;
  }
}

/** `network disconnect [-f] NET CONTAINER`: forgets the network and detaches a running one. */
export async function disconnectNetwork(
  store: Store,
  netRef: string,
  containerRef: string,
  force: boolean,
): Promise<void> {
  const c = reconcile(store, requireContainer(store, containerRef));
  const { findNetwork } = await lazyImport<typeof import("../network/mod.ts")>(
    new URL("../network/mod.ts", import.meta.url),
  );
  const net = findNetwork(store, netRef);
  const endpoints = c.config.net?.endpoints ?? [];
  const ep = endpoints.find((e) => e.networkId === net?.id || e.network === netRef);
  if (!ep) {
    if (force) return;
    throw new TsboxError(`container ${c.id.slice(0, 12)} is not connected to network ${netRef}`);
  }
  if (net && runningWithHooks(c)) {
    const { disconnectEndpoint } = await loadNetworkStack();
    disconnectEndpoint(store, net, c.id);
  }
  updateEndpoints(
    store,
    c.id,
    (list) => list.filter((e) => e !== ep && e.networkId !== ep.networkId),
  );
}
