/**
 * `tsbox runc [GLOBAL FLAGS] COMMAND ...`: tsbox's OCI runtime with runc's command line, for
 * podman (`--runtime`), containerd (the runc shim's `BinaryName`, `ctr --runc-binary`) and
 * anything else that drives runc. Exit status 0 on success, 1 on a failure (whose message goes
 * to stderr and, as a JSON line, to `--log`), the container's status for a foreground `run`
 * or `exec`.
 *
 * @module
 */
import { VERSION } from "../version.ts";
import { parseCommandLine, RuncUsageError } from "./args.ts";
import type { RuncContext } from "./context.ts";
import { exec } from "./exec.ts";
import { features, listCommand, ps, spec, state, update } from "./info.ts";
import { create, del, freeze, kill, run, start } from "./lifecycle.ts";
import { RuncLog } from "./log.ts";

/** The default state root. */
export const DEFAULT_ROOT = "/run/tsbox-runc";

const USAGE =
  `usage: tsbox runc [--root DIR] [--log FILE] [--log-format text|json] [--debug] COMMAND
commands: create, start, run, state, kill, delete, exec, ps, list, pause, resume, update,
          features, spec`;

/** Runs one runc command line; returns the exit status. */
export async function runcMain(argv: readonly string[]): Promise<number> {
  let log = new RuncLog(undefined, "text", false);
  try {
    const line = parseCommandLine(argv);
    const g = line.globals;
    const format = g["log-format"] === "json" ? "json" : "text";
    if (g["log-format"] !== undefined && !["json", "text"].includes(g["log-format"] as string)) {
      throw new RuncUsageError(`unknown log-format ${g["log-format"]}`);
    }
    log = new RuncLog(typeof g.log === "string" ? g.log : undefined, format, g.debug === true);
    log.debug(`argv: ${JSON.stringify(argv)}`);
    if (line.command === "--version") {
      console.log(`tsbox-runc version ${VERSION}\nspec: 1.1.0`);
      return 0;
    }
    if (line.command === "help" || g.help === true) {
      console.log(USAGE);
      return 0;
    }
    if (g["systemd-cgroup"] === true) {
      throw new RuncUsageError(
        "--systemd-cgroup is not supported: tsbox writes cgroupfs paths itself (use the cgroupfs manager)",
      );
    }
    const ctx: RuncContext = {
      root: typeof g.root === "string" ? g.root : DEFAULT_ROOT,
      log,
      flags: line.flags,
      args: line.args,
    };
    switch (line.command) {
      case "create":
        return await create(ctx);
      case "start":
        return await start(ctx);
      case "run":
        return await run(ctx);
      case "state":
        return await state(ctx);
      case "kill":
        return await kill(ctx);
      case "delete":
        return await del(ctx);
      case "exec":
        return await exec(ctx);
      case "ps":
        return await ps(ctx);
      case "list":
        return await listCommand(ctx);
      case "pause":
        return await freeze(ctx, true);
      case "resume":
        return await freeze(ctx, false);
      case "update":
        return await update(ctx);
      case "features":
        return features();
      case "spec":
        return await spec(ctx);
    }
    throw new RuncUsageError(`unknown command ${line.command}`);
  } catch (err) {
    log.error((err as Error).message);
    return err instanceof RuncUsageError ? 1 : 1;
  }
}
