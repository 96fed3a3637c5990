/**
 * Runs a container's healthcheck for its supervisor: probes on the schedule of health.ts, each
 * one a process started inside the container by exec's own route (execSpecFor +
 * execInContainer, so confined exactly as `tsbox exec` confines), its output collected up to
 * docker's limit, killed when it outlives the timeout; every result goes through health.ts's
 * state machine into the state database, where `inspect` and `ps` read it. Loaded only for
 * containers that have a healthcheck.
 *
 * @module
 */
import { containerEvent } from "../events/log.ts";
import { closeFd, pipe, readAvailable, waitReadable } from "../../ffi/process.ts";
import { execInContainer, type ExecProcess } from "../runtime/exec.ts";
import type { Store } from "../store/mod.ts";
import { execSpecFor } from "./exec.ts";
import {
  applyProbeResult,
  type HealthState,
  type HealthTiming,
  healthTiming,
  MAX_OUTPUT_BYTES,
  nextProbeDelay,
  probeCommand,
  probeOutput,
  type ProbeResult,
  timeoutOutput,
} from "./health.ts";
import { type ContainerRecord, getContainer, updateContainer } from "./state.ts";

const SIGKILL = 9;
/**
 * How long one wait for output lasts before the reader checks whether the probe has ended: a
 * process the probe left behind may hold the pipe open, and then no EOF ever comes.
 */
const OUTPUT_WAIT_MS = 250;

/** One run of a container with a healthcheck, from its start until {@link stop}. */
export class HealthMonitor {
  #stopped = false;
  #wake?: () => void;
  #probe?: ExecProcess;
  readonly #loop: Promise<void>;

  private constructor(
    readonly store: Store,
    readonly record: ContainerRecord,
    readonly pid: number,
    readonly argv: readonly string[],
    readonly timing: HealthTiming,
    readonly startedAt: number,
    health: HealthState,
  ) {
    this.#loop = this.#run(health);
  }

  /**
   * Starts probing the container of `record`, whose PID 1 is `pid`, started at `startedAt`
   * with `health` (see startingHealth). Undefined when it has nothing to probe.
   */
  static start(
    store: Store,
    record: ContainerRecord,
    pid: number,
    startedAt: number,
    health: HealthState,
  ): HealthMonitor | undefined {
    const hc = record.config.healthcheck;
    const argv = probeCommand(hc, record.config.shell);
    if (!hc || !argv) return undefined;
    return new HealthMonitor(store, record, pid, argv, healthTiming(hc), startedAt, health);
  }

  /** Stops probing: a probe under way is killed and its result dropped, as docker does. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#wake?.();
    this.#probe?.kill(SIGKILL);
    await this.#loop;
  }

  async #run(initial: HealthState): Promise<void> {
    let health = initial;
    while (!this.#stopped) {
      await this.#sleep(nextProbeDelay(this.timing, health.Status, Date.now() - this.startedAt));
      if (this.#stopped) return;
      // A paused container is not probed (its cgroup is frozen: the probe would freeze too).
      const now = getContainer(this.store, this.record.id);
      if (!now || now.pid !== this.pid) return;
      if (now.state !== "running") continue;
      const result = await this.#probeOnce();
      if (this.#stopped) return;
      const before = health.Status;
      health = applyProbeResult(health, result, this.timing, this.startedAt);
      try {
        // Only for this run of the container: a row that moved on is not written over.
        const written = updateContainer(
          this.store,
          this.record.id,
          { health },
          (c) => c.pid === this.pid,
        );
        if (!written) return;
        // docker's event on each change of status.
        if (health.Status !== before) {
          containerEvent(this.store.root, `health_status: ${health.Status}`, this.record);
        }
      } catch {
        // The database cannot be written (a full disk): the next probe tries again.
      }
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#wake = done;
    });
  }

  /** One probe: docker's result for it, never an exception. */
  async #probeOnce(): Promise<ProbeResult> {
    const start = Date.now();
    const [outR, outW] = pipe();
    let proc: ExecProcess;
    try {
      proc = await execInContainer(
        this.pid,
        execSpecFor(this.record, this.argv, {}, ["null", outW, outW]),
      );
    } catch (err) {
      // docker records a probe it could not start as exit code -1 with the error.
      closeFd(outR);
      return { start, end: Date.now(), exitCode: -1, output: (err as Error).message };
    } finally {
      closeFd(outW);
    }
    this.#probe = proc;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      proc.kill(SIGKILL);
    }, this.timing.timeoutMs);
    let ended = false;
    const output = collectOutput(outR, () => ended);
    let exitCode: number;
    try {
      exitCode = await proc.wait();
    } finally {
      ended = true;
      clearTimeout(timer);
      this.#probe = undefined;
    }
    const text = await output.finally(() => closeFd(outR));
    const end = Date.now();
    if (timedOut) {
      return { start, end, exitCode: -1, output: timeoutOutput(this.timing.timeoutMs, text) };
    }
    return { start, end, exitCode, output: text };
  }
}

/**
 * Reads the probe's output from `fd` until EOF, or until `ended()` and nothing more comes:
 * the first 4096 bytes are kept, the rest read and dropped so the probe never blocks on a full
 * pipe.
 */
async function collectOutput(fd: number, ended: () => boolean): Promise<string> {
  const kept = new Uint8Array(MAX_OUTPUT_BYTES);
  const chunk = new Uint8Array(16384);
  let length = 0;
  let truncated = false;
  try {
    for (;;) {
      if (!await waitReadable(fd, OUTPUT_WAIT_MS)) {
        if (ended()) break;
        continue;
      }
      const n = readAvailable(fd, chunk);
      if (n === 0) break;
      const room = MAX_OUTPUT_BYTES - length;
      kept.set(chunk.subarray(0, Math.min(room, n)), length);
      length += Math.min(room, n);
      if (n > room) truncated = true;
    }
  } catch {
    // A read error ends the output; what was read is kept.
  }
  return probeOutput(kept.subarray(0, length), truncated);
}
