/**
 * What `tsbox info` prints (see info_command.ts).
 *
 * @module
 */
import { hostLayout } from "../runtime/cgroups.ts";
import { boundingSet } from "../runtime/security.ts";
import { remapMapping } from "../runtime/userns.ts";
import { VERSION } from "../version.ts";
import type { GlobalOptions } from "./globals.ts";

/** The report, one `Key: value` per line. */
export function infoText(g: GlobalOptions): string {
  const layout = hostLayout();
  const v1 = [...layout.v1.keys()];
  const cgroup = v1.length > 0 && layout.v2Controllers.length === 0
    ? "1"
    : v1.length === 0
    ? "2"
    : `hybrid (v1: ${v1.join(",")}; v2: ${layout.v2Controllers.join(",") || "none"})`;
  const security = ["seccomp (docker default profile, x86-64 cBPF)", "no-new-privileges (opt-in)"];
  if (g.usernsRemap) security.push(`userns (remap: ${g.usernsRemap})`);
  const lines = [
    `Server Version: ${VERSION}`,
    `Storage Driver: overlay2`,
    `Root Dir: ${g.root}`,
    `Cgroup Driver: cgroupfs`,
    `Cgroup Version: ${cgroup}`,
    `Devices Cgroup: ${
      layout.v1.has("devices") ? "v1 (enforced)" : "none (cgroup v2 device programs not loaded)"
    }`,
    `Security Options: ${security.join(", ")}`,
    `Capabilities Available: ${boundingSet().length}`,
    `Kernel Version: ${Deno.osRelease()}`,
    `Architecture: ${Deno.build.arch}`,
  ];
  if (g.usernsRemap) {
    try {
      // Reading only: `default` creates its range on the first run, not here.
      const m = g.usernsRemap === "default" ? undefined : remapMapping(g.usernsRemap);
      lines.push(
        m
          ? `User Namespace Mapping: uid 0->${m.uid[0].outside} (${m.uid[0].count}), gid 0->${
            m.gid[0].outside
          } (${m.gid[0].count})`
          : `User Namespace Mapping: tsbox range of /etc/subuid and /etc/subgid`,
      );
    } catch (err) {
      lines.push(`User Namespace Mapping: ${(err as Error).message}`);
    }
  }
  return lines.join("\n");
}
