/**
 * runc's command line: `[GLOBAL FLAGS] COMMAND [FLAGS] ARGS`. Long flags take one or two dashes
 * (`-root` and `--root`, as Go's flag packages accept) and `--flag value` or `--flag=value`;
 * flags may come after positional arguments too, as urfave/cli allows for runc's commands
 * until `--`. Pure, so that it is tested without root.
 *
 * @module
 */

/** A flag of one command: boolean, or taking a value (repeatable ones collect every value). */
export interface FlagDef {
  readonly name: string;
  readonly kind: "bool" | "string" | "strings";
  /** One-letter alias (`-d`, `-t`). */
  readonly short?: string;
}

/** Flags as parsed: booleans, strings, and lists for repeatable ones. */
export type Flags = Record<string, string | boolean | string[]>;

/** A command line that does not fit the command's flags. */
export class RuncUsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RuncUsageError";
  }
}

/**
 * Parses `args` against `defs`. Stops taking flags at `--`, and (when `stopAtFirst`) at the
 * first positional argument, as the global flags before the command do.
 */
export function parseFlags(
  args: readonly string[],
  defs: readonly FlagDef[],
  stopAtFirst = false,
): { flags: Flags; rest: string[] } {
  const flags: Flags = {};
  const rest: string[] = [];
  const byName = new Map<string, FlagDef>();
  for (const d of defs) {
    byName.set(d.name, d);
    if (d.short) byName.set(d.short, d);
  }
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--") {
      rest.push(...args.slice(i + 1));
      break;
    }
    if (!a.startsWith("-") || a === "-") {
      if (stopAtFirst) {
        rest.push(...args.slice(i));
        break;
      }
      rest.push(a);
      continue;
    }
    const body = a.replace(/^--?/, "");
    const eq = body.indexOf("=");
    const name = eq >= 0 ? body.slice(0, eq) : body;
    const def = byName.get(name);
    if (!def) throw new RuncUsageError(`flag provided but not defined: -${name}`);
    if (def.kind === "bool") {
      flags[def.name] = eq >= 0 ? body.slice(eq + 1) !== "false" : true;
      continue;
    }
    let value: string;
    if (eq >= 0) value = body.slice(eq + 1);
    else {
      if (i + 1 >= args.length) throw new RuncUsageError(`flag needs an argument: -${name}`);
      value = args[++i];
    }
    if (def.kind === "strings") flags[def.name] = [...(flags[def.name] as string[] ?? []), value];
    else flags[def.name] = value;
  }
  return { flags, rest };
}

/** The global flags runc takes before the command. */
export const GLOBAL_FLAGS: readonly FlagDef[] = [
  { name: "root", kind: "string" },
  { name: "log", kind: "string" },
  { name: "log-format", kind: "string" },
  { name: "debug", kind: "bool" },
  { name: "systemd-cgroup", kind: "bool" },
  { name: "criu", kind: "string" },
  { name: "rootless", kind: "string" },
  { name: "help", kind: "bool", short: "h" },
  { name: "version", kind: "bool", short: "v" },
];

/** `create`'s flags, which `run` (create, then start) takes too. */
const CREATE_FLAGS: readonly FlagDef[] = [
  { name: "bundle", kind: "string", short: "b" },
  { name: "pid-file", kind: "string" },
  { name: "console-socket", kind: "string" },
  { name: "no-pivot", kind: "bool" },
  { name: "no-new-keyring", kind: "bool" },
  { name: "preserve-fds", kind: "string" },
];

/** Each command's flags. */
export const COMMAND_FLAGS: Readonly<Record<string, readonly FlagDef[]>> = {
  create: CREATE_FLAGS,
  run: [
    ...CREATE_FLAGS,
    { name: "detach", kind: "bool", short: "d" },
    { name: "keep", kind: "bool" },
  ],
  start: [],
  state: [],
  kill: [{ name: "all", kind: "bool", short: "a" }],
  delete: [{ name: "force", kind: "bool", short: "f" }],
  exec: [
    { name: "process", kind: "string", short: "p" },
    { name: "detach", kind: "bool", short: "d" },
    { name: "pid-file", kind: "string" },
    { name: "console-socket", kind: "string" },
    { name: "tty", kind: "bool", short: "t" },
    { name: "cwd", kind: "string" },
    { name: "env", kind: "strings", short: "e" },
    { name: "user", kind: "string", short: "u" },
    { name: "additional-gids", kind: "strings", short: "g" },
    { name: "cap", kind: "strings", short: "c" },
    { name: "no-new-privs", kind: "bool" },
    { name: "preserve-fds", kind: "string" },
    { name: "process-label", kind: "string" },
    { name: "apparmor", kind: "string" },
    { name: "cgroup", kind: "strings" },
  ],
  ps: [{ name: "format", kind: "string", short: "f" }],
  list: [{ name: "format", kind: "string", short: "f" }, {
    name: "quiet",
    kind: "bool",
    short: "q",
  }],
  pause: [],
  resume: [],
  update: [
    { name: "resources", kind: "string", short: "r" },
    { name: "memory", kind: "string" },
    { name: "memory-swap", kind: "string" },
    { name: "memory-reservation", kind: "string" },
    { name: "cpu-shares", kind: "string" },
    { name: "cpu-quota", kind: "string" },
    { name: "cpu-period", kind: "string" },
    { name: "cpuset-cpus", kind: "string" },
    { name: "cpuset-mems", kind: "string" },
    { name: "pids-limit", kind: "string" },
  ],
  features: [],
  spec: [{ name: "bundle", kind: "string", short: "b" }, { name: "rootless", kind: "bool" }],
};

/** A whole command line: the global flags, the command, its flags and positional arguments. */
export interface RuncCommandLine {
  readonly globals: Flags;
  readonly command: string;
  readonly flags: Flags;
  readonly args: readonly string[];
}

/** Parses a whole runc command line. */
export function parseCommandLine(argv: readonly string[]): RuncCommandLine {
  const g = parseFlags(argv, GLOBAL_FLAGS, true);
  const [command, ...tail] = g.rest;
  if (command === undefined) {
    return {
      globals: g.flags,
      command: g.flags.version ? "--version" : "help",
      flags: {},
      args: [],
    };
  }
  const defs = COMMAND_FLAGS[command];
  if (!defs) throw new RuncUsageError(`No help topic for '${command}'`);
  // exec's command line after the container id is the process's argv: flags stop there.
  if (command === "exec") {
    const parsed = parseFlags(tail, defs, true);
    return { globals: g.flags, command, flags: parsed.flags, args: parsed.rest };
  }
  const c = parseFlags(tail, defs);
  return { globals: g.flags, command, flags: c.flags, args: c.rest };
}
