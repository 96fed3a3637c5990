/**
 * `exec` into a running container: the environment docker builds for it, the refusal when the
 * container is not running, and running the command with the terminal or stdio attached (used
 * by the CLI and the API).
 *
 * @module
 */
import { closeFd } from "../../ffi/process.ts";
import type { ContainerRecord } from "./state.ts";
import { TsboxError } from "../errors.ts";
import { execInContainer, type ExecSpec } from "../runtime/exec.ts";
import { dockerCapabilitySets } from "../runtime/program.ts";
import { attachTerminal, userWindowSize } from "../runtime/tty.ts";

/** The flags of `exec`. */
export interface ExecFlags {
  interactive?: boolean;
  tty?: boolean;
  detach?: boolean;
  env?: string[];
  workdir?: string;
  user?: string;
}

/** The container is not in a state `exec` can enter (docker's daemon refusal: exit code 1). */
export class NotRunningError extends TsboxError {
  override readonly exitCode = 1;
  constructor(readonly containerId: string, state: string) {
    super(
      state === "paused"
        ? `container ${containerId} is paused, unpause the container before exec`
        : `container ${containerId} is not running`,
    );
    this.name = "NotRunningError";
  }
}

function setEnv(env: string[], entry: string): void {
  const name = entry.split("=", 1)[0];
  const i = env.findIndex((e) => e.split("=", 1)[0] === name);
  if (i >= 0) env[i] = entry;
  else env.push(entry);
}

/**
 * The exec's environment as docker builds it: the container's (image + run's `-e`), TERM=xterm
 * with `-t` unless set, then exec's `-e` (`NAME` alone copies the caller's value, if any).
 */
export function execEnv(
  containerEnv: readonly string[],
  flags: Pick<ExecFlags, "env" | "tty">,
  hostEnv: (name: string) => string | undefined = (n) => Deno.env.get(n),
): string[] {
  const env = [...containerEnv];
  if (flags.tty && !env.some((e) => e.startsWith("TERM="))) env.push("TERM=xterm");
  for (const e of flags.env ?? []) {
    if (e.includes("=")) setEnv(env, e);
    else {
      const v = hostEnv(e);
      if (v !== undefined) setEnv(env, `${e}=${v}`);
    }
  }
  return env;
}

const FORWARDED: [Deno.Signal, number][] = [
  ["SIGINT", 2],
  ["SIGTERM", 15],
  ["SIGHUP", 1],
  ["SIGQUIT", 3],
];

/**
 * What `exec` runs for `command` in the container of `record`: its environment, directory and
 * user unless the flags say otherwise, and confined as its PID 1 is (the capabilities, seccomp
 * profile, no_new_privs and rlimits of `run`). The healthcheck's probes are built here too, so
 * that they run exactly as `exec` would run them.
 */
export function execSpecFor(
  record: ContainerRecord,
  command: readonly string[],
  flags: ExecFlags,
  stdio: ExecSpec["stdio"],
): ExecSpec {
  return {
    argv: command,
    env: execEnv(record.config.env, flags),
    cwd: flags.workdir ?? record.config.cwd,
    user: flags.user ?? record.config.user,
    stdio,
    tty: flags.tty ? { size: flags.detach ? undefined : userWindowSize() } : undefined,
    capabilities: record.config.security?.capabilities &&
      dockerCapabilitySets(record.config.security.capabilities),
    security: record.config.security?.security,
  };
}

/** Runs `command` in the running container of `record`; returns its exit code (0 with -d). */
export async function execRunning(
  record: ContainerRecord,
  command: readonly string[],
  flags: ExecFlags,
): Promise<number> {
  const attachInput = flags.interactive && !flags.detach;
  if (record.state !== "running" || record.pid === undefined) {
    throw new NotRunningError(record.id, record.state);
  }
  const spec = execSpecFor(
    record,
    command,
    flags,
    flags.detach
      ? ["null", "null", "null"]
      : [attachInput ? "inherit" : "null", "inherit", "inherit"],
  );
  const proc = await execInContainer(record.pid, spec);
  if (flags.detach) {
    if (proc.terminal !== undefined) closeFd(proc.terminal);
    return 0;
  }
  const session = proc.terminal !== undefined
    ? attachTerminal(proc.terminal, { stdin: attachInput ?? false })
    : undefined;
  // With a pty, ctrl-c arrives as a byte through the raw terminal; a signal sent to tsbox
  // itself (kill, or ctrl-c without -i) goes on to the command.
  const off = FORWARDED.map(([sig, num]) => {
    const handler = () => proc.kill(num);
    Deno.addSignalListener(sig, handler);
    return () => Deno.removeSignalListener(sig, handler);
  });
  try {
    return await proc.wait();
  } finally {
    for (const f of off) f();
    await session?.stop();
    if (proc.terminal !== undefined) closeFd(proc.terminal);
  }
}
