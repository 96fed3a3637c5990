/**
 * The container runtime: start a container from layer directories and a process plan, wait for
 * it, clean up. Used by `tsbox run` and by scripts through the public API.
 *
 * @module
 */
export {
  Container,
  type ContainerExit,
  type ContainerSpec,
  ContainerStartError,
  type MountRequest,
  type NetworkMode,
} from "./container.ts";
export { type Cgroup, CgroupV1, CgroupV2, createCgroup, type ResourceLimits } from "./cgroups.ts";
export { execCandidates, type ImageProcessConfig, parseEnvFile, planProcess } from "./config.ts";
export { CAP, DEFAULT_CAPS } from "./capabilities.ts";
export { type ResolvedUser, resolveUser } from "./user.ts";

/** A new container id: 64 random hex digits (the hostname is its first 12). */
export function newContainerId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
