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
} from "./builder.ts";
export {
  type Dockerfile,
  DockerfileSyntaxError,
  type Instruction,
  parseDockerfile,
  type Stage,
} from "./dockerfile.ts";
