/**
 * `--init`: finding the small init that runs as the container's PID 1 (reaping orphans,
 * forwarding signals) in front of the command: Debian's `catatonit`, which podman uses. The
 * runtime binds it read-only into the container (a mount of its config.json at INIT_PATH, src/runtime/defaults.ts).
 *
 * @module
 */
import { UsageError } from "../errors.ts";

/** Host paths tried in order: Debian's catatonit package, then podman's own copy. */
const CANDIDATES = ["/usr/bin/catatonit", "/usr/libexec/podman/catatonit"];

/**
 * The host path of the init binary for `--init`: `TSBOX_INIT` when set, else the first
 * catatonit found. Throws a usage error (exit 125, before anything is created) when none is.
 */
export function findInitBinary(env: string | undefined = Deno.env.get("TSBOX_INIT")): string {
  const wanted = env ? [env] : CANDIDATES;
  for (const path of wanted) {
    try {
      const info = Deno.statSync(path);
      if (info.isFile && ((info.mode ?? 0) & 0o111) !== 0) return path;
    } catch {
      // not there: try the next
    }
  }
  throw new UsageError(
    env
      ? `--init: TSBOX_INIT=${env} is not an executable file`
      : `--init: no init binary found (looked for ${
        CANDIDATES.join(", ")
      }); install catatonit (apt-get install catatonit) or set TSBOX_INIT`,
  );
}
