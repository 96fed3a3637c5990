/**
 * The work of `tsbox attach` and `tsbox start -a`: reach the container's supervisor through its
 * attach socket, run the session, and turn its end into docker's exit code (the container's
 * code; 1 with "read escape sequence" after the detach keys).
 *
 * @module
 */
import { killPid } from "../../ffi/process.ts";
import { isTerminal } from "../../ffi/terminal.ts";
import { connectAttach } from "../container/attach.ts";
import { type AttachEnd, attachSession, parseDetachKeys } from "../container/attach_client.ts";
import { exitCodeAfter, startAndAttach } from "../container/attach_start.ts";
import {
  type ContainerRecord,
  getContainer,
  reconcile,
  requireContainer,
} from "../container/state.ts";
import { TsboxError, UsageError } from "../errors.ts";
import { DOCKER_DETACH_KEYS } from "../runtime/tty.ts";
import type { Store } from "../store/mod.ts";
import type { GlobalOptions } from "./globals.ts";
import { withStore } from "./with_store.ts";

/** The flags of `attach`. */
export interface AttachFlags {
  /** False with `--no-stdin`. */
  stdin?: boolean;
  detachKeys?: string;
  /** "false" turns signal forwarding off (non-TTY containers). */
  sigProxy?: string;
}

/** The container cannot be attached to in its state (docker's client-side check, exit 1). */
export class AttachStateError extends TsboxError {
  override readonly exitCode = 1;
  constructor(state: string) {
    super(
      state === "paused"
        ? "You cannot attach to a paused container, unpause it first"
        : "You cannot attach to a stopped container, start it first",
    );
    this.name = "AttachStateError";
  }
}

const FORWARDED: [Deno.Signal, number][] = [
  ["SIGINT", 2],
  ["SIGTERM", 15],
  ["SIGHUP", 1],
  ["SIGQUIT", 3],
];

/** Forwards signals sent to tsbox to the container's current PID 1 (docker's sig-proxy). */
function proxySignals(store: Store, id: string): () => void {
  const offs = FORWARDED.map(([sig, num]) => {
    const handler = () => {
      const c = getContainer(store, id);
      if (c?.pid !== undefined) killPid(c.pid, num);
    };
    Deno.addSignalListener(sig, handler);
    return () => Deno.removeSignalListener(sig, handler);
  });
  return () => offs.forEach((f) => f());
}

/** docker's refusal to put a pty container's input on something that is not a terminal. */
function checkInput(c: ContainerRecord, stdin: boolean): void {
  if (c.config.tty && stdin && !isTerminal(0)) {
    throw new UsageError("the input device is not a TTY");
  }
}

/** The exit code of a finished session; after a detach it prints docker's notice. */
async function finish(store: Store, id: string, end: AttachEnd): Promise<number> {
  switch (end.kind) {
    case "exited":
      return end.exitCode;
    case "detached":
      console.error("read escape sequence");
      return 1;
    case "closed":
      // The supervisor went away without a word: the record says how the container ended.
      return await exitCodeAfter(store, id);
  }
}

/** Runs `tsbox attach`; returns its exit code. */
export function attachCommand(g: GlobalOptions, name: string, flags: AttachFlags): Promise<number> {
  const detachKeys = parseDetachKeys(flags.detachKeys ?? "ctrl-p,ctrl-q");
  return withStore(g, async (store) => {
    const c = reconcile(store, requireContainer(store, name));
    if (c.state !== "running" && c.state !== "restarting") throw new AttachStateError(c.state);
    const stdin = (flags.stdin ?? true) && c.config.interactive;
    checkInput(c, stdin);
    let conn: Deno.UnixConn;
    try {
      conn = await connectAttach(store.root, c.id);
    } catch (err) {
      throw new TsboxError(`cannot attach to ${name}: ${(err as Error).message}`);
    }
    const unproxy = !c.config.tty && flags.sigProxy !== "false"
      ? proxySignals(store, c.id)
      : () => {};
    try {
      const end = await attachSession(conn, { tty: c.config.tty, stdin, detachKeys });
      return await finish(store, c.id, end);
    } finally {
      unproxy();
    }
  });
}

/**
 * `start -a [-i] CONTAINER`: starts the container under a detached supervisor that waits until
 * this process has attached, so the output is seen from the first byte; ctrl-p ctrl-q detaches
 * (exit 0, as docker's `start -a`) and the container goes on. Returns the container's exit code.
 */
export function startAttachCommand(
  g: GlobalOptions,
  names: string[],
  opts: { interactive?: boolean },
): Promise<number> {
  if (names.length !== 1) throw new TsboxError("you cannot start and attach multiple containers");
  return withStore(g, async (store) => {
    const c = reconcile(store, requireContainer(store, names[0]));
    const stdin = (opts.interactive ?? false) && c.config.interactive;
    checkInput(c, stdin);
    if (c.state === "paused") throw new AttachStateError(c.state);
    const unproxy = c.config.tty ? () => {} : proxySignals(store, c.id);
    try {
      const end = await startAndAttach(store, c, {
        tty: c.config.tty,
        stdin,
        detachKeys: DOCKER_DETACH_KEYS,
        closeStdin: true,
      });
      return end.kind === "detached" ? 0 : await finish(store, c.id, end);
    } finally {
      unproxy();
    }
  });
}
