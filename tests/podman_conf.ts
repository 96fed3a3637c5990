/**
 * The containers.conf the tests give podman (through CONTAINERS_CONF): default ulimits these
 * machines allow (setrlimit above the hard limit is refused here), and podman's own runtime
 * files under the test's directory instead of the host's /run/libpod, which another test or a
 * reboot may have removed.
 *
 * @module
 */
import { join } from "node:path";

/** The text of a containers.conf for a podman whose state lives under `dir`. */
export function podmanConfText(dir: string): string {
  return '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n' +
    `[engine]\ntmp_dir = "${join(dir, "tmp")}"\n`;
}
