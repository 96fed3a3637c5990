/**
 * Command-line mistakes in docker's words: one line naming the problem, then `See 'tsbox run
 * --help'.` for the command at fault, instead of commander's message followed by the whole help.
 *
 * @module
 */
import type { Command } from "commander";

/** What {@link commandPath} needs of a command. */
interface Named {
  name(): string;
  readonly parent: Named | null;
}

/** `tsbox container ls`: the names from the program down to `cmd`. */
export function commandPath(cmd: Named): string {
  const names: string[] = [];
  for (let c: Named | null = cmd; c; c = c.parent) names.unshift(c.name());
  return names.join(" ");
}

/**
 * docker's (pflag's) wording for a commander error message (`error: unknown option '--x'`):
 * `unknown flag: --x`, `flag needs an argument: --name`, `invalid argument "v" for "--f" flag`.
 */
export function dockerFlagMessage(cmd: Command, message: string): string {
  const text = message.trim().split("\n")[0].replace(/^error: /, "");
  let m = /^unknown option '(-[^-'][^']*)'/.exec(text);
  if (m) return `unknown shorthand flag: '${m[1][1]}' in ${m[1]}`;
  m = /^unknown option '([^']*)'/.exec(text);
  if (m) return `unknown flag: ${m[1]}`;
  m = /^option '(?:-\w, )?(--?[\w-]+)[^']*' argument missing/.exec(text);
  if (m) return `flag needs an argument: ${m[1]}`;
  m = /^option '(?:-\w, )?(--?[\w-]+)[^']*' argument '([^']*)' is invalid\.\s*(.*)$/.exec(text);
  if (m) return `invalid argument "${m[2]}" for "${m[1]}" flag: ${m[3]}`;
  m = /^missing required argument/.exec(text);
  if (m) return `"${commandPath(cmd)}" requires at least 1 argument.`;
  m = /^unknown command '([^']*)'/.exec(text);
  if (m) return `${commandPath(cmd)}: '${m[1]}' is not a tsbox command.`;
  return text;
}

/**
 * Makes every command of `program` report its usage errors as docker does: the message in
 * docker's words and `See '<command> --help'.` (no help dump). `onCommand` learns each
 * subcommand as commander enters it, so later errors can name it too.
 */
export function dockerUsageErrors(program: Command, onCommand: (cmd: Command) => void): void {
  const walk = (cmd: Command) => {
    cmd.showHelpAfterError(false).configureOutput({
      outputError: (str, write) => {
        write(`${dockerFlagMessage(cmd, str)}\nSee '${commandPath(cmd)} --help'.\n`);
      },
    });
    if (cmd.commands.length > 0) {
      cmd.hook("preSubcommand", (_self, sub) => onCommand(sub as Command));
    }
    for (const sub of cmd.commands) walk(sub as Command);
  };
  walk(program);
}
