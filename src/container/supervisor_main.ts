/**
 * Entry point of a detached supervisor: `supervisor_main.ts ROOT ID` (or `tsbox __supervise
 * ROOT ID` in a compiled tsbox). It imports only what supervising needs, to keep the resident
 * size of many supervisors small. Its first line on stdout tells the starting `tsbox` whether
 * the container started: `{"ok":true}` or `{"error":"...","exitCode":N}`.
 *
 * @module
 */
import { TsboxError } from "../errors.ts";
import { Store } from "../store/mod.ts";
import { supervise } from "./supervisor.ts";
import { awaitDeadRun, countRecovery, recoveryDelay } from "./recover.ts";
import { getContainer } from "./state.ts";
import { movePidFile, removePidFile, supervisorPidFile, writePidFile } from "./pidfile.ts";
import { RECOVER_ENV, type Watcher } from "./watcher.ts";
import { watchByPolicy } from "./watch_policy.ts";
import { PENDING_ENV } from "./supervisor_spawn.ts";
import { nullStdin, trimMalloc } from "../../ffi/process.ts";

/**
 * Whether a pending supervisor (supervisor_spawn.ts) is told to start: `start` on its stdin,
 * where its starter's end without it means the container was never created. Afterwards stdin
 * is /dev/null, and the mark is gone from the environment that a watcher passes on.
 */
async function toldToStart(): Promise<boolean> {
  Deno.env.delete(PENDING_ENV);
  const buf = new Uint8Array(64);
  let text = "";
  for (;;) {
    const n = await Deno.stdin.read(buf).catch(() => null);
    if (n === null) break;
    text += new TextDecoder().decode(buf.subarray(0, n));
    if (text.includes("\n") || text.length > 64) break;
  }
  nullStdin();
  return text.split("\n")[0] === "start";
}

/** Container `id`'s name as the database has it now; undefined when it cannot tell. */
function currentName(store: Store, id: string): string | undefined {
  try {
    return getContainer(store, id)?.name;
  } catch {
    return undefined; // the database is busy or gone
  }
}

/** Writes this supervisor's pid file under the container's current name; its path or undefined. */
function writeOwnPidFile(
  store: Store,
  root: string,
  id: string,
  fallback: string | undefined,
): string | undefined {
  const name = currentName(store, id) ?? fallback;
  const path = name && supervisorPidFile(root, name);
  if (!path || !writePidFile(path)) return undefined;
  // A rename between the look and the write moved nothing (there was nothing yet): follow it.
  const after = currentName(store, id);
  if (after && after !== name) {
    const moved = supervisorPidFile(root, after);
    if (movePidFile(path, moved, Deno.pid)) return moved;
  }
  return path;
}

/**
 * Supervises container `id` under `root` (pending: once told to start); reports the first start
 * on stdout.
 */
export async function superviseMain(root: string, id: string): Promise<number> {
  // Dismissed: nothing was created, nothing to do.
  if (Deno.env.get(PENDING_ENV) !== undefined && !await toldToStart()) return 0;
  const encoder = new TextEncoder();
  let reported = false;
  const report = (msg: object) => {
    if (reported) return;
    reported = true;
    try {
      Deno.stdout.writeSync(encoder.encode(JSON.stringify(msg) + "\n"));
    } catch { /* the starter is gone */ }
  };
  // Signals meant for a terminal must not end the supervisor of a detached container.
  for (const sig of ["SIGHUP", "SIGINT", "SIGPIPE"] as const) {
    try {
      Deno.addSignalListener(sig, () => {});
    } catch { /* not supported */ }
  }
  let store: Store;
  try {
    store = await Store.open(root);
  } catch (err) {
    // The starting tsbox shows this line; without it all it could say is that we died.
    report({ error: (err as Error).message, exitCode: 125 });
    return 125;
  }
  // Started by the watcher of a supervisor that died: bring the container back if its policy
  // says so (recover.ts), else end quietly.
  const recovering = Deno.env.get(RECOVER_ENV) !== undefined;
  let watcher: Watcher | undefined;
  let pidFile: string | undefined;
  try {
    if (recovering) {
      const dead = await awaitDeadRun(store, id);
      if (!dead) return 0;
      await new Promise((r) => setTimeout(r, recoveryDelay(dead)));
    }
    // A container with a restart policy outlives the death of this process (watcher.ts).
    const row = getContainer(store, id);
    // This process's stderr is the supervisor's own (its log for detached containers).
    const warn = (message: string) => console.error(message);
    watcher = watchByPolicy(store, id, warn);
    const result = await supervise(store, id, {
      warn,
      unlessStopped: recovering,
      onStarted: (err) => {
        if (!err && recovering) countRecovery(store, id);
        // For systemd units (generate systemd): the process to follow is this one. Written
        // before the starting `tsbox start` hears of the start and exits, under the name of
        // now (a rename since this process started moved the file, rename.ts).
        if (!err) pidFile = writeOwnPidFile(store, root, id, row?.name) ?? pidFile;
        report(
          err
            ? { error: err.message, exitCode: err instanceof TsboxError ? err.exitCode : 125 }
            : { ok: true },
        );
        // This process stays resident: SQLite's page cache of the start (it refills as needed)
        // and start-up's garbage in the C heap go back to the kernel.
        if (!err) {
          try {
            store.db.run("PRAGMA shrink_memory");
          } catch { /* busy: the cache stays */ }
          trimMalloc();
        }
      },
    });
    return result.exitCode;
  } catch (err) {
    report({ error: (err as Error).message, exitCode: 125 });
    return 125;
  } finally {
    await watcher?.dismiss();
    if (pidFile) removePidFile(pidFile);
    // Renamed while it ran: the file moved with the name.
    const now = currentName(store, id);
    if (now) removePidFile(supervisorPidFile(root, now));
    store.close();
  }
}

if (import.meta.main) {
  const [root, id] = Deno.args;
  Deno.exit(await superviseMain(root, id));
}
