/**
 * `linux.seccomp.flags`: the SECCOMP_FILTER_FLAG_* the filter is installed with (the second
 * argument of seccomp(SECCOMP_SET_MODE_FILTER)). The ones that only change how the filter
 * is installed or logged are honoured: TSYNC (the process is single-threaded when it installs
 * the filter, so it changes nothing but is valid), LOG (actions other than ALLOW are logged)
 * and SPEC_ALLOW (no forced speculative-store-bypass mitigation). The ones that need a
 * seccomp-notify agent (NEW_LISTENER, WAIT_KILLABLE_RECV, and TSYNC_ESRCH that only matters
 * with it) are refused, since tsbox has no `listenerPath` support.
 *
 * @module
 */
import { OciConfigError } from "./oci_config.ts";
import type { InstalledFilter } from "./security.ts";

/** include/uapi/linux/seccomp.h. */
export const SECCOMP_FILTER_FLAG = {
  SECCOMP_FILTER_FLAG_TSYNC: 1,
  SECCOMP_FILTER_FLAG_LOG: 2,
  SECCOMP_FILTER_FLAG_SPEC_ALLOW: 4,
  SECCOMP_FILTER_FLAG_NEW_LISTENER: 8,
  SECCOMP_FILTER_FLAG_TSYNC_ESRCH: 16,
  SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV: 32,
} as const;

/** The flags honoured (features.json's `seccomp.supportedFlags`). */
export const SUPPORTED_SECCOMP_FLAGS: readonly string[] = [
  "SECCOMP_FILTER_FLAG_TSYNC",
  "SECCOMP_FILTER_FLAG_LOG",
  "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
];

/** The flag word of `names`; an unknown or unsupported name is an OciConfigError. */
export function seccompFlags(names: readonly string[] | undefined | null): number {
  let flags = 0;
  for (const name of names ?? []) {
    if (!(name in SECCOMP_FILTER_FLAG)) {
      throw new OciConfigError(`linux.seccomp.flags: unknown flag ${JSON.stringify(name)}`);
    }
    if (!SUPPORTED_SECCOMP_FLAGS.includes(name)) {
      throw new OciConfigError(
        `linux.seccomp.flags: ${name} is not supported (it needs a seccomp notify agent, ` +
          `linux.seccomp.listenerPath, which tsbox does not implement)`,
      );
    }
    flags |= SECCOMP_FILTER_FLAG[name as keyof typeof SECCOMP_FILTER_FLAG];
  }
  return flags;
}

/** `filter` installed with the flags of `names` (undefined stays undefined). */
export function withSeccompFlags(
  filter: InstalledFilter | undefined,
  names: readonly string[] | undefined | null,
): InstalledFilter | undefined {
  const flags = seccompFlags(names);
  return filter && flags ? { ...filter, flags } : filter;
}
