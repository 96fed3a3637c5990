/**
 * `run`: create the container, then either hand it to a detached supervisor (`-d`, printing
 * the id) or supervise it in this process with the terminal attached, forwarding signals and
 * returning the container's exit code.
 *
 * @module
 */
import { lazyImport } from "../lazy.ts";
import { killPid } from "../../ffi/process.ts";
import type { RunFlags } from "./flags.ts";
import { Store } from "../store/mod.ts";
import { createFromFlags, type CreateGlobals } from "./create.ts";
import { checkPublish } from "../net/publish.ts";
import { removeContainer, startDetached } from "./lifecycle.ts";
import { getContainer } from "./state.ts";
import { TsboxError } from "../errors.ts";
import { assertInputTerminal } from "../runtime/tty.ts";
import { attachStreams } from "./attach_streams.ts";
import type { SuperviseOptions } from "./supervisor.ts";
import { PendingSupervisor } from "./supervisor_spawn.ts";

/**
 * What run needs from the global options: create's (registries, `--userns-remap`, notices),
 * the store's root and the debug switch. The one globals type of run and create.
 */
export interface RunGlobals extends CreateGlobals {
  readonly root: string;
  readonly debug: boolean;
  /**
   * docker's stdout line with the container's id when `-a` attaches no output stream (`-a
   * stdin`): the one thing such a run would otherwise never tell. Nothing when absent.
   */
  readonly printId?: (id: string) => void;
}

const FORWARDED: [Deno.Signal, number][] = [
  ["SIGINT", 2],
  ["SIGTERM", 15],
  ["SIGHUP", 1],
  ["SIGQUIT", 3],
];

/**
 * Runs `image` as `tsbox run` does. Detached: prints nothing itself and returns the full id.
 * Attached: returns the container's exit code as a number. `early`: the supervisor of a
 * detached run, spawned by the caller as soon as it could (else spawned here, first thing).
 */
export async function runContainer(
  imageName: string,
  command: readonly string[],
  flags: RunFlags,
  globals: RunGlobals,
  early?: PendingSupervisor,
): Promise<{ id: string; exitCode?: number }> {
  // The supervisor's own start-up overlaps with creating the container (supervisor_spawn.ts).
  const pending = flags.detach ? early ?? new PendingSupervisor(globals.root) : early;
  try {
    assertInputTerminal(flags.tty && !flags.detach, flags.interactive);
    // A taken host port fails here, before the container exists (docker leaves one behind).
    const warning = checkPublish(flags.publish ?? [], flags.network);
    if (warning) globals.notice?.(warning);
    const store = await Store.open(globals.root, { warn: globals.notice });
    try {
      return await runInStore(store, imageName, command, flags, globals, pending);
    } finally {
      store.close();
    }
  } finally {
    await pending?.dismiss(); // not handed a container: it ends without touching anything
  }
}

/**
 * {@link runContainer} on an open store (the caller closes it), after the checks that need no
 * store.
 */
export async function runInStore(
  store: Store,
  imageName: string,
  command: readonly string[],
  flags: RunFlags,
  globals: Omit<RunGlobals, "root">,
  pending?: PendingSupervisor,
): Promise<{ id: string; exitCode?: number }> {
  const streams = attachStreams((flags as { attach?: string[] }).attach, flags.detach);
  const record = await createFromFlags(
    store,
    imageName,
    command,
    flags,
    pending ? { ...globals, id: pending.id } : globals,
  );
  if (flags.detach) {
    try {
      await startDetached(store, record, pending);
    } catch (err) {
      throw await failedStart(store, record.id, flags.rm ?? false, err);
    }
    return { id: record.id };
  }
  if (flags.tty && flags.interactive) {
    // docker's model for -it: a detached supervisor with this process attached, so that
    // ctrl-p ctrl-q detaches (exit 0, nothing printed) and the container goes on.
    const { runAttached } = await lazyImport<typeof import("./attach_start.ts")>(
      new URL("./attach_start.ts", import.meta.url),
    );
    try {
      return { id: record.id, exitCode: await runAttached(store, record) };
    } catch (err) {
      throw await failedStart(store, record.id, flags.rm ?? false, err);
    }
  }
  if (streams && !streams.stdout && !streams.stderr) globals.printId?.(record.id);
  return {
    id: record.id,
    exitCode: await attached(store, record.id, flags.rm ?? false, streams, globals.notice),
  };
}

/** Supervises container `id` in this process with stdio attached; returns its exit code. */
export async function attached(
  store: Store,
  id: string,
  autoRemove: boolean,
  streams?: SuperviseOptions["streams"],
  warn?: (message: string) => void,
): Promise<number> {
  let pid: number | undefined;
  const off = FORWARDED.map(([sig, num]) => {
    const handler = () => {
      if (pid !== undefined) killPid(pid, num);
    };
    Deno.addSignalListener(sig, handler);
    return () => Deno.removeSignalListener(sig, handler);
  });
  try {
    // Loaded here: `run -d` hands the container to a supervisor process and never needs it.
    const { supervise } = await import("./supervisor.ts");
    const result = await supervise(store, id, {
      attach: true,
      streams,
      warn,
      onPid: (p) => (pid = p),
    });
    return result.exitCode;
  } catch (err) {
    throw await failedStart(store, id, autoRemove, err);
  } finally {
    for (const f of off) f();
  }
}

/**
 * After `run` failed to start container `id`: removes it when it was run with `--rm`, or when
 * tsbox itself failed (exit 125: a full disk, a database error) before it ever ran, so that a
 * failed `run` leaves no container, mount or cgroup behind. A command that could not be executed (126, 127) leaves
 * the container, as docker does. Returns the error to throw: the start's own, with the
 * removal's failure added when there was one.
 */
async function failedStart(
  store: Store,
  id: string,
  autoRemove: boolean,
  err: unknown,
): Promise<unknown> {
  const code = err instanceof TsboxError ? err.exitCode : 125;
  if (!autoRemove && code !== 125) return err;
  const remove = async () => {
    const now = getContainer(store, id);
    // Without --rm only a container that never ran goes (an attach that failed after the
    // start leaves a running container alone).
    if (now && (autoRemove || now.state === "created")) {
      await removeContainer(store, now, true, true);
    }
  };
  try {
    try {
      await remove();
    } catch {
      // On a full disk the database's write-ahead log cannot grow: folding it into the
      // database and truncating it frees the room that deleting the row needs. Once more.
      store.db.run("PRAGMA wal_checkpoint(TRUNCATE)");
      await remove();
    }
    return err;
  } catch (removal) {
    const message = `${(err as Error).message ?? err}; container ${id.slice(0, 12)} was kept: ${
      (removal as Error).message ?? removal
    }`;
    return err instanceof TsboxError && err.exitCode !== 125
      ? err
      : new TsboxError(message, { cause: err });
  }
}
