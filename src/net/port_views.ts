/**
 * The port bindings in effect as `ps`, `inspect` and `port` show them, read from the state
 * database (table port_bindings). Kept apart from publish.ts, which opens listeners and runs
 * proxies, so that those read-only commands load none of that.
 *
 * @module
 */
import type { Store } from "../store/mod.ts";
import { formatPortsColumn, networkSettingsPorts, type PortBinding, portLines } from "./ports.ts";

/** What a container's recorded config says about ports (fields of its run config). */
export interface PortConfig {
  /** `-p` values as given. */
  readonly ports?: readonly string[];
  /** `-P`. */
  readonly publishAll?: boolean;
  /** Exposed ports ("80/tcp"): the image's EXPOSE, `--expose` and every `-p` port. */
  readonly exposedPorts?: readonly string[];
  /** "private", "none", "host", "container:NAME". */
  readonly network: string;
  /** Bridge networks, in the order joined: the first one's address is the DNAT target. */
  readonly net?: {
    readonly endpoints: readonly { readonly networkId: string }[];
    readonly outbound?: string;
  };
}

interface BindingRow {
  host_ip: string;
  host_port: number;
  container_port: number;
  proto: "tcp" | "udp";
}

/** The bindings recorded for a container. */
export function loadBindings(store: Store, id: string): PortBinding[] {
  return store.db.all<BindingRow>(
    "SELECT host_ip, host_port, container_port, proto FROM port_bindings WHERE container_id = ?",
    id,
  ).map((r) => ({
    hostIp: r.host_ip,
    hostPort: r.host_port,
    containerPort: r.container_port,
    proto: r.proto,
  }));
}

/** A container as the display helpers need it. */
export interface PortView {
  readonly id: string;
  readonly state: string;
  readonly config: PortConfig;
}

function liveBindings(store: Store, c: PortView): PortBinding[] {
  // Rows of a supervisor that was killed outright are stale once the container is not up.
  const up = c.state === "running" || c.state === "paused" || c.state === "restarting";
  return up ? loadBindings(store, c.id) : [];
}

/** The PORTS column of `ps` for a container. */
export function portsColumn(store: Store, c: PortView): string {
  return formatPortsColumn(liveBindings(store, c), c.config.exposedPorts ?? []);
}

/** `NetworkSettings.Ports` of `inspect` for a container. */
export function inspectPorts(store: Store, c: PortView): ReturnType<typeof networkSettingsPorts> {
  return networkSettingsPorts(liveBindings(store, c), c.config.exposedPorts ?? []);
}

/** The lines `tsbox port CONTAINER [PORT]` prints. */
export function portCommandLines(store: Store, c: PortView, filter?: string): string[] {
  return portLines(liveBindings(store, c), filter);
}
