/**
 * Recognising a reboot. What must not outlive a boot lives in a runtime directory on tmpfs (the
 * runroot: `--runroot`/TSBOX_RUNROOT, default `/run/tsbox/<hash of the store root>`, rootless
 * `$XDG_RUNTIME_DIR/tsbox/<hash>`), which holds a marker with the kernel's boot id. A marker
 * that is missing (the tmpfs is new) or names another boot means the rows of the store describe
 * processes, mounts and cgroups of a boot that is over: pids in them may now belong to anyone,
 * and a pid + start time pair can even repeat across boots. So the first command that reads
 * containers resets them before anything else: every running, paused or restarting container
 * is recorded as exited with 255 (docker's code for a container the host went down under), no
 * supervisor or pid is kept, port bindings go, and each container's mounts, cgroups and attach
 * socket are released. It happens once per boot, under a flock in the runroot, however many
 * commands start at the same time; the others wait for it, then find the marker current.
 *
 * A store that has never been reset (no reset log: made, or last used, by a tsbox without this
 * check) is adopted instead: its supervisors may well be running, started by that older tsbox
 * in this very boot, so its rows are left to the usual pid + start time reconciling once.
 *
 * The check on every command is two small reads (the marker and the boot id).
 *
 * @module
 */
import { FileLock } from "../../ffi/lock.ts";
import { join } from "../path.ts";
import { currentBootId, MARKER, readTrimmed, runrootOf } from "./boot_marker.ts";
import type { Store } from "../store/mod.ts";
import { releaseRuntimeSync } from "./reap.ts";
import { cgroupOwnerOf } from "./cgroup.ts";
import { containerDir } from "./paths.ts";

export { currentBootId, defaultRunroot, runrootOf } from "./boot_marker.ts";

/** docker's exit code for a container that was running when the host went down. */
export const EXIT_AT_REBOOT = 255;

const LOCK = "boot.lock";
/** One line per reset, in the store (not the runroot): when tsbox last saw a new boot. */
export const RESET_LOG = "boot-resets.log";

const checked = new WeakSet<Store>();

/**
 * Makes sure the rows of `store` belong to this boot, resetting them first if they do not
 * (see the module). Cheap after the first call per store and process. Returns whether this
 * call did the reset (the caller re-reads rows it read before).
 */
export function ensureThisBoot(store: Store): boolean {
  if (checked.has(store)) return false;
  const runroot = runrootOf(store.root);
  const boot = currentBootId();
  if (readTrimmed(join(runroot, MARKER)) === boot) {
    checked.add(store);
    return false;
  }
  Deno.mkdirSync(runroot, { recursive: true, mode: 0o700 });
  using _lock = FileLock.acquire(join(runroot, LOCK));
  // Another command may have reset while this one waited for the lock.
  if (readTrimmed(join(runroot, MARKER)) === boot) {
    checked.add(store);
    return false;
  }
  let adopt = false;
  try {
    Deno.statSync(join(store.root, RESET_LOG));
  } catch {
    adopt = true;
  }
  if (adopt) noteBoot(store, "adopted (first command that tracks boots)");
  else resetLastBoot(store);
  const tmp = join(runroot, `.${MARKER}.${Deno.pid}`);
  Deno.writeTextFileSync(tmp, `${boot}\n`, { mode: 0o600 });
  Deno.renameSync(tmp, join(runroot, MARKER));
  checked.add(store);
  return true;
}

/**
 * Resets what the last boot left (see the module). Every step tolerates what is already gone;
 * kernel leftovers are released before the rows change, so that no command that sees a row
 * exited can start it over a stale mount.
 */
export function resetLastBoot(store: Store): number {
  const rows = store.db.all<{ id: string; state: string; config: string }>(
    "SELECT id, state, config FROM containers",
  );
  for (const { id, config } of rows) {
    try {
      releaseRuntimeSync(cgroupOwnerOf(id, config), store.root);
    } catch {
      // Left for `rm` or the next start (which releases again).
    }
    try {
      Deno.removeSync(join(containerDir(store.root, id), "attach.sock"));
    } catch { /* none */ }
  }
  const now = Date.now();
  const reset = store.db.transaction(() => {
    const n = store.db.run(
      `UPDATE containers SET state = 'exited', exit_code = ?, finished_at = ?
       WHERE state IN ('running', 'paused', 'restarting')`,
      EXIT_AT_REBOOT,
      now,
    ).changes;
    store.db.run(
      `UPDATE containers SET pid = NULL, pid_start = NULL, supervisor_pid = NULL,
         supervisor_start = NULL`,
    );
    store.db.run("DELETE FROM port_bindings");
    // A reboot took every veth with it; a container's address is leased again when it starts.
    store.db.run("DELETE FROM network_leases");
    return n;
  });
  noteBoot(store, `reset ${reset} of ${rows.length} containers`);
  return reset;
}

function noteBoot(store: Store, what: string): void {
  const line = `${new Date().toISOString()} boot ${currentBootId()} pid ${Deno.pid} ${what}\n`;
  try {
    Deno.writeTextFileSync(join(store.root, RESET_LOG), line, { append: true, mode: 0o600 });
  } catch { /* a note for people (and the sign that this store is tracked) */ }
}
