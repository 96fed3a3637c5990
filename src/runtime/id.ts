/**
 * Container ids, in a module of their own so that recording a container (`create`, `run -d`)
 * does not load the runtime that starts one.
 *
 * @module
 */

/** A new container id: 64 random hex digits (the hostname is its first 12). */
export function newContainerId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
