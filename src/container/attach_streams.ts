/**
 * `run -a/--attach STREAM`: which of stdin, stdout and stderr a foreground `run` attaches
 * (docker's flag; all of them without it). Checked before anything is created.
 *
 * @module
 */
import { UsageError } from "../errors.ts";

/** The attached streams. */
export interface AttachStreams {
  readonly stdin: boolean;
  readonly stdout: boolean;
  readonly stderr: boolean;
}

/** The streams `-a` names (undefined without the flag), with docker's refusals. */
export function attachStreams(
  values: readonly string[] | undefined,
  detach: boolean | undefined,
): AttachStreams | undefined {
  if (!values?.length) return undefined;
  if (detach) throw new UsageError("Conflicting options: -a and -d");
  const named = new Set<string>();
  for (const v of values) {
    const s = v.toLowerCase();
    if (s !== "stdin" && s !== "stdout" && s !== "stderr") {
      throw new UsageError(
        `invalid argument "${v}" for "-a, --attach" flag: valid streams are STDIN, STDOUT and STDERR`,
      );
    }
    named.add(s);
  }
  return { stdin: named.has("stdin"), stdout: named.has("stdout"), stderr: named.has("stderr") };
}
