/**
 * Which user-mode network a rootless container gets, and starting/stopping it around a run.
 * The rootless default (docker's `bridge`) is slirp4netns, as for Debian's podman 4.3, then
 * pasta: Debian 12's pasta (passt 2023-03-09) repeats data the host side sends into a TCP stream
 * on newer kernels (seen on 6.18: a page fetched with nc came back over and over), so it is used
 * by default only where slirp4netns is missing; `--network pasta` asks for it by name.
 *
 * @module
 */
import { findPasta, startPasta, stopPasta, tunProblem } from "./pasta.ts";
import { findSlirp4netns, startSlirp4netns, stopSlirp4netns } from "./slirp4netns.ts";

/** A user-mode network helper. */
export type Outbound = "slirp4netns" | "pasta";

/** The helpers `--network` names (`default`/`bridge`: the first usable of both). */
export const OUTBOUND_MODES = new Set(["pasta", "slirp4netns"]);

/**
 * The helper for `mode` (`pasta`, `slirp4netns`, or anything else for the default), or why
 * there is none usable here (one line for the user).
 */
export function chooseOutbound(mode: string): { helper?: Outbound; problem?: string } {
  const wanted: Outbound[] = mode === "pasta"
    ? ["pasta"]
    : mode === "slirp4netns"
    ? ["slirp4netns"]
    : ["slirp4netns", "pasta"];
  const found = { slirp4netns: findSlirp4netns, pasta: findPasta };
  const helper = wanted.find((h) => found[h]() !== undefined);
  if (helper === undefined) {
    const pkg = wanted.map((h) => h === "pasta" ? "passt" : h).join(" or ");
    return { problem: `${wanted.join(" or ")} is not installed (Debian: apt-get install ${pkg})` };
  }
  const tun = tunProblem();
  return tun === undefined ? { helper } : { problem: `${helper}: ${tun}` };
}

/** Starts `helper` for the container whose PID 1 is `pid`; resolves once the route is up. */
export async function startOutbound(stateDir: string, pid: number, helper: Outbound) {
  if (helper === "pasta") startPasta(stateDir, pid);
  else await startSlirp4netns(stateDir, pid);
}

/** Ends whichever helper runs for the container with state directory `stateDir`. */
export function stopOutbound(stateDir: string): void {
  stopPasta(stateDir);
  stopSlirp4netns(stateDir);
}
