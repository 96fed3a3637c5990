/**
 * The overlay holder of a rootless start: a process in a new user and mount namespace, mapped
 * as the container will be, that mounts the container's overlay and keeps it mounted while
 * this process prepares the rootfs through `/proc/PID/root` (reads /etc/passwd, creates mount
 * targets). A rootless parent cannot mount in its own namespace and no JS may run in a cloned
 * child, so this is how it sees the rootfs before the container's first process mounts the same
 * overlay again in its own namespaces.
 *
 * It is launched through launch.ts's one handshake, held: once its mount is made it reports
 * ready and blocks reading a pipe whose write end only this process holds, so that it ends
 * when released or when this process dies.
 *
 * @module
 */
import { bytes, CLONE, FAIL_ON_ZERO, type Op, str } from "../../ffi/clone.ts";
import { SyscallError } from "../../ffi/errors.ts";
import { MS } from "../../ffi/mount.ts";
import { SYS } from "../../ffi/syscall_numbers.ts";
import type { Host } from "./host.ts";
import { launch, READY_RECORD } from "./launch.ts";
import { overlayOps, syncOps } from "./program.ts";
import type { RootlessMapping } from "./rootless.ts";
import { UsernsError } from "./userns.ts";

/** A mounted overlay held in a holder's namespaces. */
export interface HeldOverlay {
  /** PID of the holder (in the host's PID namespace). */
  readonly pid: number;
  /**
   * The mounted rootfs as this process sees it (`/proc/PID/root/<rootfs>`): the holder's mount
   * namespace, entered through its root link, so files can be read and mount targets created.
   */
  readonly view: string;
  /** Lets the holder exit (its namespaces, and the mount, go with it) and reaps it. */
  release(): Promise<void>;
}

/** The holder's program: released, `/` private, the overlay mounted, ready, then held. */
export function holderOps(
  fds: { syncFd: number; closeFds: readonly number[]; statusFd: number },
  holdFd: number,
  rootfs: string,
  overlay: { readonly lowerBase: string; readonly options: string },
): Op[] {
  const ready = new Uint8Array(16);
  new DataView(ready.buffer).setBigInt64(0, BigInt(READY_RECORD), true);
  return [
    ...syncOps(fds),
    { nr: SYS.mount, args: [0, str("/"), 0, MS.REC | MS.PRIVATE, 0], what: "make / rprivate" },
    ...overlayOps(rootfs, overlay),
    { nr: SYS.write, args: [fds.statusFd, bytes(ready), 16], what: "report the mount made" },
    // Ends (read returns 0) once the parent closes its end: released, or dead.
    {
      nr: SYS.read,
      args: [holdFd, bytes(new Uint8Array(8)), 1],
      flags: FAIL_ON_ZERO,
      what: "hold the mount",
    },
  ];
}

/**
 * Mounts the overlay `options` (lower entries relative to `lowerBase`) on `rootfs` in a new
 * user+mount namespace mapped as `maps`, and keeps it there until released; see the module doc.
 */
export async function holdOverlay(
  host: Host,
  rootfs: string,
  overlay: { readonly lowerBase: string; readonly options: string },
  maps: RootlessMapping,
): Promise<HeldOverlay> {
  const [holdR, holdW] = host.pipe();
  let holdROpen = true;
  const closeHoldR = () => {
    if (holdROpen) host.closeFd(holdR);
    holdROpen = false;
  };
  try {
    const { pid } = await launch(host, {
      argv0: "overlay holder",
      tty: false,
      flags: CLONE.NEWUSER | CLONE.NEWNS,
      hold: true,
      program: (fds) =>
        holderOps(
          { ...fds, closeFds: [...fds.closeFds, holdW] },
          holdR,
          rootfs,
          overlay,
        ),
      cloned: closeHoldR,
      afterClone: (pid) => host.writeRootlessMaps(pid, maps),
      failure: (failure, ops) => {
        const what = ops[failure.opIndex]?.what ?? `op ${failure.opIndex}`;
        const code = new SyscallError("", [], failure.errno).code;
        return new UsernsError(`mounting the rootfs in a user namespace: ${what}: ${code}`);
      },
    });
    let released = false;
    return {
      pid,
      view: `/proc/${pid}/root${rootfs}`,
      release: async () => {
        if (released) return;
        released = true;
        host.closeFd(holdW);
        host.killPid(pid, 9);
        await host.waitPid(pid).catch(() => {});
      },
    };
  } catch (err) {
    closeHoldR();
    host.closeFd(holdW);
    throw err;
  }
}
