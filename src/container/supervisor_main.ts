/**
 * Entry point of a detached supervisor: `supervisor_main.ts ROOT ID` (or `tsbox __supervise
 * ROOT ID` in a compiled tsbox). It imports only what supervising needs, to keep the resident
 * size of many supervisors small. Its first line on stdout tells the starting `tsbox` whether
 * the container started: `{"ok":true}` or `{"error":"...","exitCode":N}`.
 *
 * @module
 */
import { TsboxError } from "../errors.ts";
import { Store } from "../store/mod.ts";
import { supervise } from "./supervisor.ts";

/** Supervises container `id` under `root`; reports the first start on stdout. */
export async function superviseMain(root: string, id: string): Promise<number> {
  const encoder = new TextEncoder();
  let reported = false;
  const report = (msg: object) => {
    if (reported) return;
    reported = true;
    try {
      Deno.stdout.writeSync(encoder.encode(JSON.stringify(msg) + "\n"));
    } catch { /* the starter is gone */ }
  };
  // Signals meant for a terminal must not end the supervisor of a detached container.
  for (const sig of ["SIGHUP", "SIGINT", "SIGPIPE"] as const) {
    try {
      Deno.addSignalListener(sig, () => {});
    } catch { /* not supported */ }
  }
  const store = await Store.open(root);
  try {
    const result = await supervise(store, id, {
      onStarted: (err) =>
        report(
          err
            ? { error: err.message, exitCode: err instanceof TsboxError ? err.exitCode : 125 }
            : { ok: true },
        ),
    });
    return result.exitCode;
  } catch (err) {
    report({ error: (err as Error).message, exitCode: 125 });
    return 125;
  } finally {
    store.close();
  }
}

if (import.meta.main) {
  const [root, id] = Deno.args;
  Deno.exit(await superviseMain(root, id));
}
