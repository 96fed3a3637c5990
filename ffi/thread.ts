/**
 * The calling thread as glibc set it up: where its restartable-sequence area (rseq(2)) lives.
 * The kernel writes that area whenever the thread is preempted or resumed, so a clone that
 * unmaps its inherited memory (container/watcher.ts) must keep the mapping holding it, or the
 * kernel kills the clone with SIGSEGV the first time it wakes up.
 *
 * @module
 */
import { openLibc } from "./libc.ts";

const libc = openLibc({
  pthread_self: { parameters: [], result: "usize" },
});

/**
 * Addresses that must stay mapped in a clone of the calling thread: its thread pointer (TCB)
 * and, when glibc registered one (2.35+), its rseq area. Thread-local, so call it on the thread
 * that clones.
 */
export function threadAreas(): bigint[] {
  const tp = BigInt(libc.pthread_self());
  const areas = [tp];
  try {
    const lib = Deno.dlopen("libc.so.6", {
      __rseq_offset: { type: "i64" },
      __rseq_size: { type: "u32" },
    });
    try {
      if (Number(lib.symbols.__rseq_size) > 0) {
        areas.push(tp + BigInt(lib.symbols.__rseq_offset as number | bigint));
      }
    } finally {
      lib.close();
    }
  } catch {
    // An older glibc without rseq: nothing more to keep.
  }
  return areas;
}
