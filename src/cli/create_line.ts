/**
 * The command line a container was created with, in canonical form (long options, defaults
 * left out, `-d` left out), recorded with the container so that `generate systemd --new` can
 * create it again at each start of its unit, as podman records its CreateCommand.
 *
 * @module
 */

/** What is read of an option: commander's Option has it, and so has hot.ts's table. */
export interface OptionLike {
  attributeName(): string;
  readonly long?: string;
  readonly short?: string;
  readonly defaultValue?: unknown;
}

/** Options that say how to run this one time, not what the container is. */
const NOT_RECORDED = new Set(["detach", "attach"]);

function sameAsDefault(value: unknown, option: OptionLike): boolean {
  return JSON.stringify(value) === JSON.stringify(option.defaultValue);
}

/** `run`/`create` options as parsed by `cmd`, then the image and command: what to run again. */
export function createLine(
  cmd: { opts(): object; readonly options: readonly OptionLike[] },
  image: string,
  command: readonly string[],
): string[] {
  const opts = cmd.opts() as Record<string, unknown>;
  const args: string[] = [];
  for (const option of cmd.options) {
    const key = option.attributeName();
    const value = opts[key];
    if (value === undefined || NOT_RECORDED.has(key) || sameAsDefault(value, option)) continue;
    const flag = option.long ?? option.short!;
    if (typeof value === "boolean") {
      if (value) args.push(flag);
    } else if (Array.isArray(value)) {
      for (const v of value) args.push(`${flag}=${v}`);
    } else {
      args.push(`${flag}=${value}`);
    }
  }
  return [...args, image, ...command];
}
