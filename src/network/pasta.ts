/**
 * Outbound access for rootless containers through pasta (Debian's `passt` package), started as
 * podman starts it: once PID 1 sits in its new namespaces, `pasta --config-net` joins the
 * container's user and network namespaces, makes a tap interface there with the host's address
 * and routes (copied from the host's default-route interface), and forwards what the container
 * sends as ordinary sockets of the user on the host. Port forwarding of pasta's own stays off
 * (`-t/-u/-T/-U none`): `-p` keeps tsbox's userspace proxy, and the container must not reach the
 * host's loopback services (`--no-map-gw`, no namespace-to-host forwarding).
 *
 * pasta forks into the background once the namespace is configured, so its launcher's exit is
 * the moment the network is up. It does not quit when a namespace named by /proc path loses its
 * last process, so it is ended here: by the pid it wrote to the container's state directory,
 * checked by its start time and by its command line (which names that very file), so a reused
 * pid is never signalled.
 *
 * @module
 */
import { killPid } from "../../ffi/process.ts";
import { TsboxError } from "../errors.ts";
import { processAlive, startTime } from "../container/proc.ts";

/** The pid file of a container's pasta, in its state directory: "PID START" once started. */
export const PASTA_PID_FILE = "pasta.pid";

const SIGKILL = 9;

/** pasta's options besides the namespaces, as podman passes them by default. */
const PASTA_OPTIONS = [
  "--config-net",
  // Without it the gateway address leads to the host's 127.0.0.1: host-only services.
  "--no-map-gw",
  "--quiet",
  "-t",
  "none",
  "-u",
  "none",
  "-T",
  "none",
  "-U",
  "none",
];

function executable(path: string): boolean {
  try {
    const info = Deno.statSync(path);
    return info.isFile && ((info.mode ?? 0) & 0o111) !== 0;
  } catch {
    return false;
  }
}

/**
 * A helper program: `$<envName>` when set (a path), else `name` on PATH or in /usr/bin and
 * /usr/sbin; undefined when there is none.
 */
export function findHelper(
  name: string,
  envName: string,
  env: Readonly<Record<string, string | undefined>> = Deno.env.toObject(),
): string | undefined {
  const named = env[envName];
  if (named !== undefined) return named.startsWith("/") && executable(named) ? named : undefined;
  const dirs = [...(env.PATH ?? "").split(":"), "/usr/bin", "/usr/sbin"];
  return dirs.filter((d) => d.startsWith("/")).map((d) => `${d}/${name}`).find(executable);
}

/** The pasta program (`TSBOX_PASTA` names another), or undefined. */
export function findPasta(): string | undefined {
  return findHelper("pasta", "TSBOX_PASTA");
}

/**
 * Why /dev/net/tun cannot serve a user-mode network here (pasta and slirp4netns open it inside
 * the container's namespace; Debian makes it 0666), or undefined when it opens.
 */
export function tunProblem(): string | undefined {
  try {
    Deno.openSync("/dev/net/tun", { read: true, write: true }).close();
    return undefined;
  } catch (err) {
    const why = (err as Error).message.replace(/ \(os error \d+\).*$/, "").toLowerCase();
    return `/dev/net/tun cannot be opened (${why})`;
  }
}

/** Whether `pid` lives in this process's user namespace (not so rootless or userns-remapped). */
export function ownUserNamespace(pid: number): boolean {
  try {
    const mine = Deno.statSync("/proc/self/ns/user");
    const its = Deno.statSync(`/proc/${pid}/ns/user`);
    return mine.ino === its.ino && mine.dev === its.dev;
  } catch {
    return false;
  }
}

/** pasta's arguments for the namespaces of `pid`, writing its own pid to `pidFile`. */
export function pastaArgs(pid: number, pidFile: string, joinUserns: boolean): string[] {
  return [
    ...PASTA_OPTIONS,
    ...(joinUserns ? ["--userns", `/proc/${pid}/ns/user`] : []),
    "--netns",
    `/proc/${pid}/ns/net`,
    "--pid",
    pidFile,
  ];
}

/** pasta's complaint without its syslog noise (it also tries /dev/log, absent in many places). */
function complaint(stderr: Uint8Array): string {
  const lines = new TextDecoder().decode(stderr).split("\n").map((l) => l.trim())
    .filter((l) => l !== "" && !/to syslog$/.test(l));
  return lines.at(-1) ?? "no message";
}

/**
 * Starts pasta for the container whose PID 1 is `pid` (held before its program runs) and
 * returns once the namespace has its interface, address and routes. Its pid and start time are
 * kept in `<stateDir>/pasta.pid` for {@link stopPasta}.
 */
export function startPasta(stateDir: string, pid: number): number {
  const program = findPasta();
  if (program === undefined) throw new TsboxError("pasta is not installed");
  const pidFile = `${stateDir}/${PASTA_PID_FILE}`;
  const out = new Deno.Command(program, {
    args: pastaArgs(pid, pidFile, !ownUserNamespace(pid)),
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).outputSync();
  if (!out.success) {
    stopPasta(stateDir);
    throw new TsboxError(`pasta failed with exit code ${out.code}: ${complaint(out.stderr)}`);
  }
  const child = readPidFile(pidFile)?.pid;
  const start = child === undefined ? undefined : startTime(child);
  if (child === undefined || start === undefined) {
    throw new TsboxError("pasta ended right after it had configured the network");
  }
  Deno.writeTextFileSync(pidFile, `${child} ${start}\n`);
  return child;
}

/** Reads a helper's pid file: "PID" (the helper's own) or "PID START" (recorded by tsbox). */
export function readPidFile(path: string): { pid: number; start?: number } | undefined {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch {
    return undefined;
  }
  const [pid, start] = text.trim().split(/\s+/).map(Number);
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  return { pid, start: Number.isInteger(start) ? start : undefined };
}

function commandLine(pid: number): string[] {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0");
  } catch {
    return [];
  }
}

/**
 * Ends the helper recorded in `pidFile` when it still runs (its start time as recorded, and its
 * command line holding the argument `mark`, so a reused pid is never signalled), then removes
 * the file. Returns whether it was signalled.
 */
export function stopRecorded(pidFile: string, mark: string): boolean {
  const seen = readPidFile(pidFile);
  let killed = false;
  if (seen && processAlive(seen.pid, seen.start) && commandLine(seen.pid).includes(mark)) {
    killed = killPid(seen.pid, SIGKILL);
  }
  try {
    Deno.removeSync(pidFile);
  } catch {
    // Gone already, or the directory with it.
  }
  return killed;
}

/**
 * Ends the pasta of the container with state directory `stateDir`, if one runs (also one a
 * killed supervisor left), and forgets its pid. Safe to repeat and to call from any process of
 * the same user. Returns whether a pasta was signalled.
 */
export function stopPasta(stateDir: string): boolean {
  const pidFile = `${stateDir}/${PASTA_PID_FILE}`;
  // Its command line names this very pid file: a reused pid is never taken for it, even when
  // a supervisor died before it could record the start time.
  return stopRecorded(pidFile, pidFile);
}
