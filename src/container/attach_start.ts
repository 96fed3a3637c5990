/**
 * Start a container under a detached supervisor and attach to it, docker's client/daemon model:
 * `start -a` and foreground `run -it` go this way, so that the user can detach with ctrl-p
 * ctrl-q and the container goes on. The supervisor waits for this process to attach before it
 * starts the process (see attach.ts), so no output is missed.
 *
 * @module
 */
import type { Store } from "../store/mod.ts";
import { attachFirstPath, connectAttach } from "./attach.ts";
import { type AttachEnd, attachSession, type AttachSessionOptions } from "./attach_client.ts";
import { startDetached, waitInactive } from "./lifecycle.ts";
import { DOCKER_DETACH_KEYS } from "../runtime/tty.ts";
import { type ContainerRecord, isActive, reconcile } from "./state.ts";

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Starts `c` (unless it runs already) and runs an attach session on it until its process ends
 * or the user detaches. Throws what stopped the start (with its exit code).
 */
export async function startAndAttach(
  store: Store,
  c: ContainerRecord,
  o: AttachSessionOptions,
): Promise<AttachEnd> {
  if (isActive(reconcile(store, c).state)) {
    const conn = await connectAttach(store.root, c.id).catch(() => undefined);
    return conn ? await attachSession(conn, o) : { kind: "closed" };
  }
  const marker = attachFirstPath(store.root, c.id);
  await Deno.writeTextFile(marker, "");
  let settled = false;
  const starting = startDetached(store, c).finally(() => settled = true);
  starting.catch(() => {});
  let conn: Deno.UnixConn | undefined;
  try {
    // The new supervisor listens before it starts the process, and waits for our session's
    // first frames (window size, ready).
    while (!conn && !settled) {
      conn = await connectAttach(store.root, c.id).catch(() => undefined);
      if (!conn) await sleep(20);
    }
    const session = conn ? attachSession(conn, o) : undefined;
    try {
      await starting;
    } catch (err) {
      conn?.close(); // ends the session
      await session?.catch(() => {});
      throw err;
    }
    if (session) return await session;
  } finally {
    await Deno.remove(marker).catch(() => {});
  }
  // Started without waiting for us (the marker came too late).
  conn = await connectAttach(store.root, c.id).catch(() => undefined);
  return conn ? await attachSession(conn, o) : { kind: "closed" };
}

/** The container's exit code once a session ended without one (its supervisor went away). */
export async function exitCodeAfter(store: Store, id: string): Promise<number> {
  const done = await waitInactive(store, id, 10_000);
  return done?.exitCode ?? 0;
}

/**
 * Foreground `run -it`: starts `c` and attaches the user's terminal (raw, sized, ctrl-p ctrl-q
 * detaches with exit 0 as docker's `run`). Returns the container's exit code.
 */
export async function runAttached(store: Store, c: ContainerRecord): Promise<number> {
  const end = await startAndAttach(store, c, {
    tty: true,
    stdin: true,
    detachKeys: DOCKER_DETACH_KEYS,
    closeStdin: true,
  });
  if (end.kind === "detached") return 0;
  return end.kind === "exited" ? end.exitCode : await exitCodeAfter(store, c.id);
}
