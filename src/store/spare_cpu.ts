/**
 * Whether this machine has a processor to spare for work handed to other threads (pull's layer
 * workers). Hand-overs between threads pay off only then: measured here on 2 cores, a pull that
 * handed its layers to workers (and its blob writes to Deno's blocking threads) was faster with
 * the load average near 10 (3.0 s against 4.3 s on one thread, medians, interleaved) but took
 * 2.5x as long at 18 (8.9 s against 3.6 s), each of its hundreds of hand-overs waiting for the
 * scheduler.
 *
 * @module
 */

/** True while the 1-minute load average leaves at least one processor idle besides ours. */
export function spareProcessor(): boolean {
  try {
    const [load] = Deno.loadavg();
    return load + 1 <= navigator.hardwareConcurrency;
  } catch {
    return false; // no --allow-sys: one thread, which is right on any machine
  }
}
