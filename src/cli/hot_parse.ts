/**
 * A parser of the command line for the hot commands (hot_spec.ts) that follows commander's own
 * rules (`Command.parseOptions`: `-abc` groups, `-ovalue`, `--opt=value`, a value taken from the
 * next argument whatever it looks like, `--no-x`, positional program options, pass-through after
 * the first argument of `run`/`exec`) without loading commander.
 *
 * It only accepts what it fully understands and parses the way commander would; anything else
 * (help, an unknown flag, a missing value, a refused value, `--`, too few or too many
 * arguments, another command) gives `undefined`, and the caller hands the whole command line to
 * commander, which then prints its usual answer. hot_spec_test.ts runs both parsers over many
 * command lines and checks they agree.
 *
 * @module
 */
import {
  collect,
  envFile,
  goDuration,
  intArg,
  label,
  networkMode,
  retries,
} from "./arg_parsers.ts";
import { collectFilter } from "./filters.ts";
import { HOT_COMMANDS, HOT_PROGRAM_OPTIONS, type HotOption, type ParserName } from "./hot_spec.ts";

/** A hot command line, parsed: what commander would pass to the command's action. */
export type HotInvocation =
  | { readonly kind: "version" }
  | {
    readonly kind: "command";
    /** The command's name (`ps`). */
    readonly command: string;
    /** The positional arguments grouped as commander groups them (a variadic one is an array). */
    readonly args: unknown[];
    /** The command's options, as commander's `opts()`. */
    readonly opts: Record<string, unknown>;
    /** The program's options (before the command), as commander's `opts()`. */
    readonly programOpts: Record<string, unknown>;
  };

const PARSERS: Record<ParserName, (value: string, previous?: never) => unknown> = {
  collect,
  collectFilter,
  intArg,
  envFile,
  label,
  networkMode,
  goDuration,
  retries,
};

/** Raised inside the parser for any command line it leaves to commander. */
class NotHot extends Error {}

/** Parses `args` (without the program name), or returns `undefined` to leave it to commander. */
export function parseHot(args: readonly string[]): HotInvocation | undefined {
  try {
    return parse(args);
  } catch {
    // NotHot, or a value parser's refusal: commander says it in its own words.
    return undefined;
  }
}

function parse(args: readonly string[]): HotInvocation | undefined {
  const programOpts = initial(HOT_PROGRAM_OPTIONS);
  const given = new Set<string>();
  let version = false;
  const rest = options(args, HOT_PROGRAM_OPTIONS, programOpts, given, (o) => {
    if (o.key !== "version") return false;
    version = true;
    return true;
  });
  // commander prints the version as soon as it meets the flag.
  if (version) return { kind: "version" };
  const [name, ...sub] = rest;
  const spec = name === undefined ? undefined : HOT_COMMANDS[name];
  if (spec === undefined || !Object.hasOwn(HOT_COMMANDS, name)) return undefined;
  for (const o of HOT_PROGRAM_OPTIONS) {
    // Like commander's _parseOptionsEnv: the environment only where the flag was not given.
    const env = o.env === undefined ? undefined : Deno.env.get(o.env);
    if (env !== undefined && !given.has(o.key)) programOpts[o.key] = env;
  }
  const opts = initial(spec.options);
  const operands = options(sub, spec.options, opts, new Set(), () => false, spec.passThrough);
  const grouped: unknown[] = [];
  let i = 0;
  for (const a of spec.args) {
    if (a.variadic) {
      if (a.required && i >= operands.length) throw new NotHot();
      grouped.push(operands.slice(i));
      i = operands.length;
    } else if (i < operands.length) {
      grouped.push(operands[i++]);
    } else if (a.required) {
      throw new NotHot();
    } else {
      grouped.push(undefined);
    }
  }
  if (i < operands.length) throw new NotHot(); // commander refuses excess arguments
  return { kind: "command", command: name, args: grouped, opts, programOpts };
}

/** The values commander sets before parsing: defaults, and true for a lone `--no-x`. */
function initial(specs: readonly HotOption[]): Record<string, unknown> {
  const values: Record<string, unknown> = {};
  for (const o of specs) {
    if (o.default !== undefined) values[o.key] = o.default;
    else if (o.negate) values[o.key] = true;
  }
  return values;
}

/**
 * commander's `parseOptions` over `args` for one command: sets `values` (and the keys given in
 * `given`) and returns the operands. At the program (positional options: options end at the
 * command's name, which must come) and for a pass-through command, the first operand ends
 * option parsing. `stop(o)` true ends at once.
 */
function options(
  args: readonly string[],
  specs: readonly HotOption[],
  values: Record<string, unknown>,
  given: Set<string>,
  stop: (o: HotOption) => boolean,
  passThrough = false,
): string[] {
  const program = specs === HOT_PROGRAM_OPTIONS;
  const find = (flag: string) => specs.find((o) => o.long === flag || o.short === flag);
  const set = (o: HotOption, value?: string) => {
    if (o.listened) throw new NotHot();
    given.add(o.key);
    if (!o.value) {
      values[o.key] = !o.negate;
      return;
    }
    if (value === undefined) throw new NotHot(); // "argument missing"
    values[o.key] = o.parser ? PARSERS[o.parser](value, values[o.key] as never) : value;
  };
  const operands: string[] = [];
  let group: string | undefined;
  let i = 0;
  while (i < args.length || group !== undefined) {
    const arg = group ?? args[i++];
    group = undefined;
    if (arg === "--") throw new NotHot();
    if (arg.length > 1 && arg[0] === "-") {
      const o = find(arg);
      if (o) {
        set(o, o.value ? args[i++] : undefined);
        if (stop(o)) return [];
        continue;
      }
      if (arg.length > 2 && arg[1] !== "-") {
        const first = find(`-${arg[1]}`);
        if (!first) throw new NotHot();
        if (first.value) set(first, arg.slice(2));
        else {
          set(first);
          group = `-${arg.slice(2)}`;
        }
        if (stop(first)) return [];
        continue;
      }
      const eq = arg.indexOf("=");
      if (arg.startsWith("--") && eq > 2) {
        const long = find(arg.slice(0, eq));
        if (long?.value) {
          set(long, arg.slice(eq + 1));
          continue;
        }
      }
      throw new NotHot(); // unknown option, help, or a negative number
    }
    // The command's name at the program; the first argument of a pass-through command.
    if (passThrough || program) return [arg, ...args.slice(i)];
    operands.push(arg);
  }
  if (program) throw new NotHot(); // no command: commander's help
  return operands;
}
