/**
 * Global options shared by every command (`--root`, `--debug`, `--insecure-registry`).
 *
 * @module
 */
import { defaultRoot } from "../runtime/rootless_paths.ts";

/**
 * Default state directory: /var/lib/tsbox for root (as docker's /var/lib/docker); for anyone
 * else a per-user root, `$XDG_DATA_HOME/tsbox` or `~/.local/share/tsbox` (as podman's).
 */
export const DEFAULT_ROOT: string = defaultRoot();

/** Options every command sees, resolved from flags and the environment. */
export interface GlobalOptions {
  /** Root of the store and state (`--root`, TSBOX_ROOT). */
  readonly root: string;
  /** Print stack traces and extra detail. */
  readonly debug: boolean;
  /** Registries reached over plain HTTP besides localhost (`--insecure-registry`). */
  readonly insecureRegistries: readonly string[];
  /** `--userns-remap` (`default` or USER[:GROUP]): run containers in a user namespace. */
  readonly usernsRemap?: string;
}

/** Reads the global options of the program a subcommand belongs to. */
export function globalsOf(cmd: { optsWithGlobals(): object }): GlobalOptions {
  return globalsFrom(cmd.optsWithGlobals());
}

/** The global options from the program's parsed flags (commander's `opts()` shape). */
export function globalsFrom(parsed: object): GlobalOptions {
  const opts = parsed as {
    root?: string;
    debug?: boolean;
    insecureRegistry?: string[];
    usernsRemap?: string;
    runroot?: string;
  };
  // Read where the store's rows are checked against this boot (container/boot.ts), also by
  // the supervisors this command starts, which inherit the environment.
  if (opts.runroot) {
    const dir = opts.runroot.startsWith("/") ? opts.runroot : `${Deno.cwd()}/${opts.runroot}`;
    Deno.env.set("TSBOX_RUNROOT", dir);
  }
  const fromEnv = (Deno.env.get("TSBOX_INSECURE_REGISTRIES") ?? "").split(/[,\s]+/).filter(Boolean);
  return {
    root: opts.root ?? Deno.env.get("TSBOX_ROOT") ?? DEFAULT_ROOT,
    debug: opts.debug ?? false,
    insecureRegistries: [...fromEnv, ...(opts.insecureRegistry ?? [])],
    usernsRemap: opts.usernsRemap || undefined,
  };
}
