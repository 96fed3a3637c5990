/**
 * Port publishing in a container's life: the check `run` makes before anything exists, the
 * proxy the supervisor runs around each start of PID 1, and the bindings in effect, kept in the
 * state database (table port_bindings) for `port`, `ps` and `inspect`.
 *
 * @module
 */
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

/**
 * The published ports of one run of a container: host sockets bound now (so a taken port fails
 * the start before PID 1 exists), the proxy started once PID 1 sits in its namespaces.
 */
export class PublishedPorts {
  #listeners: HostListener[] | undefined;
  #proxy?: PortProxy;

  private constructor(
    readonly store: Store,
    readonly containerId: string,
    listeners: HostListener[],
  ) {
    this.#listeners = listeners;
  }

  /** Binds the host ports `cfg` asks for; undefined when there is nothing to publish. */
  static open(store: Store, containerId: string, cfg: PortConfig): PublishedPorts | undefined {
    const mappings = mappingsFor(cfg);
    if (mappings.length === 0) return undefined;
    return new PublishedPorts(store, containerId, openListeners(mappings));
  }

  /** The bindings in effect. */
  get bindings(): PortBinding[] {
    return (this.#listeners ?? []).map((l) => l.binding);
  }

  /** Starts the proxy into PID 1's network namespace and records the bindings. */
  async start(pid: number): Promise<void> {
    const listeners = this.#listeners;
    if (!listeners) throw new Error("published ports already closed");
    this.#listeners = undefined; // the proxy owns (and closes) them from here
    this.#proxy = await PortProxy.start({ netns: pid, listeners });
    this.#listeners = listeners;
    saveBindings(this.store, this.containerId, this.bindings);
  }

  /** Stops the proxy (or just closes the sockets when it never started); forgets the bindings. */
  async close(): Promise<void> {
    const proxy = this.#proxy;
    const listeners = this.#listeners;
    this.#proxy = undefined;
    this.#listeners = undefined;
    try {
      if (proxy) await proxy.stop();
      else if (listeners) closeListeners(listeners);
    } finally {
      clearBindings(this.store, this.containerId);
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
