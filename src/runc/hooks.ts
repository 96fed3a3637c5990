/**
 * OCI hooks: host programs named by the config, run with the container's state JSON on stdin,
 * their own env only, and their timeout (seconds). They are what the bundle's author asked for
 * (a runtime runs them by definition); a failure or timeout fails the lifecycle step, except
 * poststart and poststop, where runc only warns.
 *
 * @module
 */
import type { Hook } from "../oci/spec.ts";
import { TsboxError } from "../errors.ts";

/** A hook that failed. */
export class HookError extends TsboxError {
  constructor(point: string, path: string, detail: string) {
    super(`error running ${point} hook ${path}: ${detail}`);
    this.name = "HookError";
  }
}

/** Runs `hooks` in order with `state` on stdin. */
export async function runHooks(
  point: string,
  hooks: readonly Hook[] | undefined,
  state: Record<string, unknown>,
): Promise<void> {
  for (const h of hooks ?? []) {
    const env: Record<string, string> = {};
    for (const e of h.env ?? []) {
      const i = e.indexOf("=");
      if (i > 0) env[e.slice(0, i)] = e.slice(i + 1);
    }
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(h.path, {
        args: (h.args ?? []).slice(1),
        env,
        clearEnv: true,
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
    } catch (err) {
      throw new HookError(point, h.path, (err as Error).message);
    }
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(JSON.stringify(state))).catch(() => {});
    await writer.close().catch(() => {});
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<"timeout">((resolve) => {
      if (h.timeout) timer = setTimeout(() => resolve("timeout"), h.timeout * 1000);
    });
    const result = await Promise.race([child.output(), timedOut]);
    clearTimeout(timer);
    if (result === "timeout") {
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
      await child.status;
      throw new HookError(point, h.path, `timed out after ${h.timeout}s`);
    }
    if (!result.success) {
      const err = new TextDecoder().decode(result.stderr).trim();
      throw new HookError(
        point,
        h.path,
        `exit status ${result.code}${err ? `, stderr: ${err}` : ""}`,
      );
    }
  }
}
