/**
 * How `update --restart` tells a running supervisor without a watcher that its container now has
 * a restart policy (watch_policy.ts): the supervisor keeps an empty file,
 * `<runroot>/supervisors/<id>.policy`, under an inotify watch, and `update` writes to it. The
 * supervisor sleeps until then (no timer), and a write can kill nothing: a supervisor of an
 * older tsbox has no such file, so `update` finds none and writes nothing (that one looks at
 * the database on its own). In the runroot, since no supervisor outlives a boot.
 *
 * @module
 */
import { join } from "../path.ts";
import { runrootOf } from "./boot.ts";

/** The file the supervisor of container `id` in the store at `root` watches. */
export function policyNoticeFile(root: string, id: string): string {
  return join(runrootOf(root), "supervisors", `${id}.policy`);
}

/**
 * Tells the supervisor of container `id` that its policy changed, if one watches: a write to
 * its file, never a new file (a supervisor that has ended leaves nothing behind). False when
 * there was no file.
 */
export function noticePolicy(root: string, id: string): boolean {
  try {
    Deno.writeTextFileSync(policyNoticeFile(root, id), "policy\n", { create: false });
    return true;
  } catch {
    return false; // no supervisor watches (stopped, has a watcher already, or an older tsbox)
  }
}

/** Makes the (empty) file the supervisor watches; false when the runroot refuses it. */
export function makePolicyNoticeFile(path: string): boolean {
  try {
    Deno.mkdirSync(path.slice(0, path.lastIndexOf("/")), { recursive: true, mode: 0o700 });
    Deno.writeTextFileSync(path, "", { mode: 0o600 });
    return true;
  } catch {
    return false;
  }
}
