/**
 * Port publishing in a container's life: the check `run` makes before anything exists, the
 * proxy the supervisor runs around each start of PID 1, and the bindings in effect, kept in the
 * state database (table port_bindings) for `port`, `ps` and `inspect`.
 *
 * @module
 */
import { lazyImport } from "../lazy.ts";
import type { Store } from "../store/mod.ts";
import { closeListeners, type HostListener, openListeners } from "./listeners.ts";
import {
  parsePublish,
  planPorts,
  type PortBinding,
  type PortMapping,
  type PublishFlags,
} from "./ports.ts";
import { PortProxy } from "./proxy.ts";
import { dnatTarget, splitListeners } from "./dnat.ts";
import type { PortConfig } from "./port_views.ts";

export {
  inspectPorts,
  loadBindings,
  portCommandLines,
  type PortConfig,
  portsColumn,
  type PortView,
} from "./port_views.ts";

/** docker's warning when `-p` meets `--network host`. */
export const HOST_NETWORK_WARNING =
  "WARNING: Published ports are discarded when using host network mode";

/** True when the container has its own network namespace for a proxy to reach into. */
function publishes(cfg: PortConfig): boolean {
  return cfg.network === "private";
}

/** The mappings a container's config asks for (none outside a private network namespace). */
export function mappingsFor(cfg: PortConfig): PortMapping[] {
  if (!publishes(cfg)) return [];
  const exposed = Object.fromEntries((cfg.exposedPorts ?? []).map((k) => [k, {}]));
  return [...planPorts({ publish: cfg.ports, publishAll: cfg.publishAll }, exposed).mappings];
}

/** The exposed ports to record at create time (image EXPOSE, `--expose`, `-p`). */
export function exposedPortsFor(
  flags: PublishFlags,
  imageExposed: Readonly<Record<string, unknown>> | undefined,
): string[] {
  return [...planPorts(flags, imageExposed).exposed];
}

/**
 * Before anything is created: fails with a {@link PortInUseError} naming the first host port
 * of `-p` that cannot be bound (the sockets are closed again), and validates every `-p` form.
 * Returns docker's warning when the ports will be discarded for the host network.
 */
export function checkPublish(publish: readonly string[], network: string): string | undefined {
  const mappings = publish.flatMap(parsePublish);
  if (network === "host") return mappings.length > 0 ? HOST_NETWORK_WARNING : undefined;
  // Every other mode is a namespace of the container's own: private, or a bridge network's.
  if (network === "none" || network.startsWith("container:")) return undefined;
  closeListeners(openListeners(mappings.filter((m) => m.hostPortStart !== 0)));
  return undefined;
}

/** The DNAT rules' module, loaded by containers that publish on a bridge network only. */
function firewallPorts(): Promise<typeof import("../network/firewall_ports.ts")> {
  return lazyImport(new URL("../network/firewall_ports.ts", import.meta.url));
}

/**
 * The published ports of one run of a container: host sockets bound now (so a taken port fails
 * the start before PID 1 exists), then, once PID 1 sits in its namespaces, DNAT rules for the
 * IPv4 ports of a bridged container (dnat.ts) and the userspace proxy for the rest. The sockets
 * of DNAT'ed ports are kept open only to hold the ports: no packet reaches them.
 */
export class PublishedPorts {
  #listeners: HostListener[] | undefined;
  #proxy?: PortProxy;
  /** The DNAT rules are in place (removed in close()). */
  #kernel = false;

  private constructor(
    readonly store: Store,
    readonly containerId: string,
    readonly config: PortConfig,
    listeners: HostListener[],
  ) {
    this.#listeners = listeners;
  }

  /** Binds the host ports `cfg` asks for; undefined when there is nothing to publish. */
  static open(store: Store, containerId: string, cfg: PortConfig): PublishedPorts | undefined {
    const mappings = mappingsFor(cfg);
    if (mappings.length === 0) return undefined;
    return new PublishedPorts(store, containerId, cfg, openListeners(mappings));
  }

  /** The bindings in effect. */
  get bindings(): PortBinding[] {
    return (this.#listeners ?? []).map((l) => l.binding);
  }

  /** Whether the kernel serves (some of) the ports: DNAT rules are in place. */
  get kernel(): boolean {
    return this.#kernel;
  }

  /** Whether the userspace proxy runs (for the ports the kernel does not serve). */
  get proxied(): boolean {
    return this.#proxy !== undefined;
  }

  /**
   * Publishes the ports into PID 1's network namespace (DNAT where it can, the proxy for the
   * rest) and records the bindings.
   */
  async start(pid: number): Promise<void> {
    const listeners = this.#listeners;
    if (!listeners) throw new Error("published ports already closed");
    const target = await dnatTarget(this.store, this.containerId, this.config);
    let { kernel, proxied } = splitListeners(listeners, target);
    if (kernel.length > 0) {
      const { addInnerRules, addPortRules } = await firewallPorts();
      try {
        const bindings = kernel.map((l) => l.binding);
        // The container's side first: its namespace is fresh, nothing to undo if this fails.
        addInnerRules(pid, target!, bindings);
        addPortRules(this.containerId, target!.ip, target!.bridge, bindings);
        this.#kernel = true;
      } catch {
        // nftables refused (a kernel without nat or fib): the proxy serves every port, as
        // it did before DNAT.
        proxied = [...listeners];
        kernel = [];
      }
    }
    if (proxied.length > 0) {
      this.#listeners = kernel; // the proxy owns (and closes) its listeners from here
      try {
        this.#proxy = await PortProxy.start({ netns: pid, listeners: proxied });
      } catch (err) {
        await this.#removeRules();
        closeListeners(kernel);
        this.#listeners = undefined;
        throw err;
      }
    }
    this.#listeners = listeners;
    saveBindings(this.store, this.containerId, this.bindings);
  }

  async #removeRules(): Promise<void> {
    if (!this.#kernel) return;
    this.#kernel = false;
    const { removePortRules } = await firewallPorts();
    removePortRules(this.containerId);
  }

  /**
   * Removes the DNAT rules, stops the proxy, closes the sockets (those the proxy did not
   * own); forgets the bindings.
   */
  async close(): Promise<void> {
    const proxy = this.#proxy;
    const listeners = this.#listeners;
    this.#proxy = undefined;
    this.#listeners = undefined;
    try {
      await this.#removeRules();
    } finally {
      try {
        if (proxy) await proxy.stop();
        if (listeners) {
          const owned = new Set(proxy?.listeners.map((l) => l.fd) ?? []);
          closeListeners(listeners.filter((l) => !owned.has(l.fd)));
        }
      } finally {
        clearBindings(this.store, this.containerId);
      }
    }
  }
}

/** Records the bindings in effect for a container (replacing what it had). */
export function saveBindings(store: Store, id: string, bindings: readonly PortBinding[]): void {
  store.db.transaction(() => {
    store.db.run("DELETE FROM port_bindings WHERE container_id = ?", id);
    for (const b of bindings) {
      store.db.run(
        `INSERT OR REPLACE INTO port_bindings (container_id, host_ip, host_port, container_port,
         proto) VALUES (?, ?, ?, ?, ?)`,
        id,
        b.hostIp,
        b.hostPort,
        b.containerPort,
        b.proto,
      );
    }
  });
}

/** Forgets a container's bindings. */
export function clearBindings(store: Store, id: string): void {
  store.db.run("DELETE FROM port_bindings WHERE container_id = ?", id);
}
