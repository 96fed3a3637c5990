/**
 * `tsbox system boot`: what docker's daemon does for containers when it starts, done by a
 * command a boot unit runs (contrib/systemd/tsbox-boot.service). The store is first checked
 * against this boot (boot.ts resets what the last one left), then every container the policy
 * table names is started, `--network container:X` joiners after X:
 *
 * - `always`: started (also one a user had stopped, as docker's daemon does);
 * - `unless-stopped`: started unless a user stopped it;
 * - `on-failure[:N]`: started when it was running at shutdown (or had failed) and was not
 *   stopped by a user, with retries left;
 * - `no`, a container never started, or one run with `--rm`: left alone.
 *
 * A container that already runs is skipped, so a second `system boot` changes nothing. A start
 * that fails is reported and the others go on: the unit must succeed when it started what it
 * could, or systemd kills everything it started (podman #26008).
 *
 * @module
 */
import type { Store } from "../store/mod.ts";
import { startDetached } from "./lifecycle.ts";
import { type ContainerRecord, findContainer, isActive, listContainers } from "./state.ts";
import { joinedContainers } from "./namespaces.ts";

/** Whether a container in this state is started at boot (see the module's table). */
export function startsAtBoot(c: ContainerRecord): boolean {
  if (c.startedAt === undefined || c.config.autoRemove) return false;
  const p = c.config.restart;
  switch (p.name) {
    case "always":
      return true;
    case "unless-stopped":
      return !c.stopRequested;
    case "on-failure":
      return !c.stopRequested && (c.exitCode ?? 0) !== 0 &&
        (p.maxRetries === 0 || c.restartCount < p.maxRetries);
    default:
      return false;
  }
}

/** `containers` ordered so that each `--network/--ipc/--pid container:X` joiner comes after X. */
export function bootOrder(
  store: Store,
  containers: readonly ContainerRecord[],
): ContainerRecord[] {
  const byId = new Map(containers.map((c) => [c.id, c]));
  const out: ContainerRecord[] = [];
  const placed = new Set<string>();
  const visiting = new Set<string>();
  const place = (c: ContainerRecord) => {
    if (placed.has(c.id) || visiting.has(c.id)) return; // a cycle cannot start anyway
    visiting.add(c.id);
    const net = c.config.network;
    const targets = net.startsWith("container:") ? [net.slice("container:".length)] : [];
    // `--ipc`/`--pid container:X` joiners too (namespaces.ts).
    for (const target of [...targets, ...joinedContainers(c)]) {
      const joined = findContainer(store, target);
      const first = joined && byId.get(joined.id);
      if (first) place(first);
    }
    visiting.delete(c.id);
    placed.add(c.id);
    out.push(c);
  };
  for (const c of containers) place(c);
  return out;
}

/** What {@link bootContainers} did. */
export interface BootReport {
  /** Names of the containers started. */
  readonly started: string[];
  /** Names already running (left as they were). */
  readonly running: string[];
  /** Containers whose start failed, with why. */
  readonly failed: { readonly name: string; readonly error: string }[];
}

/** Starts the containers docker's daemon would start at boot (see the module). */
export async function bootContainers(store: Store): Promise<BootReport> {
  const report: BootReport = { started: [], running: [], failed: [] };
  // Oldest first, as created, before joiners are moved after what they join.
  const all = listContainers(store).reverse();
  const wanted = all.filter((c) =>
    isActive(c.state) ? c.config.restart.name !== "no" : startsAtBoot(c)
  );
  for (const c of bootOrder(store, wanted)) {
    if (isActive(c.state)) {
      report.running.push(c.name);
      continue;
    }
    try {
      await startDetached(store, c);
      report.started.push(c.name);
    } catch (err) {
      report.failed.push({ name: c.name, error: (err as Error).message ?? String(err) });
    }
  }
  return report;
}
