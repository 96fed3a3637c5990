/**
 * `tsbox run`.
 *
 * @module
 */
import type { Command } from "commander";

/** Defines `run` on the program. */
export function defineRunCommand(_program: Command): void {
  // Filled in by the run work (issue: run).
}
