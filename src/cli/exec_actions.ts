/**
 * The work of `tsbox exec`: find the running container, merge its config with the flags, start
 * the command inside it, connect the terminal or stdio, forward signals, and return its code.
 *
 * @module
 */
import { isTerminal } from "../../ffi/terminal.ts";
import { closeFd } from "../../ffi/process.ts";
import { type ContainerRecord, reconcile, requireContainer } from "../container/state.ts";
import { TsboxError, UsageError } from "../errors.ts";
import { ContainerNotRunningError, execInContainer, type ExecSpec } from "../runtime/exec.ts";
import { attachTerminal, userWindowSize } from "../runtime/tty.ts";
import { Store } from "../store/mod.ts";
import type { GlobalOptions } from "./globals.ts";

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

/** Runs `tsbox exec`; returns the command's exit code (0 with `-d`). */
export async function execCommand(
  globals: GlobalOptions,
  name: string,
  command: readonly string[],
  flags: ExecFlags,
): Promise<number> {
  if (command.length === 0) throw new UsageError("exec needs a command");
  if (flags.workdir !== undefined && !flags.workdir.startsWith("/")) {
    throw new UsageError(`the working directory '${flags.workdir}' is invalid`);
  }
  const attachInput = flags.interactive && !flags.detach;
  if (flags.tty && attachInput && !isTerminal(0)) {
    throw new UsageError("the input device is not a TTY");
  }
  const store = await Store.open(globals.root);
  let record: ContainerRecord;
  try {
    record = reconcile(store, requireContainer(store, name));
  } finally {
    store.close();
  }
  try {
    return await execRunning(record, command, flags);
  } catch (err) {
    // docker prints the daemon's refusal as is and exits 1.
    const refusal = err instanceof NotRunningError
      ? err
      : err instanceof ContainerNotRunningError
      ? new NotRunningError(record.id, "exited")
      : undefined;
    if (!refusal) throw err;
    console.error(`Error response from daemon: ${refusal.message}`);
    return refusal.exitCode;
  }
}

async function execRunning(
  record: ContainerRecord,
  command: readonly string[],
  flags: ExecFlags,
): Promise<number> {
  const attachInput = flags.interactive && !flags.detach;
  if (record.state !== "running" || record.pid === undefined) {
    throw new NotRunningError(record.id, record.state);
  }
  const spec: ExecSpec = {
    argv: command,
    env: execEnv(record.config.env, flags),
    cwd: flags.workdir ?? record.config.cwd,
    user: flags.user ?? record.config.user,
    stdio: flags.detach
      ? ["null", "null", "null"]
      : [attachInput ? "inherit" : "null", "inherit", "inherit"],
    tty: flags.tty ? { size: flags.detach ? undefined : userWindowSize() } : undefined,
    // Confined as PID 1 is: the capabilities, seccomp profile, no_new_privs and rlimits of run.
    capabilities: record.config.security?.capabilities,
    security: record.config.security?.security,
  };
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
