/**
 * Helpers of the stay-up tests (issue 24): what the kernel says about processes and cgroups,
 * waiting for a condition, tsbox against one store.
 *
 * @module
 */
import { assertEquals, assertOk } from "./assert.ts";
import { type CliResult, tsbox } from "./cli.ts";

export const isRoot = Deno.uid() === 0;

export function rootTest(name: string, fn: () => Promise<void>) {
  Deno.test({ name, ignore: !isRoot, sanitizeResources: false, sanitizeOps: false, fn });
}

/** The fields of /proc/PID/stat after the command name (0: state, 1: ppid, 19: start time). */
export function stat(pid: number): string[] | undefined {
  try {
    const text = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return text.slice(text.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined;
  }
}

/** Alive and not a zombie (a killed process may wait a while for this machine's init). */
export function alive(pid: number): boolean {
  const s = stat(pid);
  return s !== undefined && !/^[ZX]/.test(s[0]);
}

export function comm(pid: number): string {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/comm`).trim();
  } catch {
    return "";
  }
}

export async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 20_000) {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Live processes in container `id`'s cgroup (any v1 controller or a v2 tsbox/ID dir). */
export function cgroupProcs(id: string): number[] {
  const found = new Set<number>();
  const dirs = ["/sys/fs/cgroup/tsbox"];
  for (const e of Deno.readDirSync("/sys/fs/cgroup")) dirs.push(`/sys/fs/cgroup/${e.name}/tsbox`);
  for (const d of dirs) {
    try {
      for (const line of Deno.readTextFileSync(`${d}/${id}/cgroup.procs`).split("\n")) {
        if (line && alive(Number(line))) found.add(Number(line));
      }
    } catch { /* no such cgroup */ }
  }
  return [...found];
}

/** Live processes whose command line names container `id` (its supervisor, its watcher). */
export function namingId(id: string): number[] {
  const pids: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    const pid = Number(e.name);
    if (!Number.isInteger(pid)) continue;
    try {
      if (Deno.readTextFileSync(`/proc/${pid}/cmdline`).includes(id) && alive(pid)) pids.push(pid);
    } catch { /* gone meanwhile */ }
  }
  return pids;
}

export function cli(root: string, env: Record<string, string> = {}) {
  const t = (args: string[]) => tsbox(args, { root, env });
  const ok = async (args: string[]): Promise<string> => {
    const r: CliResult = await t(args);
    assertEquals(r.code, 0, `${args.join(" ")}: ${r.stdout}${r.stderr}`);
    return r.stdout;
  };
  const inspect = async (name: string) => JSON.parse(await ok(["inspect", name]))[0];
  return { t, ok, inspect };
}

/** A TCP port nothing listens on right now. */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** Live children of `parent` named `name` (the watchers of a supervisor: `tsbox-watch`). */
export function childrenNamed(parent: number, name: string): number[] {
  const pids: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    const pid = Number(e.name);
    if (!Number.isInteger(pid)) continue;
    const s = stat(pid);
    if (s && Number(s[1]) === parent && alive(pid) && comm(pid) === name) pids.push(pid);
  }
  return pids;
}

/** A user to run a command as (systemd's user manager runs a unit's commands as its user). */
export interface RunAs {
  readonly uid: number;
  readonly gid: number;
  readonly home: string;
  /** The rest of that user's environment (XDG_RUNTIME_DIR, DENO_DIR...). */
  readonly env?: Record<string, string>;
}

function wrap(as: RunAs | undefined, argv: string[]): string[] {
  if (!as) return argv;
  return ["setpriv", `--reuid=${as.uid}`, `--regid=${as.gid}`, "--init-groups", "--", ...argv];
}

export const hasSystemdAnalyze = (() => {
  try {
    return Deno.statSync("/usr/bin/systemd-analyze").isFile;
  } catch {
    return false;
  }
})();

/** `systemd-analyze [--user] verify UNIT`: exit code and output. */
export async function verifyUnit(
  path: string,
  user: boolean,
  as?: RunAs,
): Promise<CliResult> {
  const runtime = await Deno.makeTempDir({ prefix: "tsbox-xdg-" });
  if (as) await Deno.chown(runtime, as.uid, as.gid);
  try {
    const [cmd, ...args] = wrap(as, [
      "systemd-analyze",
      ...(user ? ["--user"] : []),
      "verify",
      path,
    ]);
    const out = await new Deno.Command(cmd, {
      args,
      env: { XDG_RUNTIME_DIR: runtime, ...(as ? { HOME: as.home } : {}) },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dec = new TextDecoder();
    return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  } finally {
    await Deno.remove(runtime, { recursive: true });
  }
}

/** An Exec line of a unit as systemd splits it: words, double quotes, `\` escapes, `%%`, `$$`. */
export function unitWords(line: string): string[] {
  const words: string[] = [];
  let i = 0;
  while (i < line.length) {
    if (line[i] === " ") {
      i++;
      continue;
    }
    let word = "";
    if (line[i] === '"') {
      for (i++; i < line.length && line[i] !== '"'; i++) {
        if (line[i] === "\\") i++;
        word += line[i];
      }
      i++;
    } else {
      for (; i < line.length && line[i] !== " "; i++) word += line[i];
    }
    words.push(word.replaceAll("%%", "%").replaceAll("$$", "$"));
  }
  return words;
}

/**
 * Runs the unit's `key=` command by hand, with the unit's Environment= (as `as`, with that user's
 * environment only, when given); returns its exit code and output.
 */
export async function runUnitLine(text: string, key: string, as?: RunAs): Promise<CliResult> {
  const line = text.match(new RegExp(`^${key}=(.*)$`, "m"))?.[1];
  assertOk(line, `${key} in the unit`);
  const env = Object.fromEntries(
    [...text.matchAll(/^Environment=(.*)$/gm)].map((m) => {
      const [kv] = unitWords(m[1]);
      return [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)];
    }),
  );
  const [cmd, ...args] = wrap(as, unitWords(line.replace(/^-/, "")));
  const out = await new Deno.Command(cmd, {
    args,
    // As a user: only that user's environment, as its systemd would give it.
    clearEnv: as !== undefined,
    env: { ...as?.env, ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}
