/**
 * The userspace port proxy of one container: host listeners (listeners.ts) served by a worker
 * thread that lives in the container's network namespace (proxy_worker.ts, proxy_loop.ts).
 *
 * @module
 */
import { close, eventfd, eventfdSignal, openNamespace } from "../../ffi/net.ts";
import { namespaceId } from "../../ffi/namespace.ts";
import { TsboxError } from "../errors.ts";
import { closeListeners, type HostListener, openListeners } from "./listeners.ts";
import type { PortBinding, PortMapping } from "./ports.ts";
import type { WorkerReport, WorkerStart } from "./proxy_worker.ts";

/** The proxy could not start or failed while running. */
export class ProxyError extends TsboxError {
  constructor(message: string) {
    super(`port proxy: ${message}`);
    this.name = "ProxyError";
  }
}

/** Options of {@link PortProxy.start}. */
export interface ProxyOptions {
  /** The container's network namespace: a pid (its `/proc/PID/ns/net`) or a path. */
  readonly netns: number | string;
  /**
   * The user namespace owning `netns` when this process may not setns into it (a plain user's
   * container): a pid (its `/proc/PID/ns/user`) or a path. By default, for a pid `netns`, its
   * user namespace when that is not tsbox's own and tsbox is not root.
   */
  readonly userns?: number | string;
  /** Host sockets to serve; the proxy owns them from now on and closes them in stop(). */
  readonly listeners: readonly HostListener[];
  /** Address the container's servers are reached at inside its namespace. */
  readonly upstreamHost?: string;
  /** A UDP flow idle for this long is forgotten (default 90 s, like docker-proxy's). */
  readonly udpIdleMs?: number;
}

const DEFAULT_UDP_IDLE_MS = 90_000;

/**
 * The user namespace a plain user's proxy must go through to reach `netns`: the container's own
 * when it differs from tsbox's and tsbox is not root (root may setns into any namespace).
 */
function ownedUserns(netns: number | string): number | undefined {
  if (typeof netns !== "number" || Deno.uid() === 0) return undefined;
  try {
    return namespaceId(netns, "user") === namespaceId("self", "user") ? undefined : netns;
  } catch {
    return undefined; // gone: opening its netns below fails with the clearer error
  }
}

/** A running proxy. */
export class PortProxy {
  #stopped?: Promise<void>;

  private constructor(
    readonly bindings: readonly PortBinding[],
    readonly listeners: readonly HostListener[],
    readonly worker: Worker,
    readonly wakeFd: number,
    readonly done: Promise<void>,
  ) {}

  /**
   * Starts serving `listeners` for the container whose network namespace is `netns`. Resolves
   * once the worker is inside that namespace, so connections made from then on reach it.
   */
  static async start(options: ProxyOptions): Promise<PortProxy> {
    const path = typeof options.netns === "number"
      ? `/proc/${options.netns}/ns/net`
      : options.netns;
    const userns = options.userns ?? ownedUserns(options.netns);
    const netnsFd = openNamespace(path);
    let usernsFd: number | undefined;
    let wakeFd = -1;
    let worker: Worker | undefined;
    try {
      if (userns !== undefined) {
        usernsFd = openNamespace(typeof userns === "number" ? `/proc/${userns}/ns/user` : userns);
      }
      wakeFd = eventfd();
      // "../net/": the same file from src/net/ and from the supervisor's bundle in src/container/.
      worker = new Worker(new URL("../net/proxy_worker.ts", import.meta.url).href, {
        type: "module",
      });
      const w = worker;
      const ready = Promise.withResolvers<void>();
      const done = Promise.withResolvers<void>();
      w.onmessage = (e: MessageEvent<WorkerReport>) => {
        if (e.data.type === "ready") ready.resolve();
        else if (e.data.type === "stopped") done.resolve();
        else {
          const err = new ProxyError(e.data.message);
          ready.reject(err);
          done.reject(err);
        }
      };
      w.onerror = (e: ErrorEvent) => {
        e.preventDefault();
        const err = new ProxyError(e.message);
        ready.reject(err);
        done.reject(err);
      };
      done.promise.catch(() => {});
      const start: WorkerStart = {
        netnsFd,
        usernsFd,
        wakeFd,
        udpIdleMs: options.udpIdleMs ?? DEFAULT_UDP_IDLE_MS,
        listeners: options.listeners.map((l) => ({
          proto: l.binding.proto,
          fd: l.fd,
          upstreamHost: options.upstreamHost ?? "127.0.0.1",
          upstreamPort: l.binding.containerPort,
        })),
      };
      w.postMessage(start);
      await ready.promise;
      return new PortProxy(
        options.listeners.map((l) => l.binding),
        options.listeners,
        w,
        wakeFd,
        done.promise,
      );
    } catch (err) {
      worker?.terminate();
      if (wakeFd >= 0) close(wakeFd);
      closeListeners(options.listeners);
      throw err;
    } finally {
      close(netnsFd);
      if (usernsFd !== undefined) close(usernsFd);
    }
  }

  /** Binds `mappings` and starts serving them for `netns` (see {@link PortProxy.start}). */
  static open(
    mappings: readonly PortMapping[],
    options: Omit<ProxyOptions, "listeners">,
  ): Promise<PortProxy> {
    return PortProxy.start({ ...options, listeners: openListeners(mappings) });
  }

  /**
   * Closes every proxied connection and the host sockets; the ports are free when this
   * resolves. Safe to call more than once.
   */
  stop(): Promise<void> {
    this.#stopped ??= (async () => {
      eventfdSignal(this.wakeFd);
      try {
        await this.done;
      } finally {
        this.worker.terminate();
        close(this.wakeFd);
        closeListeners(this.listeners);
      }
    })();
    return this.#stopped;
  }
}
