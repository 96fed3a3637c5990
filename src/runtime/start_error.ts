/**
 * docker's errors for a start whose child program failed: the status record (which op, which
 * errno) of container.ts's and exec.ts's launch mapped to 126/127 or the failing step.
 *
 * @module
 */
import type { ProgramFailure } from "../../ffi/clone.ts";
import { SyscallError } from "../../ffi/errors.ts";
import { ExecError, TsboxError } from "../errors.ts";

/** A step of the container's setup failed (not the final execve). */
export class ContainerStartError extends TsboxError {
  constructor(readonly step: string, override readonly cause: SyscallError) {
    super(
      `container init: ${step}: ${cause.code} (${cause.message.replace(/^.*\((.*)\)$/, "$1")})`,
      {
        cause,
      },
    );
    this.name = "ContainerStartError";
  }
}

const ENOENT = 2;
const EACCES = 13;
const ENOEXEC = 8;
const EPERM = 1;

/** Maps the status record of a failed start to docker-like errors. */
export function startError(
  failure: ProgramFailure,
  what: readonly string[],
  argv0: string,
): TsboxError {
  if (failure.opIndex < 0) {
    const e = failure.errno === 0 ? ENOENT : failure.errno;
    if (e === ENOENT) {
      return new ExecError(
        argv0.includes("/")
          ? `exec: "${argv0}": stat ${argv0}: no such file or directory`
          : `exec: "${argv0}": executable file not found in $PATH`,
        127,
      );
    }
    if (e === EACCES || e === ENOEXEC || e === EPERM) {
      return new ExecError(`exec: "${argv0}": permission denied`, 126);
    }
    return new ContainerStartError(`execve ${argv0}`, new SyscallError("execve", [argv0], e));
  }
  const step = what[failure.opIndex] ?? `op ${failure.opIndex}`;
  return new ContainerStartError(step, new SyscallError(step.split(" ")[0], [], failure.errno));
}
