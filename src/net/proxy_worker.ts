/**
 * The proxy's thread. Deno runs each worker on its own OS thread, which makes it the one thread
 * that may leave the host's network namespace: it joins the container's with setns (allowed in
 * a threaded process for network namespaces, and per thread), then runs the epoll loop there
 * synchronously until the owner signals the wake eventfd.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { setnsNet } from "../../ffi/net.ts";
import { type LoopListener, runLoop } from "./proxy_loop.ts";

/** The one message the worker receives. */
export interface WorkerStart {
  /** An fd of the container's network namespace (`/proc/PID/ns/net`), owned by the sender. */
  readonly netnsFd: number;
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
  try {
    setnsNet(start.netnsFd);
  } catch (err) {
    report({ type: "error", message: (err as Error).message });
    self.close();
    return;
  }
  report({ type: "ready" });
  try {
    runLoop({ listeners: start.listeners, wakeFd: start.wakeFd, udpIdleMs: start.udpIdleMs });
    report({ type: "stopped" });
  } catch (err) {
    report({ type: "error", message: (err as Error).message });
  }
  self.close();
};
