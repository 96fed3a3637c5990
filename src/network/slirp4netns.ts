/**
 * Outbound access for rootless containers through slirp4netns, started as Debian's podman 4.3
 * starts it for its rootless default network: `--configure` makes `tap0` in the container's
 * namespace (10.0.2.100/24, gateway 10.0.2.2, MTU 65520), `--disable-host-loopback` keeps the
 * host's 127.0.0.1 out of reach, `--enable-seccomp` confines it. It joins the container's user
 * namespace (`--userns-path`) since tsbox runs outside it; podman's `--enable-sandbox` is left
 * out, as it needs slirp4netns itself to run inside a user namespace (from the host's it fails
 * with "setegid(0)").
 *
 * It is a child of the supervisor with its exit fd on stdin (`-e 0`): when the supervisor closes
 * that pipe, or dies and the kernel closes it, slirp4netns exits, so a killed supervisor leaves
 * none behind. Its pid and start time are also recorded for `rm -f` from another process.
 *
 * @module
 */
import { TsboxError } from "../errors.ts";
import { startTime } from "../container/proc.ts";
import { findHelper, ownUserNamespace, stopRecorded } from "./pasta.ts";

/** The pid file of a container's slirp4netns in its state directory ("PID START"). */
export const SLIRP_PID_FILE = "slirp4netns.pid";

/** How long the namespace may take to get its default route. */
const READY_MS = 10_000;

/** The slirp4netns program (`TSBOX_SLIRP4NETNS` names another), or undefined. */
export function findSlirp4netns(): string | undefined {
  return findHelper("slirp4netns", "TSBOX_SLIRP4NETNS");
}

/** slirp4netns's arguments for the namespaces of container PID 1 `pid`. */
export function slirpArgs(pid: number, joinUserns: boolean): string[] {
  return [
    "--configure",
    "--mtu=65520",
    "--disable-host-loopback",
    "--enable-seccomp",
    "-e",
    "0",
    ...(joinUserns ? [`--userns-path=/proc/${pid}/ns/user`] : []),
    "--netns-type=path",
    `/proc/${pid}/ns/net`,
    "tap0",
  ];
}

/** Running children of this process, by state directory: stopped by closing their exit fd. */
const children = new Map<string, Deno.ChildProcess>();

/** Whether the namespace of `pid` has its default route on tap0 yet (what --configure sets). */
function routed(pid: number): boolean {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/net/route`).split("\n")
      .some((l) => /^tap0\s+00000000\s/.test(l));
  } catch {
    return false;
  }
}

/**
 * Starts slirp4netns for the container whose PID 1 is `pid` (held before its program runs) and
 * resolves once its namespace has the route out.
 */
export async function startSlirp4netns(stateDir: string, pid: number): Promise<void> {
  const program = findSlirp4netns();
  if (program === undefined) throw new TsboxError("slirp4netns is not installed");
  const child = new Deno.Command(program, {
    args: slirpArgs(pid, !ownUserNamespace(pid)),
    stdin: "piped",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  children.set(stateDir, child);
  let complaint = "";
  const reading = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      complaint = (complaint + chunk).slice(-2000);
    }
  })().catch(() => {});
  let ended: Deno.CommandStatus | undefined;
  void child.status.then((s) => ended = s);
  const start = startTime(child.pid);
  if (start !== undefined) {
    Deno.writeTextFileSync(`${stateDir}/${SLIRP_PID_FILE}`, `${child.pid} ${start}\n`);
  }
  const until = Date.now() + READY_MS;
  while (!routed(pid)) {
    if (ended !== undefined || Date.now() > until) {
      stopSlirp4netns(stateDir, pid);
      await reading;
      const last = complaint.trim().split("\n").filter((l) => !/tapfd=/.test(l)).at(-1);
      throw new TsboxError(
        ended !== undefined
          ? `slirp4netns failed with exit code ${ended.code}: ${last ?? "no message"}`
          : `slirp4netns did not configure the network within ${READY_MS / 1000} s`,
      );
    }
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * Ends the slirp4netns of the container with state directory `stateDir`: this process's child
 * by closing its exit fd, or one another process started by its recorded pid and start time
 * (its command line names the namespace of PID 1 `pid`, when known). Safe to repeat.
 */
export function stopSlirp4netns(stateDir: string, pid?: number): void {
  const child = children.get(stateDir);
  if (child) {
    children.delete(stateDir);
    child.stdin.close().catch(() => {});
    try {
      child.kill("SIGKILL");
    } catch {
      // Ended already.
    }
    // Reaped by Deno; nothing else waits for it.
    child.status.catch(() => {});
  }
  const pidFile = `${stateDir}/${SLIRP_PID_FILE}`;
  stopRecorded(pidFile, pid === undefined ? "--netns-type=path" : `/proc/${pid}/ns/net`);
}
