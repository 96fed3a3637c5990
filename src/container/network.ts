/**
 * `--network container:NAME`: the new container joins the network namespace of a running one
 * (as docker's container network mode: same interfaces, same ports, no publishing of its own).
 *
 * @module
 */
import { TsboxError, UsageError } from "../errors.ts";
import type { NetworkMode } from "../runtime/container.ts";
import type { RunFlags } from "./flags.ts";
import type { Store } from "../store/mod.ts";
import { getContainer, reconcile, requireContainer } from "./state.ts";

const PREFIX = "container:";

/** The network mode to record for `container:NAME`: the target resolved to its full id. */
export function containerNetwork(store: Store, mode: string, flags: RunFlags): NetworkMode {
  if ((flags.publish?.length ?? 0) > 0 || flags.publishAll) {
    throw new UsageError(
      "conflicting options: port publishing and the container type network mode",
    );
  }
  const target = requireContainer(store, mode.slice(PREFIX.length));
  return `${PREFIX}${target.id}`;
}

/**
 * PID 1 of the container whose network a `container:ID` mode joins, read at each start (the
 * target may have restarted since); undefined for the other modes.
 */
export function joinedNetworkPid(store: Store, network: string): number | undefined {
  if (!network.startsWith(PREFIX)) return undefined;
  const id = network.slice(PREFIX.length);
  const found = getContainer(store, id);
  const target = found ? reconcile(store, found) : undefined;
  if (!target || (target.state !== "running" && target.state !== "paused") || !target.pid) {
    throw new TsboxError(
      `cannot join network of a non running container: ${target?.name ?? id.slice(0, 12)}`,
    );
  }
  return target.pid;
}
