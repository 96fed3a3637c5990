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
}

/** `--log-driver`s that docker has and tsbox does not (refused by name, not as unknown). */
const OTHER_DRIVERS = [
  "syslog",
  "journald",
  "gelf",
  "fluentd",
  "awslogs",
  "splunk",
  "etwlogs",
  "gcplogs",
  "logentries",
];

/** `logs` of a container whose driver keeps nothing (`none`): docker's message, exit 1. */
export class LogReadError extends TsboxError {
  override readonly exitCode = 1;
  constructor() {
    super("configured logging driver does not support reading");
    this.name = "LogReadError";
  }
}

/**
 * Parses `--log-driver` (json-file, local: the same file format here, with docker's local
 * defaults of 20m and 5 files; none: nothing kept) and its `--log-opt KEY=VALUE` values;
 * throws docker's messages for bad ones.
 */
export function parseLogOpts(
  values: readonly string[],
  driver = "json-file",
): LogOptions | undefined {
  if (OTHER_DRIVERS.includes(driver)) {
    throw new UsageError(`the ${driver} log driver is not supported by tsbox`);
  }
  if (!["json-file", "local", "none"].includes(driver)) {
    throw new UsageError(`logger: no log driver named '${driver}' is registered`);
  }
  if (driver === "none") {
    if (values.length > 0) {
      throw new UsageError(`unknown log opt '${values[0].split("=")[0]}' for none log driver`);
    }
    return { driver: "none", maxFile: 1, given: {} };
  }
  if (values.length === 0 && driver === "json-file") return undefined;
  const local = driver === "local";
  let maxSize: number | undefined = local ? 20 * 1024 * 1024 : undefined;
  let maxFile = local ? 5 : 1;
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
    } else if (local && key === "compress") {
      // Accepted as docker's local driver takes it; rotated files stay uncompressed here.
    } else {
      throw new UsageError(`unknown log opt '${key}' for ${driver} log driver`);
    }
  }
  if (maxFile > 1 && maxSize === undefined) {
    throw new UsageError("max-file cannot be greater than 1 without max-size");
  }
  return { ...(local ? { driver: "local" as const } : {}), maxSize, maxFile, given };
}
