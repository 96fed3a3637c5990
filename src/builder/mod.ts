/**
 * Building images from Dockerfiles: the builder, its events and errors, and the parser.
 *
 * @module
 */
export {
  type BuildEvent,
  buildImage,
  BuildInstructionError,
  type BuildOptions,
  type BuildResult,
  BuildStepError,
  PlatformMismatchError,
} from "./builder.ts";
export { BuildSweepError, sweepAbandonedBuilds } from "./sweep.ts";
export { buildPlatforms, parsePlatforms, type PlatformsResult } from "./platforms.ts";
export { ContextArchiveError } from "./stdin_context.ts";
export {
  type Dockerfile,
  DockerfileSyntaxError,
  type Instruction,
  parseDockerfile,
  type Stage,
} from "./dockerfile.ts";
export {
  type BuildContextFlag,
  loadBuildContexts,
  type NamedContext,
  type NamedContexts,
  parseBuildContextFlag,
} from "./build_context.ts";
export { type OutputSpec, parseOutputFlag } from "./export.ts";
export { BuildCacheError, type CacheSpec, parseCacheFlag } from "./cache_io.ts";
export { loadSshAgents, parseSshFlag, type SshAgents } from "./ssh.ts";
export { loadSecrets, parseSecretFlag, type Secrets } from "./secrets.ts";
