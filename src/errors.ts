/**
 * Errors that reach the user. The CLI maps them to docker's exit codes: 125 when tsbox itself
 * fails, 126 when a container's command cannot be executed, 127 when it is not found.
 *
 * @module
 */

/** A failure of tsbox itself, shown as one line; exit code 125 like docker's daemon errors. */
export class TsboxError extends Error {
  /** The process exit code the CLI uses for this error. */
  readonly exitCode: number = 125;
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "TsboxError";
  }
}

/** Bad command-line input: the CLI prints the message and the command's usage. */
export class UsageError extends TsboxError {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** Something named by the user does not exist (image, container, volume, ...). */
export class NotFoundError extends TsboxError {
  constructor(readonly kind: string, readonly ref: string, detail?: string) {
    super(`No such ${kind}: ${ref}${detail ? ` (${detail})` : ""}`);
    this.name = "NotFoundError";
  }
}

/** A container's command could not be run: 126 (not executable) or 127 (not found). */
export class ExecError extends TsboxError {
  override readonly exitCode: 126 | 127;
  constructor(message: string, exitCode: 126 | 127) {
    super(message);
    this.name = "ExecError";
    this.exitCode = exitCode;
  }
}
