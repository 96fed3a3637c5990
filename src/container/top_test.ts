import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { type ProcInfo, topColumns, TopError, topRows } from "./top.ts";

const headers = (args: string[]) => topColumns(args).map((c) => c.header);

Deno.test("ps options select docker top's columns with ps's headers", () => {
  assertEquals(headers([]), ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]);
  assertEquals(headers(["-ef"]), headers([]));
  assertEquals(headers(["aux"]).slice(0, 4), ["USER", "PID", "%CPU", "%MEM"]);
  assertEquals(headers(["-o", "pid,user,args"]), ["PID", "USER", "COMMAND"]);
  assertEquals(headers(["-eo", "pid,comm"]), ["PID", "COMMAND"]);
  assertEquals(headers(["-opid,etime"]), ["PID", "ELAPSED"]);
  assertEquals(headers(["o", "pid", "o", "nice"]), ["PID", "NI"]);
  assertEquals(headers(["-o", "pid,args=THE COMMAND"]), ["PID", "THE COMMAND"]);
  assertEquals(headers(["-e"]), ["PID", "TTY", "TIME", "CMD"]);
  assertThrows(() => topColumns(["-o", "user"]), TopError, "Couldn't find PID field");
  assertThrows(() => topColumns(["-o", "pid,nope"]), TopError, 'specifier "nope"');
  assertThrows(() => topColumns(["-Z"]), TopError, "unsupported option -Z");
});

Deno.test("values are formatted as ps formats them", () => {
  const now = Date.UTC(2026, 0, 2, 12, 0, 0);
  const p: ProcInfo = {
    pid: 42,
    ppid: 1,
    pgid: 42,
    sid: 42,
    tpgid: 42,
    uid: 0,
    gid: 0,
    ttyNr: (136 << 8) | 3,
    state: "S",
    nice: 0,
    threads: 1,
    vszKiB: 1000,
    rssKiB: 512,
    startMs: now - 3_725_000,
    cpuSeconds: 3725,
    comm: "sh",
    args: "sh -c x",
  };
  const ctx = {
    nowMs: now,
    memTotalKiB: 1024,
    userName: () => "root",
    groupName: () => "root",
  };
  const { rows } = topRows([p], topColumns(["-o", "pid,etime,time,tty,stat,pmem,user"]), ctx);
  assertEquals(rows, [["42", "01:02:05", "01:02:05", "pts/3", "Ss+", "50.0", "root"]]);
});
