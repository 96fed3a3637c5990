/**
 * Image commands: pull, images, tag, rmi, image inspect.
 *
 * @module
 */
import type { Command } from "commander";

/** Defines the image commands on the program. */
export function defineImageCommands(_program: Command): void {
}
