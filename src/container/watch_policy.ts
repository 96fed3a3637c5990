/**
 * Whether a supervisor has a watcher (watcher.ts): while its container has a restart policy,
 * including one that `update --restart` gives it after it started.
 *
 * @module
 */
import type { Store } from "../store/mod.ts";
import { makePolicyNoticeFile, policyNoticeFile } from "./policy_notice.ts";
import { getContainer } from "./state.ts";
import { startWatcher, type Watcher } from "./watcher.ts";

/** How often a supervisor looks at the database when it cannot watch its notice file. */
const POLICY_POLL_MS = 2_000;

/**
 * A watcher for this supervisor while container `id` has a restart policy. One without a
 * policy gets none (a supervisor started by one would only record the exit and end), until
 * `update --restart` gives it one: update writes to a file this process watches with inotify
 * (policy_notice.ts), so it sleeps until then; no signal is used, as one would kill a
 * supervisor of an older tsbox. Only where the file cannot be made or watched is the row
 * looked at every {@link POLICY_POLL_MS}. A watcher started stays when the policy goes back to
 * `no`: what its supervisor does is decided by the policy recorded when this process dies
 * (recover.ts).
 */
export function watchByPolicy(
  store: Store,
  id: string,
  warn?: (message: string) => void,
): Watcher {
  const wanted = () => {
    try {
      const c = getContainer(store, id);
      return c !== undefined && c.config.restart.name !== "no";
    } catch {
      return false; // the database is busy: the next notice (or look)
    }
  };
  let watcher = wanted() ? startWatcher(warn) : undefined;
  let done = false;
  const stops: (() => void)[] = [];
  const begin = () => {
    if (done || watcher || !wanted()) return false;
    watcher = startWatcher(warn);
    for (const stop of stops.splice(0)) stop();
    return true;
  };
  if (!watcher) {
    const path = policyNoticeFile(store.root, id);
    let fsWatcher: Deno.FsWatcher | undefined;
    try {
      if (makePolicyNoticeFile(path)) fsWatcher = Deno.watchFs(path, { recursive: false });
    } catch {
      fsWatcher = undefined; // no inotify (limits): poll instead
    }
    if (fsWatcher) {
      const fw = fsWatcher;
      stops.push(() => {
        try {
          fw.close();
        } catch { /* closed */ }
        try {
          Deno.removeSync(path);
        } catch { /* gone */ }
      });
      (async () => {
        try {
          for await (const _ of fw) if (begin()) return;
        } catch { /* closed */ }
      })();
      // An update between the first look and the watch wrote to no file: look once more.
      begin();
    } else {
      const timer = setInterval(begin, POLICY_POLL_MS);
      stops.push(() => clearInterval(timer));
    }
  }
  return {
    get pid() {
      return watcher?.pid;
    },
    async dismiss() {
      done = true;
      for (const stop of stops.splice(0)) stop();
      await watcher?.dismiss();
    },
  };
}
