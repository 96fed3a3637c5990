/**
 * The supervisor's pid file, `<runroot>/supervisors/<name>.pid`: what a systemd unit made by
 * `generate systemd` names as its PIDFile (Type=forking), so that systemd follows the
 * supervisor `tsbox start` leaves running. By name, since `--new` units create a new container
 * (a new id) under the same name at each start. In the runroot, since no pid outlives a boot.
 * A rename moves the file to the new name ({@link movePidFile}).
 *
 * @module
 */
import { join } from "../path.ts";
import { runrootOf } from "./boot.ts";

/** Where the supervisor of container `name` in the store at `root` writes its pid. */
export function supervisorPidFile(root: string, name: string): string {
  return join(runrootOf(root), "supervisors", `${name}.pid`);
}

/** Writes this process's pid to `path` (atomically); false when it could not. */
export function writePidFile(path: string): boolean {
  try {
    Deno.mkdirSync(path.slice(0, path.lastIndexOf("/")), { recursive: true, mode: 0o700 });
    const tmp = `${path}.${Deno.pid}.tmp`;
    Deno.writeTextFileSync(tmp, `${Deno.pid}\n`, { mode: 0o644 });
    Deno.renameSync(tmp, path);
    return true;
  } catch {
    return false;
  }
}

/** Removes `path` if it still holds this process's pid (a newer supervisor may own it). */
export function removePidFile(path: string): void {
  try {
    if (Deno.readTextFileSync(path).trim() === String(Deno.pid)) Deno.removeSync(path);
  } catch { /* gone */ }
}

/**
 * Moves the pid file at `from` to `to` if it holds `pid` (the renamed container's supervisor):
 * the rename is atomic, so systemd never reads a half-written file. False when there was none.
 */
export function movePidFile(from: string, to: string, pid: number): boolean {
  try {
    if (Deno.readTextFileSync(from).trim() !== String(pid)) return false;
    Deno.renameSync(from, to);
    return true;
  } catch {
    return false; // none (not started by this boot's supervisor, or it has ended)
  }
}
