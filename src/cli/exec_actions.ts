/**
 * The work of `tsbox exec`: find the running container, merge its config with the flags, start
 * the command inside it, connect the terminal or stdio, forward signals, and return its code.
 *
 * @module
 */
import { isTerminal } from "../../ffi/terminal.ts";
import { type ExecFlags, execRunning, NotRunningError } from "../container/exec.ts";
import { type ContainerRecord, reconcile, requireContainer } from "../container/state.ts";
import { UsageError } from "../errors.ts";
import { ContainerNotRunningError } from "../runtime/exec.ts";
import { Store } from "../store/mod.ts";
import { containerEvent } from "../events/log.ts";
import type { GlobalOptions } from "./globals.ts";

export type { ExecFlags };

export { execEnv, NotRunningError } from "../container/exec.ts";

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
  // docker's exec events: `exec_create: CMD`, `exec_start: CMD`, then `exec_die` with its code.
  const execId = Array.from(
    crypto.getRandomValues(new Uint8Array(32)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
  const shown = command.join(" ");
  try {
    record = reconcile(store, requireContainer(store, name));
    if (record.state === "running") {
      for (const action of [`exec_create: ${shown}`, `exec_start: ${shown}`]) {
        containerEvent(store.root, action, record, { execID: execId });
      }
    }
  } finally {
    store.close();
  }
  try {
    const code = await execRunning(record, command, flags);
    if (!flags.detach) {
      containerEvent(globals.root, "exec_die", record, { execID: execId, exitCode: String(code) });
    }
    return code;
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
