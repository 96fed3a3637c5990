/**
 * The container's host name, checked as docker checks it: it ends up in the container's
 * /etc/hosts and /etc/hostname and in sethostname(2), so a newline or a space in it would
 * inject lines into /etc/hosts.
 *
 * @module
 */
import { TsboxError } from "../errors.ts";

/** A `-h`/`--hostname` that is not an RFC 1123 host name. */
export class InvalidHostnameError extends TsboxError {
  constructor(readonly hostname: string) {
    super(
      `invalid hostname format: ${JSON.stringify(hostname)} (RFC 1123: dot-separated labels of ` +
        `letters, digits and inner hyphens, at most 63 characters)`,
    );
    this.name = "InvalidHostnameError";
  }
}

/** One label: ASCII letters and digits, hyphens only inside. */
const LABEL = "[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?";
/** docker's rule: labels joined by dots, 63 bytes at most (HOST_NAME_MAX is 64 with the NUL). */
const HOSTNAME = new RegExp(`^(?:${LABEL}\\.)*${LABEL}$`);

/** Whether `name` is a host name docker accepts. */
export function isValidHostname(name: string): boolean {
  return name.length <= 63 && HOSTNAME.test(name);
}

/** Throws {@link InvalidHostnameError} unless `name` is a valid host name. */
export function checkHostname(name: string): void {
  if (!isValidHostname(name)) throw new InvalidHostnameError(name);
}
