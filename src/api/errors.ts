/**
 * tsbox's errors as docker's daemon answers them: the status code a client decides by (404 no
 * such object, 409 conflict, 400 bad parameter, 500 the rest) and `{"message": ...}`.
 *
 * @module
 */
import { NotFoundError, TsboxError, UsageError } from "../errors.ts";
import { type ApiResponse, HttpError, json } from "./http.ts";

/** Error classes (by name, so the API need not load every module) docker answers with 409. */
const CONFLICT = new Set([
  "NameConflictError",
  "ContainerStateError",
  "VolumeInUseError",
  "NotRunningError",
  "ContainerNotRunningError",
  "AlreadyRunningError",
  "AttachStateError",
  "PortInUseError",
  "NetworkExistsError",
]);

/** Error classes dockerd answers with 403 (a network in use, an overlapping pool). */
const FORBIDDEN = new Set(["NetworkInUseError", "SubnetOverlapError"]);

/** Error classes that mean the request was wrong: 400. */
const BAD_PARAMETER = new Set([
  "FilterError",
  "InvalidFilterError",
  "InvalidHostnameError",
  "AmbiguousContainerError",
  "InvalidDigestError",
  "DetachKeysError",
  "SyntaxError",
]);

/** The status code docker would answer `err` with. */
export function statusOf(err: unknown): number {
  if (err instanceof HttpError) return err.status;
  if (err instanceof NotFoundError) return 404;
  const name = (err as Error)?.name ?? "";
  if (CONFLICT.has(name)) return 409;
  if (FORBIDDEN.has(name)) return 403;
  if (err instanceof UsageError || BAD_PARAMETER.has(name)) return 400;
  const message = (err as Error)?.message ?? "";
  // removeImage's "conflict: unable to remove repository reference ..." as docker's.
  if (err instanceof TsboxError && /^conflict: /.test(message)) return 409;
  if (err instanceof TsboxError && /^No such /.test(message)) return 404;
  return 500;
}

/** docker's error response for `err`. */
export function errorResponse(err: unknown): ApiResponse {
  const message = err instanceof Error ? err.message : String(err);
  return json(statusOf(err), { message });
}

/** A 400 "bad parameter" error. */
export function badParameter(message: string): HttpError {
  return new HttpError(400, message);
}
