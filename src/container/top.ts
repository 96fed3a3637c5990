/**
 * `top CONTAINER [ps OPTIONS]`: the container's processes shown as `ps` would show them with
 * those options, as docker's top does (docker runs the host's ps and keeps the container's
 * rows). tsbox runs no host program: the options are parsed here (`-ef` by default, BSD `aux`,
 * `-o`/`o`/`--format` column lists with ps's names and headers) and the columns read from
 * /proc/PID/stat, status and cmdline of each process in the container's cgroup.
 *
 * @module
 */
import { TsboxError } from "../errors.ts";
import { readStat } from "./proc.ts";

/** ps options tsbox cannot honour, or a column list without a PID (docker's: exit code 1). */
export class TopError extends TsboxError {
  override readonly exitCode = 1;
  constructor(message: string) {
    super(message);
    this.name = "TopError";
  }
}

/** One process, read from /proc. */
export interface ProcInfo {
  readonly pid: number;
  readonly ppid: number;
  readonly pgid: number;
  readonly sid: number;
  readonly tpgid: number;
  readonly uid: number;
  readonly gid: number;
  /** Controlling terminal number (stat's tty_nr), 0 for none. */
  readonly ttyNr: number;
  /** The state letter (R, S, D, Z, T, ...). */
  readonly state: string;
  readonly nice: number;
  readonly threads: number;
  /** Virtual size in KiB. */
  readonly vszKiB: number;
  /** Resident set in KiB. */
  readonly rssKiB: number;
  /** Start, ms since the epoch. */
  readonly startMs: number;
  /** User plus system CPU time in seconds. */
  readonly cpuSeconds: number;
  readonly comm: string;
  /** The command line, `[comm]` when empty (a kernel thread or a zombie). */
  readonly args: string;
}

/** What the columns need besides the process. */
export interface TopContext {
  readonly nowMs: number;
  /** Total memory in KiB (for %MEM). */
  readonly memTotalKiB: number;
  /** Host user and group names by id (ps resolves them on the host, and so does docker). */
  readonly userName: (uid: number) => string;
  readonly groupName: (gid: number) => string;
}

const TICKS = 100;
const PAGE_KIB = 4;

/** Reads process `pid`; undefined when it is gone. */
export function readProc(pid: number, bootMs: number): ProcInfo | undefined {
  const stat = readStat(pid);
  if (!stat) return undefined;
  let status: string, cmdline: string, comm: string;
  try {
    status = Deno.readTextFileSync(`/proc/${pid}/status`);
    cmdline = Deno.readTextFileSync(`/proc/${pid}/cmdline`);
    comm = Deno.readTextFileSync(`/proc/${pid}/comm`).trim();
  } catch {
    return undefined;
  }
  const args = cmdline.split("\0").filter(Boolean).join(" ");
  return {
    pid,
    ppid: Number(stat[1]),
    pgid: Number(stat[2]),
    sid: Number(stat[3]),
    ttyNr: Number(stat[4]),
    tpgid: Number(stat[5]),
    state: stat[0],
    nice: Number(stat[16]),
    threads: Number(stat[17]),
    vszKiB: Math.floor(Number(stat[20]) / 1024),
    rssKiB: Number(stat[21]) * PAGE_KIB,
    startMs: bootMs + (Number(stat[19]) / TICKS) * 1000,
    cpuSeconds: (Number(stat[11]) + Number(stat[12])) / TICKS,
    uid: Number(/^Uid:\s+(\d+)/m.exec(status)?.[1] ?? 0),
    gid: Number(/^Gid:\s+(\d+)/m.exec(status)?.[1] ?? 0),
    comm,
    args: args || `[${comm}]`,
  };
}

const two = (n: number) => String(n).padStart(2, "0");

