/**
 * `--log-opt` for the json-file log, as docker's json-file driver reads them: `max-size`
 * (bytes a file may reach before it is rotated; binary units, `10m`) and `max-file` (how many
 * files to keep, the live one included). Without `max-size` the log grows without bound, as
 * docker's does.
 *
 * @module
 */
import { TsboxError, UsageError } from "../errors.ts";
import { parseBytes } from "../runtime/options.ts";
import type { LogRotation } from "./logs.ts";

/** The log's rotation settings (what the log writer takes), and the options as given. */
export interface LogOptions extends LogRotation {
  /** The options as given (inspect's `HostConfig.LogConfig.Config`). */
  readonly given: Readonly<Record<string, string>>;
  /** `--log-driver`; json-file when absent. */
  readonly driver?: LogDriver;
}

/** The log drivers tsbox has: docker's `local` is kept in json-file's format here. */
export type LogDriver = "json-file" | "local" | "none";

const DRIVERS: readonly string[] = ["json-file", "local", "none"];

/** `logs` of a container whose driver keeps nothing (docker's message and exit code). */
export class LogsNotReadableError extends TsboxError {
  override readonly exitCode = 1;
  constructor() {
    super("configured logging driver does not support reading");
    this.name = "LogsNotReadableError";
  }
}

/**
 * Parses `--log-driver` and `--log-opt KEY=VALUE` values; throws docker's messages for bad
 * ones. `local` rotates at 20m over 5 files unless told otherwise (docker's defaults); `none`
 * keeps nothing and takes any options, as docker's.
 */
export function parseLogOpts(
  values: readonly string[],
  driver = "json-file",
): LogOptions | undefined {
  if (!DRIVERS.includes(driver)) {
    throw new TsboxError(`logger: no log driver named '${driver}' is registered`);
  }
  if (driver === "none") return { maxFile: 1, given: {}, driver, discard: true };
  const opts = parseJsonFileOpts(values, driver);
  if (driver === "json-file") return opts;
  return {
    maxSize: opts?.maxSize ?? 20 << 20,
    maxFile: opts?.given["max-file"] !== undefined ? opts.maxFile : 5,
    given: opts?.given ?? {},
    driver: "local",
  };
}

function parseJsonFileOpts(values: readonly string[], driver: string): LogOptions | undefined {
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
    } else if (!(driver === "local" && key === "compress")) {
      throw new UsageError(`unknown log opt '${key}' for ${driver} log driver`);
    }
  }
  if (maxFile > 1 && maxSize === undefined && driver === "json-file") {
    throw new UsageError("max-file cannot be greater than 1 without max-size");
  }
  return { maxSize, maxFile, given };
}
