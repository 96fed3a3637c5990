/**
 * `rename OLD NEW` (docker's `POST /containers/{id}/rename`): the name changes in one transaction
 * that refuses a name in use, the user networks of a running container serve the new name, the
 * supervisor's pid file (pidfile.ts) moves with it, and a `rename` event says what the old one
 * was. Checks and messages in the order and words of docker's daemon (daemon/rename.go).
 *
 * @module
 */
import { containerEvent } from "../events/log.ts";
import { UsageError } from "../errors.ts";
import type { Store } from "../store/mod.ts";
import { movePidFile, supervisorPidFile } from "./pidfile.ts";
import { type ContainerRecord, NameConflictError, requireContainer } from "./state.ts";

/** docker's validContainerNamePattern: at least two characters. */
const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

/** Why the new name could not be taken: docker wraps these in "Error when allocating new name". */
const ALLOCATING = "Error when allocating new name";

/** The new name is another container's (409 in the API, as NameConflictError). */
export class RenameConflictError extends NameConflictError {
  constructor(containerName: string, holder: string) {
    super(containerName, holder);
    this.message = `${ALLOCATING}: ${this.message}`;
  }
}

/**
 * Renames the container `ref` to `newName` (a leading "/" is dropped, as docker's). Throws
 * NotFoundError for a missing container, UsageError for an empty, equal or invalid name, and
 * {@link RenameConflictError} for a name in use.
 */
export async function renameContainer(
  store: Store,
  ref: string,
  newName: string,
): Promise<ContainerRecord> {
  if (ref === "" || newName === "") throw new UsageError("Neither old nor new names may be empty");
  const c = requireContainer(store, ref);
  const name = newName.replace(/^\//, "");
  if (c.name === name) {
    throw new UsageError(`Renaming a container with the same name as its current name`);
  }
  if (!NAME_RE.test(name)) {
    throw new UsageError(
      `${ALLOCATING}: Invalid container name (/${name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`,
    );
  }
  store.db.transaction(() => {
    const holder = store.db.get<{ id: string }>("SELECT id FROM containers WHERE name = ?", name);
    if (holder) throw new RenameConflictError(name, holder.id);
    store.db.run("UPDATE containers SET name = ? WHERE id = ?", name, c.id);
  });
  const renamed = { ...c, name };
  // A unit from `generate systemd` made from now on names NEW's pid file: the running
  // supervisor's file moves there (only if it is this container's supervisor's).
  if (c.supervisorPid !== undefined) {
    movePidFile(
      supervisorPidFile(store.root, c.name),
      supervisorPidFile(store.root, name),
      c.supervisorPid,
    );
  }
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
