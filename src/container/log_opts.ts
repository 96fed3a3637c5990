/**
 * `--log-opt` for the json-file log, as docker's json-file driver reads them: `max-size`
 * (bytes a file may reach before it is rotated; binary units, `10m`) and `max-file` (how many
 * files to keep, the live one included). Without `max-size` the log grows without bound, as
 * docker's does.
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import { parseBytes } from "./flag_values.ts";
import type { LogRotation } from "./logs.ts";

/** The log's rotation settings (what the log writer takes), and the options as given. */
export interface LogOptions extends LogRotation {
  /** The options as given (inspect's `HostConfig.LogConfig.Config`). */
  readonly given: Readonly<Record<string, string>>;
}

/** Parses `--log-opt KEY=VALUE` values; throws docker's messages for bad ones. */
export function parseLogOpts(values: readonly string[]): LogOptions | undefined {
  if (values.length === 0) return undefined;
  let maxSize: number | undefined;
  let maxFile = 1;
  const given: Record<string, string> = {};
  for (const v of values) {
    const eq = v.indexOf("=");
    if (eq <= 0) throw new UsageError(`invalid key value pair format in --log-opt: ${v}`);
    const key = v.slice(0, eq);
    const value = v.slice(eq + 1);
    given[key] = value;
    if (key === "max-size") {
      const n = parseBytes(value, "--log-opt max-size");
      if (n <= 0) throw new UsageError(`max-size must be a positive number: ${value}`);
      maxSize = n;
    } else if (key === "max-file") {
      if (!/^-?[0-9]+$/.test(value)) {
        throw new UsageError(`invalid value "${value}" for --log-opt max-file: expected a number`);
      }
      maxFile = Number(value);
      if (maxFile < 1) throw new UsageError("max-file cannot be less than 1");
    } else {
      throw new UsageError(`unknown log opt '${key}' for json-file log driver`);
    }
  }
  if (maxFile > 1 && maxSize === undefined) {
    throw new UsageError("max-file cannot be greater than 1 without max-size");
  }
  return { maxSize, maxFile, given };
}
