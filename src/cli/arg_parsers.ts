/**
 * The flag-value parsers of the CLI, kept free of commander so that the hot-command path
 * (hot.ts) can run them without loading it. commander calls them as `parseArg(value, previous)`
 * and recognises a refused value by the error's `code` alone (`commander.invalidArgument`), so
 * {@link ArgumentValueError} is reported exactly as commander's own InvalidArgumentError.
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import { parseLabel } from "../container/labels.ts";
import { parseGoDuration } from "../container/health.ts";

/** The global options (mod.ts) that take their value as the next argument. */
const GLOBAL_VALUE_FLAGS = ["--root", "--runroot", "--insecure-registry", "--userns-remap"];

/**
 * pflag's `-a=false` / `--archive=true` for the boolean flags `bools` (short and long names,
 * e.g. `["-a", "--archive"]`) of subcommand `command`: rewritten to `--archive` or
 * `--no-archive`, which commander understands (it reads `-a=false` as the short flags `-=`,
 * `-f`, ...). A bare flag stays as it is. Only arguments before `--` are looked at.
 */
export function goBoolFlags(
  args: readonly string[],
  command: readonly string[],
  bools: readonly string[],
): string[] {
  // The command is the first word that is neither a global flag nor a global flag's value.
  let at = 0;
  while (at < args.length && args[at].startsWith("-")) {
    at += GLOBAL_VALUE_FLAGS.includes(args[at]) ? 2 : 1;
  }
  if (!command.every((c, j) => args[at + j] === c)) return [...args];
  const long = bools.find((b) => b.startsWith("--"))!;
  const out = [...args];
  for (let i = at + command.length; i < out.length && out[i] !== "--"; i++) {
    const eq = out[i].indexOf("=");
    if (eq < 0 || !bools.includes(out[i].slice(0, eq))) continue;
    const value = out[i].slice(eq + 1);
    if (["1", "t", "T", "true", "TRUE", "True"].includes(value)) out[i] = long;
    else if (["0", "f", "F", "false", "FALSE", "False"].includes(value)) {
      out[i] = `--no-${long.slice(2)}`;
    } else {
      throw new UsageError(
        `invalid argument "${value}" for "${bools.join(", ")}" flag: strconv.ParseBool: parsing ${
          JSON.stringify(value)
        }: invalid syntax`,
      );
    }
  }
  return out;
}

/** A flag value refused; commander prints `option '--x <v>' argument 'y' is invalid. MESSAGE`. */
export class ArgumentValueError extends Error {
  /** The code commander's `_callParseArg` looks for. */
  readonly code = "commander.invalidArgument";
  /** commander's exit code for it. */
  readonly exitCode = 1;
  constructor(message: string) {
    super(message);
    this.name = "InvalidArgumentError";
  }
}

/** A repeatable flag: every value, in order. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** An integer flag value, refused as pflag refuses it. */
export function intArg(value: string): string {
  if (!/^[+-]?\d+$/.test(value.trim())) {
    throw new ArgumentValueError(`strconv.ParseInt: parsing "${value}": invalid syntax`);
  }
  return value.trim();
}

/** An `--env-file` that cannot be read; the message is docker's (`open F: no such file ...`). */
export class EnvFileError extends UsageError {
  constructor(readonly path: string, readonly code: string, readonly reason: string) {
    super(`open ${path}: ${reason}`);
    this.name = "EnvFileError";
  }
}

/** `--env-file`: refused at once, naming the file, when it cannot be read. */
export function envFile(value: string, previous: string[] = []): string[] {
  try {
    Deno.readTextFileSync(value);
  } catch (err) {
    const code = (err as { code?: string }).code ?? "EIO";
    const reason = err instanceof Deno.errors.NotFound
      ? "no such file or directory"
      : err instanceof Deno.errors.PermissionDenied
      ? "permission denied"
      : err instanceof Deno.errors.IsADirectory
      ? "is a directory"
      : (err as Error).message.replace(/ \(os error \d+\).*$/, "").toLowerCase();
    throw new EnvFileError(value, code, reason);
  }
  return [...previous, value];
}

/** `--label`: checked at once as docker's CLI checks it (a name, no whitespace in it). */
export function label(value: string, previous: string[] = []): string[] {
  try {
    parseLabel(value);
  } catch (err) {
    throw new ArgumentValueError((err as Error).message);
  }
  return [...previous, value];
}

const NETWORKS = ["private", "none", "host", "default", "bridge", "pasta", "slirp4netns"];

/** `--network`: a mode, `container:NAME`, or a network's name (it must exist: checked at create). */
export function networkMode(value: string): string {
  if (NETWORKS.includes(value) || /^container:.+/.test(value)) return value;
  if (/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(value)) return value;
  throw new ArgumentValueError(
    `Allowed choices are ${NETWORKS.join(", ")}, container:NAME, a network's name.`,
  );
}

/** A `--health-*` duration: refused as pflag refuses it, kept as typed. */
export function goDuration(value: string): string {
  try {
    parseGoDuration(value);
  } catch (err) {
    throw new ArgumentValueError((err as Error).message);
  }
  return value;
}

/** `--health-retries`: an integer, kept as typed. */
export function retries(value: string): string {
  if (!/^[-+]?\d+$/.test(value)) {
    throw new ArgumentValueError(
      `strconv.ParseInt: parsing ${JSON.stringify(value)}: invalid syntax`,
    );
  }
  return value;
}
