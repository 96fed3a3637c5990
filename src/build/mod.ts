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
export { ContextArchiveError } from "./stdin_context.ts";
export {
  type Dockerfile,
  DockerfileSyntaxError,
  type Instruction,
  parseDockerfile,
  type Stage,
} from "./dockerfile.ts";
