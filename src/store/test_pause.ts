/**
 * A seam for tests that kill a process at an exact point no poll can catch: with
 * `TSBOX_TEST_PAUSE_AT=<point>` in its environment, a tsbox process that reaches
 * `pauseForTest("<point>")` writes its pid to the file `TSBOX_TEST_PAUSE_FILE` and sleeps
 * until killed. Without the variable (always, outside tests) it does nothing.
 *
 * @module
 */

function env(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined; // no env permission: not a test
  }
}

/** Pauses for ever at `point` when a test asked for it (see the module doc). */
export async function pauseForTest(point: string): Promise<void> {
  if (env("TSBOX_TEST_PAUSE_AT") !== point) return;
  const marker = env("TSBOX_TEST_PAUSE_FILE");
  if (marker) await Deno.writeTextFile(marker, `${Deno.pid}\n`);
  for (;;) await new Promise((resolve) => setTimeout(resolve, 3600_000));
}
