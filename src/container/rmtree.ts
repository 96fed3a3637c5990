/**
 * Removing a directory tree that may hold files of a rootless container's other ids. Such files
 * belong on the host to the user's subordinate ids, which the user cannot delete; inside a user
 * namespace mapped as the container's was, the user is root over all of them. So, as `podman
 * unshare` does, a rootless removal that is refused is retried by tsbox itself (`__rmtree PATH`)
 * started through the clone stub in a fresh user namespace whose maps the parent writes.
 *
 * @module
 */
import {
  bytes,
  CLONE,
  cloneProgram,
  CompiledProgram,
  decodeStatus,
  FAIL_ON_ZERO,
  IGNORE_ERROR,
  type Op,
  str,
  StringArray,
} from "../../ffi/clone.ts";
import { SyscallError } from "../../ffi/errors.ts";
import { closeFd, killPid, pipe, readFd, waitPid, writeFd } from "../../ffi/process.ts";
import { SYS } from "../../ffi/syscall_numbers.ts";
import { TsboxError } from "../errors.ts";
import {
  currentIdentity,
  isRootless,
  type RootlessMapping,
  rootlessMapping,
  writeRootlessMaps,
} from "../runtime/rootless.ts";

/** A tree that could not be removed, neither directly nor in a user namespace. */
export class RemoveTreeError extends TsboxError {
  constructor(readonly path: string, detail: string, options?: ErrorOptions) {
    super(`removing ${path}: ${detail}`, options);
    this.name = "RemoveTreeError";
  }
}

const CLOSE_RANGE_CLOEXEC = 4;

/** Whether this program runs as a `deno compile`d executable (see container/lifecycle.ts). */
function isCompiled(): boolean {
  return !import.meta.url.startsWith("file:") || import.meta.url.includes("/deno-compile-");
}

/** argv of the hidden mode: the compiled tsbox's `__rmtree`, or Deno running the lean entry. */
export function rmtreeArgv(path: string): string[] {
  if (isCompiled()) return [Deno.execPath(), "__rmtree", path];
  const entry = new URL("./rmtree_main.ts", import.meta.url).pathname;
  return [Deno.execPath(), "run", "-A", "--quiet", "--no-config", "--no-lock", entry, path];
}

function refused(err: unknown): boolean {
  return err instanceof Deno.errors.PermissionDenied ||
    (err instanceof Error && /\b(EACCES|EPERM)\b|os error (1|13)\)/.test(err.message));
}

/**
 * Runs the hidden `__rmtree path` in a new user namespace mapped as `maps` and waits for it.
 * The child waits on a pipe until the parent has written the maps, then execs, as root of
 * that namespace.
 */
export async function removeTreeInUserns(path: string, maps: RootlessMapping): Promise<void> {
  const argv = rmtreeArgv(path);
  const env = Object.entries(Deno.env.toObject()).map(([k, v]) => `${k}=${v}`);
  const [syncR, syncW] = pipe();
  const [statusR, statusW] = pipe();
  const open = new Set([syncR, syncW, statusR, statusW]);
  const close = (fd: number) => {
    if (open.delete(fd)) closeFd(fd);
  };
  let pid = -1;
  try {
    const ops: Op[] = [
      { nr: SYS.close, args: [syncW], what: "close the parent's end" },
      {
        nr: SYS.read,
        args: [syncR, bytes(new Uint8Array(8)), 1],
        flags: FAIL_ON_ZERO,
        what: "wait for the id maps",
      },
      // Deno's own descriptors must not leak into the remover.
      {
        nr: SYS.close_range,
        args: [3, 0xffffffff, CLOSE_RANGE_CLOEXEC],
        what: "mark fds above 2 close-on-exec",
      },
      {
        nr: SYS.execve,
        args: [str(argv[0]), new StringArray(argv), new StringArray(env)],
        flags: IGNORE_ERROR,
        what: `execve ${argv[0]}`,
      },
    ];
    const program = CompiledProgram.compile(ops, statusW);
    try {
      pid = cloneProgram(program, CLONE.NEWUSER);
    } finally {
      program.free();
    }
    close(syncR);
    close(statusW);
    await writeRootlessMaps(pid, maps);
    writeFd(syncW, new Uint8Array([1]));
    close(syncW);
    const failure = decodeStatus(await readFd(statusR, 16));
    close(statusR);
    const status = await waitPid(pid);
    pid = -1;
    if (failure) {
      const what = ops[failure.opIndex]?.what ?? `execve ${argv[0]}`;
      const code = new SyscallError("", [], failure.errno).code;
      throw new RemoveTreeError(path, `in a user namespace: ${what}: ${code}`);
    }
    if (status.exitCode !== 0) {
      const how = status.exitCode !== undefined
        ? `exit ${status.exitCode}`
        : `signal ${status.signal}`;
      throw new RemoveTreeError(path, `the remover in a user namespace failed (${how})`);
    }
  } finally {
    if (pid > 0) {
      killPid(pid, 9);
      await waitPid(pid).catch(() => {});
    }
    for (const fd of [...open]) close(fd);
  }
}

/**
 * Removes the tree at `path`; what is already gone counts as removed. Rootless, a removal the
 * kernel refuses (files of the user's subordinate ids) is done again in a user namespace mapped
 * as the user's containers are.
 */
export async function removeTree(
  path: string,
  maps: () => RootlessMapping = () => rootlessMapping(currentIdentity()),
): Promise<void> {
  try {
    await Deno.remove(path, { recursive: true });
    return;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return;
    if (!isRootless() || !refused(err)) {
      throw new RemoveTreeError(path, (err as Error).message, { cause: err });
    }
  }
  await removeTreeInUserns(path, maps());
  try {
    await Deno.lstat(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return;
    throw err;
  }
  throw new RemoveTreeError(path, "still there after removing it in a user namespace");
}
