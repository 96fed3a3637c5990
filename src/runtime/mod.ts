/**
 * The container runtime: start a container from layer directories and a process plan, wait for
 * it, clean up. Used by `tsbox run` and by scripts through the public API.
 *
 * @module
 */
export {
  Container,
  type ContainerExit,
  ContainerStartError,
  type MountRequest,
  type NetworkMode,
  type StartOptions,
} from "./container.ts";
export { type Cgroup, CgroupV1, CgroupV2, createCgroup, type ResourceLimits } from "./cgroups.ts";
export { execCandidates, type ImageProcessConfig, parseEnvFile, planProcess } from "./config.ts";
export { CAP, DEFAULT_CAPS } from "./capabilities.ts";
export { type ResolvedUser, resolveUser } from "./user.ts";
export { newContainerId } from "./id.ts";
