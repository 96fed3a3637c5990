/**
 * Signal names and numbers for `kill` and the spec's signals, in a module of their own: `tsbox
 * runc kill` and the other lifecycle commands load this and not all of oci_config.ts (whose
 * imports pull in the security and seccomp modules a running container no longer needs). The
 * engine's `kill -s`, `stop` and StopSignal (src/container/signals.ts) read the same table.
 *
 * @module
 */

/** Linux signal numbers by name (x86-64), for `kill` and `process` signals. */
export const SIGNALS: Readonly<Record<string, number>> = {
  HUP: 1,
  INT: 2,
  QUIT: 3,
  ILL: 4,
  TRAP: 5,
  ABRT: 6,
  IOT: 6,
  BUS: 7,
  FPE: 8,
  KILL: 9,
  USR1: 10,
  SEGV: 11,
  USR2: 12,
  PIPE: 13,
  ALRM: 14,
  TERM: 15,
  STKFLT: 16,
  CHLD: 17,
  CONT: 18,
  STOP: 19,
  TSTP: 20,
  TTIN: 21,
  TTOU: 22,
  URG: 23,
  XCPU: 24,
  XFSZ: 25,
  VTALRM: 26,
  PROF: 27,
  WINCH: 28,
  IO: 29,
  POLL: 29,
  PWR: 30,
  SYS: 31,
};

/** `9`, `KILL`, `SIGKILL`, `SIGRTMIN+3` → the signal number; undefined when unknown. */
export function parseSignal(value: string): number | undefined {
  if (/^[0-9]+$/.test(value)) {
    const n = Number(value);
    return n >= 1 && n <= 64 ? n : undefined;
  }
  return namedSignal(value.toUpperCase().replace(/^SIG/, ""));
}

/** An upper-case name without `SIG` (`KILL`, `RTMIN+3`, `RTMAX-1`) → its number, if any. */
export function namedSignal(name: string): number | undefined {
  const rt = /^RTMIN(?:\+([0-9]+))?$/.exec(name) ?? /^RTMAX(?:-([0-9]+))?$/.exec(name);
  if (rt) {
    const n = name.startsWith("RTMIN") ? 34 + Number(rt[1] ?? 0) : 64 - Number(rt[1] ?? 0);
    return n >= 34 && n <= 64 ? n : undefined;
  }
  return SIGNALS[name];
}