/** ps's TIME: `[DD-]HH:MM:SS`. */
function cpuTime(seconds: number): string {
  const s = Math.floor(seconds);
  const days = Math.floor(s / 86400);
  const hms = `${two(Math.floor(s / 3600) % 24)}:${two(Math.floor(s / 60) % 60)}:${two(s % 60)}`;
  return days > 0 ? `${days}-${hms}` : hms;
}

/** ps's ELAPSED: `[[DD-]hh:]mm:ss`. */
function elapsed(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const days = Math.floor(s / 86400);
  const h = Math.floor(s / 3600) % 24;
  const ms2 = `${two(Math.floor(s / 60) % 60)}:${two(s % 60)}`;
  if (days > 0) return `${days}-${two(h)}:${ms2}`;
  return h > 0 ? `${two(h)}:${ms2}` : ms2;
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** ps's STIME/START: `HH:MM` today, `MmmDD` this year, else the year. */
function startTime(startMs: number, nowMs: number): string {
  const d = new Date(startMs);
  const now = new Date(nowMs);
  if (d.toDateString() === now.toDateString()) return `${two(d.getHours())}:${two(d.getMinutes())}`;
  if (d.getFullYear() === now.getFullYear()) return `${MONTHS[d.getMonth()]}${two(d.getDate())}`;
  return String(d.getFullYear());
}

/** The terminal's name as ps shows it (`pts/0`, `tty1`, `?`). */
function ttyName(nr: number): string {
  if (nr === 0) return "?";
  const major = (nr >> 8) & 0xfff;
  const minor = (nr & 0xff) | ((nr >> 12) & 0xfff00);
  if (major >= 136 && major <= 143) return `pts/${(major - 136) * 256 + minor}`;
  if (major === 4 && minor < 64) return `tty${minor}`;
  return `${major}:${minor}`;
}

/** BSD STAT: the state and its flags (`<` `N` `s` `l` `+`). */
function statFlags(p: ProcInfo): string {
  return p.state + (p.nice < 0 ? "<" : p.nice > 0 ? "N" : "") + (p.pid === p.sid ? "s" : "") +
    (p.threads > 1 ? "l" : "") + (p.tpgid === p.pgid && p.ttyNr !== 0 ? "+" : "");
}

function percentCpu(p: ProcInfo, c: TopContext): number {
  const secs = (c.nowMs - p.startMs) / 1000;
  return secs > 0 ? (p.cpuSeconds / secs) * 100 : 0;
}

type Value = (p: ProcInfo, c: TopContext) => string;

/** ps's format specifiers: header and value. */
const SPECIFIERS: Record<string, { header: string; value: Value }> = {
  pid: { header: "PID", value: (p) => String(p.pid) },
  ppid: { header: "PPID", value: (p) => String(p.ppid) },
  pgid: { header: "PGID", value: (p) => String(p.pgid) },
  pgrp: { header: "PGRP", value: (p) => String(p.pgid) },
  sid: { header: "SID", value: (p) => String(p.sid) },
  sess: { header: "SESS", value: (p) => String(p.sid) },
  uid: { header: "UID", value: (p) => String(p.uid) },
  euid: { header: "EUID", value: (p) => String(p.uid) },
  user: { header: "USER", value: (p, c) => c.userName(p.uid) },
  euser: { header: "EUSER", value: (p, c) => c.userName(p.uid) },
  uname: { header: "USER", value: (p, c) => c.userName(p.uid) },
  gid: { header: "GID", value: (p) => String(p.gid) },
  egid: { header: "EGID", value: (p) => String(p.gid) },
  group: { header: "GROUP", value: (p, c) => c.groupName(p.gid) },
  egroup: { header: "EGROUP", value: (p, c) => c.groupName(p.gid) },
  comm: { header: "COMMAND", value: (p) => p.comm },
  ucomm: { header: "COMMAND", value: (p) => p.comm },
  args: { header: "COMMAND", value: (p) => p.args },
  command: { header: "COMMAND", value: (p) => p.args },
  cmd: { header: "CMD", value: (p) => p.args },
  etime: { header: "ELAPSED", value: (p, c) => elapsed(c.nowMs - p.startMs) },
  etimes: { header: "ELAPSED", value: (p, c) => String(Math.floor((c.nowMs - p.startMs) / 1000)) },
  time: { header: "TIME", value: (p) => cpuTime(p.cpuSeconds) },
  cputime: { header: "TIME", value: (p) => cpuTime(p.cpuSeconds) },
  stime: { header: "STIME", value: (p, c) => startTime(p.startMs, c.nowMs) },
  start_time: { header: "START", value: (p, c) => startTime(p.startMs, c.nowMs) },
  start: { header: "STARTED", value: (p, c) => startTime(p.startMs, c.nowMs) },
  pcpu: { header: "%CPU", value: (p, c) => percentCpu(p, c).toFixed(1) },
  "%cpu": { header: "%CPU", value: (p, c) => percentCpu(p, c).toFixed(1) },
  c: { header: "C", value: (p, c) => String(Math.floor(percentCpu(p, c))) },
  pmem: { header: "%MEM", value: (p, c) => ((p.rssKiB / c.memTotalKiB) * 100).toFixed(1) },
  "%mem": { header: "%MEM", value: (p, c) => ((p.rssKiB / c.memTotalKiB) * 100).toFixed(1) },
  vsz: { header: "VSZ", value: (p) => String(p.vszKiB) },
  vsize: { header: "VSZ", value: (p) => String(p.vszKiB) },
  rss: { header: "RSS", value: (p) => String(p.rssKiB) },
  rssize: { header: "RSS", value: (p) => String(p.rssKiB) },
  tty: { header: "TT", value: (p) => ttyName(p.ttyNr) },
  tt: { header: "TT", value: (p) => ttyName(p.ttyNr) },
  tname: { header: "TTY", value: (p) => ttyName(p.ttyNr) },
  stat: { header: "STAT", value: statFlags },
  s: { header: "S", value: (p) => p.state },
  state: { header: "S", value: (p) => p.state },
  nice: { header: "NI", value: (p) => String(p.nice) },
  ni: { header: "NI", value: (p) => String(p.nice) },
  nlwp: { header: "NLWP", value: (p) => String(p.threads) },
  thcount: { header: "THCNT", value: (p) => String(p.threads) },
};

/** A column of the output. */
export interface TopColumn {
  readonly header: string;
  readonly value: Value;
  /** The column is a PID column (docker needs one to pick the container's rows). */
  readonly isPid?: boolean;
}

function spec(name: string, header?: string): TopColumn {
  const s = SPECIFIERS[name.toLowerCase()];
  if (!s) throw new TopError(`ps: error: unknown user-defined format specifier "${name}"`);
  return { header: header ?? s.header, value: s.value, isPid: name.toLowerCase() === "pid" };
}

/** `-o` lists: `pid,user,args`, `pid=P` renames; a list may also be split into arguments. */
function columnList(list: string): TopColumn[] {
  const out: TopColumn[] = [];
  // As ps: after the first `=`, the rest of the list is that column's header.
  const eq = list.indexOf("=");
  const names = (eq < 0 ? list : list.slice(0, eq)).split(/[,\s]+/).filter(Boolean);
  names.forEach((n, i) => {
    out.push(spec(n, eq >= 0 && i === names.length - 1 ? list.slice(eq + 1) : undefined));
  });
  return out;
}

/** `ps -ef`: docker top's default. */
const FULL = ["uid=UID", "pid", "ppid", "c", "stime", "tname=TTY", "time", "cmd"];
/** BSD `u`: `ps aux`. */
const USER = [
  "user",
  "pid",
  "%cpu",
  "%mem",
  "vsz",
  "rss",
  "tname=TTY",
  "stat",
  "start=START",
  "time",
  "command",
];
/** Plain `ps -e`. */
const PLAIN = ["pid", "tname=TTY", "time", "cmd"];

function named(list: readonly string[], userNames: boolean): TopColumn[] {
  return list.map((item) => {
    const [name, header] = item.split("=");
    const col = spec(name, header);
    // ps -ef's UID column shows names.
    return name === "uid" && userNames ? { ...col, value: SPECIFIERS.user.value } : col;
  });
}

/** The columns `ps ARGS` would print (docker's default: `-ef`). */
export function topColumns(args: readonly string[]): TopColumn[] {
  const list = args.length === 0 ? ["-ef"] : args;
  const columns: TopColumn[] = [];
  let full = false;
  let bsdUser = false;
  for (let i = 0; i < list.length; i++) {
    const arg = list[i];
    if (arg === "--format" || arg === "-o" || arg === "o" || arg === "--cols") {
      if (arg === "--cols") {
        i++;
        continue;
      }
      const value = list[++i];
      if (value === undefined) throw new TopError(`ps: error: ${arg} requires a format list`);
      columns.push(...columnList(value));
      continue;
    }
    if (arg.startsWith("--format=")) {
      columns.push(...columnList(arg.slice("--format=".length)));
      continue;
    }
    const unix = arg.startsWith("-");
    const letters = unix ? arg.slice(1) : arg;
    for (let j = 0; j < letters.length; j++) {
      const ch = letters[j];
      if (ch === "o") {
        // The list follows in the same argument or as the next one.
        const rest = letters.slice(j + 1) || list[++i];
        if (rest === undefined) throw new TopError("ps: error: o requires a format list");
        columns.push(...columnList(rest));
        break;
      }
      if (unix && ch === "f") full = true;
      else if (!unix && ch === "u") bsdUser = true;
      else if (!"aexAwHTrjlFLmy".includes(ch) && !(unix && ch === "d")) {
        throw new TopError(`ps: error: unsupported option ${unix ? "-" : ""}${ch}`);
      }
    }
  }
  const chosen = columns.length > 0
    ? columns
    : bsdUser
    ? named(USER, true)
    : full
    ? named(FULL, true)
    : named(PLAIN, false);
  if (!chosen.some((c) => c.isPid)) throw new TopError("Couldn't find PID field in ps output");
  return chosen;
}

/** The table's titles and rows for `procs`, as ps would print them. */
export function topRows(
  procs: readonly ProcInfo[],
  columns: readonly TopColumn[],
  context: TopContext,
): { titles: string[]; rows: string[][] } {
  return {
    titles: columns.map((c) => c.header),
    rows: procs.map((p) => columns.map((c) => c.value(p, context))),
  };
}

function namesFrom(path: string): Map<number, string> {
  const out = new Map<number, string>();
  try {
    for (const line of Deno.readTextFileSync(path).split("\n")) {
      const [name, , id] = line.split(":");
      if (name && id !== undefined && !out.has(Number(id))) out.set(Number(id), name);
    }
  } catch { /* no such file: ids stay numbers */ }
  return out;
}

/** The host's context: now, total memory, and names from the host's passwd and group. */
export function hostTopContext(): TopContext {
  const meminfo = Deno.readTextFileSync("/proc/meminfo");
  const users = namesFrom("/etc/passwd");
  const groups = namesFrom("/etc/group");
  return {
    nowMs: Date.now(),
    memTotalKiB: Number(/^MemTotal:\s+(\d+)/m.exec(meminfo)?.[1] ?? 1),
    userName: (uid) => users.get(uid) ?? String(uid),
    groupName: (gid) => groups.get(gid) ?? String(gid),
  };
}

/** Boot time in ms since the epoch (/proc/stat's btime). */
export function bootTimeMs(): number {
  return Number(/^btime (\d+)/m.exec(Deno.readTextFileSync("/proc/stat"))?.[1] ?? 0) * 1000;
}
