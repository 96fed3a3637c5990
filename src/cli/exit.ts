/**
 * The exit code a command asks for without failing (for example `run` returning the
 * container's code). Kept apart from errors, which carry their own.
 *
 * @module
 */
let code = 0;

/** Sets the process exit code that the CLI returns once the command finishes. */
export function setExitCode(value: number): void {
  code = value;
}

/** The exit code set by the command, 0 by default. */
export function exitCode(): number {
  return code;
}
