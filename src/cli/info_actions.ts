/**
 * What `tsbox info` prints (see info_command.ts).
 *
 * @module
 */
import { hostLayout } from "../runtime/cgroups.ts";
import { boundingSet } from "../runtime/security.ts";
import { remapMapping } from "../runtime/userns.ts";
import { VERSION } from "../version.ts";
import { ipForwarding } from "../network/bridge.ts";
import { foreignForwardDrops, forwardDropWarning } from "../network/firewall.ts";
import type { GlobalOptions } from "./globals.ts";
import { GO_TYPE } from "./template/values.ts";

/** Go's name of the host architecture, as docker reports it. */
function goArch(): string {
  return { x86_64: "amd64", aarch64: "arm64" }[Deno.build.arch] ?? Deno.build.arch;
}

function cgroupVersion(): string {
  const layout = hostLayout();
  return layout.v1.size > 0 ? "1" : "2";
}

/**
 * The object `info --format` reads, with docker's field names (system.Info) for what tsbox
 * knows. Opens the store to count containers and images.
 */
export async function infoData(g: GlobalOptions): Promise<Record<string | symbol, unknown>> {
  const { Store } = await import("../store/mod.ts");
  const { listContainers } = await import("../container/state.ts");
  const store = await Store.open(g.root);
  try {
    const containers = listContainers(store);
    const count = (...states: string[]) =>
      containers.filter((c) => states.includes(c.state)).length;
    const security = ["name=seccomp,profile=builtin"];
    if (g.usernsRemap) security.push("name=userns");
    return {
      [GO_TYPE]: "system.dockerInfo",
      Containers: containers.length,
      ContainersRunning: count("running", "restarting"),
      ContainersPaused: count("paused"),
      ContainersStopped: count("exited", "created"),
      Images: store.listImages().length,
      Driver: "overlay2",
      DockerRootDir: g.root,
      CgroupDriver: "cgroupfs",
      CgroupVersion: cgroupVersion(),
      KernelVersion: Deno.osRelease(),
      OperatingSystem: "linux",
      OSType: "linux",
      Architecture: Deno.build.arch,
      NCPU: navigator.hardwareConcurrency,
      MemTotal: Deno.systemMemoryInfo().total,
      Name: Deno.hostname(),
      ServerVersion: VERSION,
      SecurityOptions: security,
      IPv4Forwarding: ipForwarding(),
    };
  } finally {
    store.close();
  }
}

/** The object `version --format` reads (docker's versionInfo: Client and Server). */
export function versionData(): Record<string | symbol, unknown> {
  const common = { Version: VERSION, Os: "linux", Arch: goArch() };
  return {
    [GO_TYPE]: "system.versionInfo",
    Client: { [GO_TYPE]: "system.clientVersion", Platform: { Name: "tsbox" }, ...common },
    Server: {
      [GO_TYPE]: "*types.Version",
      Platform: { Name: "tsbox" },
      ...common,
      KernelVersion: Deno.osRelease(),
    },
  };
}

/** `version` without a format, as docker prints it. */
export function versionText(): string {
  const v = versionData() as { Client: { Version: string; Os: string; Arch: string } };
  return [
    "Client:",
    ` Version:           ${v.Client.Version}`,
    ` OS/Arch:           ${v.Client.Os}/${v.Client.Arch}`,
    "",
    "Server: tsbox (no daemon: the same program)",
    " Engine:",
    `  Version:          ${v.Client.Version}`,
    `  OS/Arch:          ${v.Client.Os}/${v.Client.Arch}`,
    `  Kernel Version:   ${Deno.osRelease()}`,
  ].join("\n");
}

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
    `IPv4 Forwarding: ${
      ipForwarding() ? "on" : "off (tsbox turns it on when a bridge network is first used)"
    }`,
  ];
  const drops = foreignForwardDrops();
  if (drops.length > 0) lines.push(forwardDropWarning(drops, []));
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
