/**
 * Whether a supervisor has a watcher (watcher.ts): while its container has a restart policy,
 * including one that `update --restart` gives it after it started.
 *
 * @module
 */
import type { Store } from "../store/mod.ts";
import { getContainer } from "./state.ts";
import { startWatcher, type Watcher } from "./watcher.ts";

/** How often a supervisor without a watcher looks whether `update --restart` gave a policy. */
const POLICY_POLL_MS = 2_000;

/**
 * A watcher for this supervisor while container `id` has a restart policy. One without a
 * policy gets none (a supervisor started by one would only record the exit and end), until
 * `update --restart` gives it one: the row is looked at every {@link POLICY_POLL_MS}, as no
 * signal can tell this process (one started by an older tsbox would die of it). A watcher
 * started stays when the policy goes back to `no`: what its supervisor does is decided by the
 * policy recorded when this process dies (recover.ts).
 */
export function watchByPolicy(store: Store, id: string): Watcher {
  const wanted = () => {
    try {
      const c = getContainer(store, id);
      return c !== undefined && c.config.restart.name !== "no";
    } catch {
      return false; // the database is busy: the next look
    }
  };
  let watcher = wanted() ? startWatcher() : undefined;
  let done = false;
  const timer = watcher ? undefined : setInterval(() => {
    if (done || watcher || !wanted()) return;
    clearInterval(timer);
    watcher = startWatcher();
  }, POLICY_POLL_MS);
  return {
    get pid() {
      return watcher?.pid;
    },
    async dismiss() {
      done = true;
      clearInterval(timer);
      await watcher?.dismiss();
    },
  };
}
