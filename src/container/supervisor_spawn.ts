/**
 * Starting a detached supervisor process, and hearing whether it started its container. A
 * supervisor is a second Deno start (about as long again as the command that spawns it), so
 * `run -d` spawns it *pending* as soon as its command line is parsed: the new process loads its
 * modules while this one creates the container, and learns the container's id on its stdin
 * `run -d` picks the container's id first and spawns its supervisor *pending* as soon as its
 * command line is parsed: the new process loads its modules while this one creates the
 * container under that id, and is told to start once it exists ({@link PendingSupervisor}).
 * Loads nothing but the error types, the id maker and the bundle check, so that the spawn can
 * happen before the rest of `run` is even loaded.
 *
 * @module
 */
import { TsboxError } from "../errors.ts";
import { newContainerId } from "../runtime/id.ts";
import { supervisorEntry } from "./supervisor_bundle.ts";

/**
 * Set in the environment of a supervisor spawned before its container exists: it waits for
 * `start` on its stdin (or its end: dismissed) before it touches the store.
 */
export const PENDING_ENV = "TSBOX_SUPERVISOR_PENDING";

/** Whether this program runs as a `deno compile`d executable. */
export function isCompiled(): boolean {
  return !import.meta.url.startsWith("file:") || import.meta.url.includes("/deno-compile-");
}

/** V8 settings for supervisors: a small heap, since each container has one. */
const SUPERVISOR_V8_FLAGS = "--max-old-space-size=32,--max-semi-space-size=1,--stack-size=512";

/** The command that runs a supervisor of container `id`: the lean entry point, or the compiled tsbox's hidden mode. */
export function supervisorCommand(root: string, id: string): { cmd: string; args: string[] } {
  if (isCompiled()) return { cmd: Deno.execPath(), args: ["__supervise", root, id] };
  // The bundle of the same code when it is current: about 3 MiB less resident per supervisor.
  const entry = supervisorEntry(new URL("./supervisor_main.ts", import.meta.url).pathname);
  return {
    cmd: Deno.execPath(),
    // No V8 code cache: with it each supervisor keeps Deno's cache database open and V8
    // deserializes eagerly compiled bytecode for every cached function; without it only what
    // runs is compiled. Measured with 20 running: about 0.4 MiB less PSS per supervisor, and
    // `run -d` no slower (the supervisor loads while the CLI creates the container).
    args: [
      "run",
      "-A",
      "--quiet",
      "--no-code-cache",
      `--v8-flags=${SUPERVISOR_V8_FLAGS}`,
      entry,
      root,
      id,
    ],
  };
}

/** Spawns a detached supervisor of `id` under `root`; its stdin is a pipe only when pending. */
function spawnSupervisor(root: string, id: string, pending: boolean): Deno.ChildProcess {
  const { cmd, args } = supervisorCommand(root, id);
  const env: Record<string, string> = isCompiled() ? { DENO_V8_FLAGS: SUPERVISOR_V8_FLAGS } : {};
  if (pending) env[PENDING_ENV] = "1";
  return new Deno.Command(cmd, {
    args,
    stdin: pending ? "piped" : "null",
    stdout: "piped",
    stderr: "null",
    detached: true,
    env,
  }).spawn();
}

/**
 * A supervisor spawned before its container exists, for the container {@link id} that is about
 * to be created: it starts up meanwhile and waits on its stdin. Either {@link hand} it the
 * container once it exists or {@link dismiss} it (it then ends at once, having touched nothing).
 */
export class PendingSupervisor {
  /** The id the container must be created with. */
  readonly id: string = newContainerId();
  readonly #child: Deno.ChildProcess;
  #used = false;

  constructor(root: string) {
    this.#child = spawnSupervisor(root, this.id, true);
  }

  /** Tells the supervisor that its container exists; returns the process to hear from. */
  async hand(id: string): Promise<Deno.ChildProcess> {
    if (this.#used) throw new TsboxError("a pending supervisor was handed two containers");
    if (id !== this.id) {
      throw new TsboxError(
        `the pending supervisor is for ${this.id.slice(0, 12)}, not ${id.slice(0, 12)}`,
      );
    }
    this.#used = true;
    const writer = this.#child.stdin.getWriter();
    // A supervisor that already died says why on stdout (or nothing): read by the caller.
    await writer.write(new TextEncoder().encode("start\n")).catch(() => {});
    await writer.close().catch(() => {});
    return this.#child;
  }

  /** Ends the pending supervisor without a container: it sees EOF and exits. */
  async dismiss(): Promise<void> {
    if (this.#used) return;
    this.#used = true;
    await this.#child.stdin.close().catch(() => {});
    await this.#child.stdout.cancel().catch(() => {});
    await this.#child.status;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A container could not be started; carries the code `run` exits with (125, 126, 127). */
export class StartFailedError extends TsboxError {
  override readonly exitCode: number;
  constructor(message: string, exitCode: number) {
    super(message);
    this.name = "StartFailedError";
    this.exitCode = exitCode;
  }
}

/**
 * Starts a detached supervisor of container `id` (or hands `id` to `pending`) and returns once
 * it reports the container's process running, or throws what stopped it. The supervisor
 * outlives this process.
 */
export async function superviseDetached(
  root: string,
  id: string,
  pending?: PendingSupervisor,
): Promise<void> {
  const child = pending ? await pending.hand(id) : spawnSupervisor(root, id, false);
  const reader = child.stdout.getReader();
  const decoder = new TextDecoder();
  let line = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    line += decoder.decode(value, { stream: true });
    if (line.includes("\n")) break;
  }
  await reader.cancel().catch(() => {});
  // Only now: an unref'd child (and its pipe) would not keep this process alive while it waits
  // for the supervisor's first line. Afterwards the supervisor goes on without us.
  child.unref();
  line = line.split("\n")[0];
  if (!line) {
    // It printed nothing: say how it ended (its stderr is not kept, it would outlive us).
    const status = await Promise.race([
      child.status,
      sleep(2_000).then(() => undefined),
    ]);
    const how = status === undefined
      ? "closed its output"
      : status.signal
      ? `was killed by ${status.signal}`
      : `exited with code ${status.code}`;
    throw new TsboxError(`the supervisor of ${id.slice(0, 12)} ${how} before starting it`);
  }
  const msg = JSON.parse(line) as { ok?: boolean; error?: string; exitCode?: number };
  if (!msg.ok) throw new StartFailedError(msg.error ?? "start failed", msg.exitCode ?? 125);
}
