/**
 * Temp files and directories that name the process owning them. A pull, load or build killed
 * half-way leaves its temp entries behind; the next tsbox that opens the store removes those
 * whose owner no longer runs, and never one of a process still at work, however old. The
 * owner is its pid with its start time (/proc/PID/stat field 22), so a pid reused by another
 * process does not keep a dead owner's leftovers alive.
 *
 * @module
 */
import { processAlive, startTime } from "../container/proc.ts";

/** The prefix every store temp entry starts with. */
export const TEMP_PREFIX = ".tmp-";

/** How long a temp entry without an owner in its name (an older tsbox's) is kept. */
const UNOWNED_GRACE_MS = 24 * 3600_000;

/** `<pid>-<start>` of this process, read once. */
let selfTag: string | undefined;

/** `.tmp-<pid>-<start>-` for this process: the prefix of its temp names. */
export function ownedTempPrefix(): string {
  selfTag ??= `${Deno.pid}-${startTime(Deno.pid) ?? 0}`;
  return `${TEMP_PREFIX}${selfTag}-`;
}

const OWNED = /^\.tmp-(\d+)-(\d+)-/;

/**
 * Whether the temp entry `name` (a base name starting with `.tmp-`) is abandoned: its owner
 * process is gone (or is a zombie), or, for a name without an owner, its `mtime` is older than
 * a day. Names not starting with `.tmp-` are never abandoned.
 */
export function abandoned(name: string, mtime: Date | null, now = Date.now()): boolean {
  if (!name.startsWith(TEMP_PREFIX)) return false;
  const owned = OWNED.exec(name);
  if (owned) return !processAlive(Number(owned[1]), Number(owned[2]));
  return now - (mtime?.getTime() ?? 0) > UNOWNED_GRACE_MS;
}
