/**
 * `rename OLD NEW` (docker's `POST /containers/{id}/rename`): the name changes in one transaction
 * that refuses a name in use, the user networks of a running container serve the new name, and
 * a `rename` event says what the old one was.
 *
 * @module
 */
import { containerEvent } from "../events/log.ts";
import { UsageError } from "../errors.ts";
import type { Store } from "../store/mod.ts";
import { type ContainerRecord, NameConflictError, requireContainer } from "./state.ts";

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

/** Renames the container `ref` to `newName` (a leading "/" is dropped, as docker's). */
export async function renameContainer(
  store: Store,
  ref: string,
  newName: string,
): Promise<ContainerRecord> {
  const name = newName.replace(/^\//, "");
  if (!NAME_RE.test(name)) {
    throw new UsageError(
      `Invalid container name (${newName}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`,
    );
  }
  const c = requireContainer(store, ref);
  if (c.name === name) {
    throw new UsageError(`Renaming a container with the same name as its current name`);
  }
  store.db.transaction(() => {
    const holder = store.db.get<{ id: string }>("SELECT id FROM containers WHERE name = ?", name);
    if (holder) throw new NameConflictError(name, holder.id);
    store.db.run("UPDATE containers SET name = ? WHERE id = ?", name, c.id);
  });
  const renamed = { ...c, name };
  // Names on user networks come from the database: rewrite the DNS of those it holds leases on.
  if (c.config.net?.endpoints.length) {
    const { leasesHeldBy, findNetwork } = await import("../network/mod.ts");
    const { refreshNetworkDns } = await import("../network/connect.ts");
    for (const lease of leasesHeldBy(store, c.id)) {
      const net = findNetwork(store, lease.networkId);
      if (net) {
        try {
          refreshNetworkDns(store, net);
        } catch {
          // The rename stands; the old name resolves until the next change on that network.
        }
      }
    }
  }
  containerEvent(store.root, "rename", renamed, { oldName: `/${c.name}` });
  return renamed;
}
