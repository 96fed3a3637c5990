/**
 * Reading processes from /proc: a pid's start time, so that a pid reused by an unrelated
 * process is never taken for a supervisor or a container that has gone.
 *
 * @module
 */

/**
 * Start time of `pid` in clock ticks since boot (field 22 of /proc/PID/stat), or undefined when
 * there is no such process. A zombie still has one; {@link processAlive} treats it as gone.
 */
export function startTime(pid: number): number | undefined {
  const stat = readStat(pid);
  return stat ? Number(stat[19]) : undefined;
}

/** Fields of /proc/PID/stat after the command name (index 0 is field 3, the state). */
export function readStat(pid: number): string[] | undefined {
  let text: string;
  try {
    text = Deno.readTextFileSync(`/proc/${pid}/stat`);
  } catch {
    return undefined;
  }
  // The command name is in parentheses and may itself hold spaces or parentheses.
  return text.slice(text.lastIndexOf(")") + 2).trim().split(" ");
}

/** Whether `pid` runs (not a zombie) and, when `start` is given, started at that time. */
export function processAlive(pid: number, start?: number): boolean {
  const stat = readStat(pid);
  if (!stat || stat[0] === "Z" || stat[0] === "X") return false;
  return start === undefined || Number(stat[19]) === start;
}
