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
import { ID_FROM_STDIN, recordHandedId } from "./supervisor_spawn.ts";
import { nullStdin, trimMalloc } from "../../ffi/process.ts";

/**
 * The id a pending supervisor is handed on stdin (supervisor_spawn.ts), or undefined when its
 * starter closed stdin without one (the container was never created). Afterwards stdin is
 * /dev/null, as a supervisor spawned with its id has it.
 */
async function idFromStdin(): Promise<string | undefined> {
  const buf = new Uint8Array(256);
  let text = "";
  for (;;) {
    const n = await Deno.stdin.read(buf).catch(() => null);
    if (n === null) break;
    text += new TextDecoder().decode(buf.subarray(0, n));
    if (text.includes("\n") || text.length > 1024) break;
  }
  nullStdin();
  const id = text.split("\n")[0];
  return /^[0-9a-f]{64}$/.test(id) ? id : undefined;
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
 * Writes `id` over the {@link ID_FROM_STDIN} placeholder (the last argument, of the same length)
 * in this process's argument area, which /proc/PID/cmdline and `ps` show: a supervisor's
 * command line names its store and container, whichever way it was started. Best effort.
 */
function showIdInCommandLine(id: string): void {
  try {
    const stat = Deno.readTextFileSync("/proc/self/stat");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // Fields 48 and 49 of stat are arg_start and arg_end; the first after ")" is field 3.
    const argEnd = Number(fields[49 - 3]);
    const at = argEnd - 1 - ID_FROM_STDIN.length; // the last argument, before its NUL
    const mem = Deno.openSync("/proc/self/mem", { read: true, write: true });
    try {
      const seen = new Uint8Array(ID_FROM_STDIN.length);
      mem.seekSync(at, Deno.SeekMode.Start);
      if (mem.readSync(seen) !== seen.length) return;
      if (new TextDecoder().decode(seen) !== ID_FROM_STDIN) return;
      mem.seekSync(at, Deno.SeekMode.Start);
      mem.writeSync(new TextEncoder().encode(id));
    } finally {
      mem.close();
    }
  } catch {
    // The command line keeps the placeholder; withHandedId still gives a watcher the id.
  }
}

/**
 * Supervises container `id` under `root` ({@link ID_FROM_STDIN}: read it from stdin first);
 * reports the first start on stdout.
 */
export async function superviseMain(root: string, given: string): Promise<number> {
  const id = given === ID_FROM_STDIN ? await idFromStdin() : given;
  if (id === undefined) return 0; // dismissed: nothing was created, nothing to do
  recordHandedId(id);
  showIdInCommandLine(id);
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
