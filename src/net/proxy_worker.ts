/**
 * The proxy's thread. Deno runs each worker on its own OS thread, which makes it the one thread
 * that may leave the host's network namespace: it joins the container's with setns (allowed in
 * a threaded process for network namespaces, and per thread), then runs the epoll loop there
 * synchronously until the owner signals the wake eventfd.
 *
 * Rootless (a `usernsFd` given), the thread may not join: it stays in the host's namespace and
 * takes its upstream sockets from a helper that makes them inside (netns_sockets.ts). A first
 * batch is made before `ready`, so a helper that cannot work fails the start, not a connection.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { AF_INET, AF_INET6, close, setnsNet, SOCK_DGRAM, SOCK_STREAM } from "../../ffi/net.ts";
import { NetnsSockets } from "./netns_sockets.ts";
import { type LoopListener, runLoop } from "./proxy_loop.ts";

/** The one message the worker receives. */
export interface WorkerStart {
  /** An fd of the container's network namespace (`/proc/PID/ns/net`), owned by the sender. */
  readonly netnsFd: number;
  /**
   * Rootless: an fd of the user namespace that owns the network namespace; the thread then
   * stays where it is and a {@link NetnsSockets} makes the upstream sockets.
   */
  readonly usernsFd?: number;
  readonly wakeFd: number;
  readonly listeners: readonly LoopListener[];
  readonly udpIdleMs: number;
}

/** What the worker reports back. */
export type WorkerReport =
  | { readonly type: "ready" }
  | { readonly type: "stopped" }
  | { readonly type: "error"; readonly message: string };

function report(r: WorkerReport): void {
  self.postMessage(r);
}

self.onmessage = (e: MessageEvent<WorkerStart>) => {
  const start = e.data;
  let sockets: NetnsSockets | undefined;
  try {
    if (start.usernsFd === undefined) setnsNet(start.netnsFd);
    else {
      sockets = new NetnsSockets(start.usernsFd, start.netnsFd);
      // One socket of each kind now: a failing helper fails the start. It goes back to no
      // pool: closing it costs less than keeping a pool per kind in step.
      for (const l of start.listeners) {
        const family = l.upstreamHost.includes(":") ? AF_INET6 : AF_INET;
        close(sockets.socket(family, l.proto === "tcp" ? SOCK_STREAM : SOCK_DGRAM));
      }
    }
  } catch (err) {
    sockets?.close();
    report({ type: "error", message: (err as Error).message });
    self.close();
    return;
  }
  report({ type: "ready" });
  try {
    runLoop({
      listeners: start.listeners,
      wakeFd: start.wakeFd,
      udpIdleMs: start.udpIdleMs,
      socket: sockets ? (family, type) => sockets.socket(family, type) : undefined,
    });
    report({ type: "stopped" });
  } catch (err) {
    report({ type: "error", message: (err as Error).message });
  } finally {
    sockets?.close();
  }
  self.close();
};
