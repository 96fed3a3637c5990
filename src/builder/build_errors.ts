/**
 * The errors of a build and the platform checks they use (shared by the builder and its step
 * files).
 *
 * @module
 */
import type { ImageConfig } from "../../registry/manifest.ts";
import {
  formatPlatform,
  NoMatchingPlatformError,
  normalizePlatform,
  type Platform,
  selectManifest,
} from "../../registry/platform.ts";
import { TsboxError } from "../errors.ts";
import type { ImageRecord } from "../store/mod.ts";
import type { Instruction } from "./dockerfile.ts";

/**
 * A RUN that exited non-zero. As docker's classic builder, `build` then exits 1 (not the RUN's
 * code, which scripts could mistake for one of tsbox's own) and the message names the command
 * and its code.
 */
export class BuildStepError extends TsboxError {
  override readonly exitCode = 1;
  constructor(
    /** The RUN's command as run (`/bin/sh -c ...`). */
    readonly command: readonly string[],
    /** The RUN's exit code (128+N for signal N). */
    readonly code: number,
  ) {
    super(`The command '${command.join(" ")}' returned a non-zero code: ${code}`);
    this.name = "BuildStepError";
  }
}

/** An instruction whose arguments make no sense (names the line). */
export class BuildInstructionError extends TsboxError {
  constructor(file: string, ins: Instruction, detail: string) {
    super(`${file}:${ins.line}: ${ins.keyword}: ${detail}`);
    this.name = "BuildInstructionError";
  }
}

/** A base image that is not of the platform the build asked for. */
export class PlatformMismatchError extends TsboxError {
  constructor(name: string, wanted: Platform, image: ImageRecord, pullFailure?: string) {
    const actual = formatPlatform(platformOf(image));
    super(
      `image with reference ${name} was found but does not match the specified platform: ` +
        `wanted ${formatPlatform(wanted)}, actual: ${actual}` +
        (pullFailure
          ? ` (and pulling it for ${formatPlatform(wanted)} failed: ${pullFailure})`
          : ""),
    );
    this.name = "PlatformMismatchError";
  }
}

/** The platform an image config names, as docker shows it. */
export function platformOf(image: { readonly config: ImageConfig }): Platform {
  const c = image.config;
  // Normalised as docker shows platforms (arm64's v8 variant is implied).
  return normalizePlatform({ os: c.os, architecture: c.architecture, variant: c.variant });
}

/** Whether `image` runs on `wanted`, by the same rules (and fallbacks) as choosing from an index. */
export function runsOn(image: { readonly config: ImageConfig }, wanted: Platform): boolean {
  const one = { mediaType: "", digest: "", size: 0, platform: platformOf(image) };
  try {
    selectManifest({ schemaVersion: 2, manifests: [one] }, wanted);
    return true;
  } catch (err) {
    if (err instanceof NoMatchingPlatformError) return false;
    throw err;
  }
}
