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
import type * as Create from "./create.ts";
import type * as Exec from "./exec.ts";
import type * as Info from "./info.ts";
import type * as Lifecycle from "./lifecycle.ts";
import type * as Query from "./query.ts";
import { RuncLog } from "./log.ts";
import { inUserNamespace } from "../runtime/in_userns.ts";
import { ownPrivateDir } from "../runtime/rootless_paths.ts";

/**
 * Loads a command module by a name Deno does not read ahead (see main.ts): `state` or
 * `delete` then skip the modules that start containers, and podman and containerd call them
 * on every container.
 */
function load<T>(path: string): Promise<T> {
  return import(new URL(path, import.meta.url).href);
}

/** The default state root (root's). */
export const DEFAULT_ROOT = "/run/tsbox-runc";

/**
 * The default state root of this process: root's, or for another user (rootless, as runc's
 * `$XDG_RUNTIME_DIR/runc`) `$XDG_RUNTIME_DIR/tsbox-runc`, else `/tmp/tsbox-runc-UID`.
 */
export function defaultRoot(): string {
  const uid = Deno.uid() ?? 0;
  const xdg = Deno.env.get("XDG_RUNTIME_DIR");
  // runc's rule: root of a user namespace (rootless podman) that is not USER=root uses
  // XDG_RUNTIME_DIR too.
  if (uid === 0 && !(xdg && inUserNamespace() && Deno.env.get("USER") !== "root")) {
    return DEFAULT_ROOT;
  }
  if (xdg?.startsWith("/")) return `${xdg}/tsbox-runc`;
  // Its state names the hooks this runtime runs: only a directory of the user's own.
  const dir = `/tmp/tsbox-runc-${uid}`;
  if (!ownPrivateDir(dir, uid)) {
    throw new RuncUsageError(`${dir} is not a private directory of uid ${uid} (use --root)`);
  }
  return dir;
}

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
      root: typeof g.root === "string" ? g.root : defaultRoot(),
      log,
      flags: line.flags,
      args: line.args,
    };
    const c = line.command;
    if (c === "create" || c === "run") {
      const m = await load<typeof Create>("./create.ts");
      return await (c === "create" ? m.create(ctx) : m.run(ctx));
    }
    if (c === "exec") return await (await load<typeof Exec>("./exec.ts")).exec(ctx);
    if (["start", "kill", "delete", "pause", "resume"].includes(c)) {
      const m = await load<typeof Lifecycle>("./lifecycle.ts");
      if (c === "start") return await m.start(ctx);
      if (c === "kill") return await m.kill(ctx);
      if (c === "delete") return await m.del(ctx);
      return await m.freeze(ctx, c === "pause");
    }
    if (c === "state" || c === "ps" || c === "list") {
      const q = await load<typeof Query>("./query.ts");
      return await (c === "state" ? q.state(ctx) : c === "ps" ? q.ps(ctx) : q.listCommand(ctx));
    }
    const m = await load<typeof Info>("./info.ts");
    switch (c) {
      case "update":
        return await m.update(ctx);
      case "features":
        return m.features();
      case "spec":
        return await m.spec(ctx);
    }
    throw new RuncUsageError(`unknown command ${line.command}`);
  } catch (err) {
    log.error((err as Error).message);
    return err instanceof RuncUsageError ? 1 : 1;
  }
}
