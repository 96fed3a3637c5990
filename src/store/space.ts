/**
 * A floor of free space for writers of the store. A pulled layer is hostile input: a 1 MB gzip
 * can unpack to a terabyte, and a registry can declare a blob larger than any disk. Writers
 * account the bytes they are about to write and the guard looks at the filesystem (statvfs)
 * every few MB, failing with {@link DiskFullError} while a floor is still free, so the disk is
 * never filled to the last block (which breaks the database and every other program on it).
 *
 * @module
 */
import { statvfs } from "../../ffi/statvfs.ts";
import { TsboxError } from "../errors.ts";

const MiB = 1024 * 1024;

/**
 * A write that would take, or took, the filesystem below its floor or out of space. The message
 * names the operation, the path and the cause.
 */
export class DiskFullError extends TsboxError {
  constructor(
    message: string,
    /** The path being written (a file or the directory written into). */
    readonly path: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "DiskFullError";
  }
}

/** Options of {@link SpaceGuard}. */
export interface SpaceGuardOptions {
  /**
   * Bytes to keep free; default 5% of the filesystem, at least 1 MiB and at most 256 MiB.
   * 0 turns the guard off: only the kernel's ENOSPC stops a writer then.
   */
  floorBytes?: number;
  /** Look at the filesystem again after this many bytes were accounted (default 1 MiB). */
  checkEvery?: number;
}

/** A {@link SpaceGuard} as it crosses to a worker (structured-clonable). */
export interface SharedSpace {
  readonly dir: string;
  readonly floorBytes: number | undefined;
  readonly checkEvery: number;
  readonly counter: SharedArrayBuffer;
}

/** "1.5 MiB" */
export function mib(bytes: number): string {
  const v = bytes / MiB;
  return `${v >= 10 || Number.isInteger(v) ? Math.round(v) : v.toFixed(1)} MiB`;
}

/** The default floor for a filesystem of `totalBytes`. */
export function defaultFloor(totalBytes: number): number {
  return Math.min(256 * MiB, Math.max(1 * MiB, Math.floor(totalBytes / 20)));
}

/** True when `err` (or an error it wraps) is ENOSPC or EDQUOT. */
export function isNoSpace(err: unknown): boolean {
  for (let e = err, depth = 0; e && depth < 8; e = (e as Error).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (code === "ENOSPC" || code === "EDQUOT") return true;
  }
  return false;
}

/**
 * Watches the free space and inodes of the filesystem holding `dir`. One guard may be shared by
 * writers running at once: they account into one counter, so the overshoot between two looks is
 * at most `checkEvery` plus one chunk.
 */
export class SpaceGuard {
  readonly #checkEvery: number;
  readonly #floorOption: number | undefined;
  #floorBytes: number | undefined;
  #floorInodes = 0;
  /** Bytes accounted since the last look: one cell shared with the guard's workers. */
  readonly #sinceCheck: Int32Array;

  constructor(
    readonly dir: string,
    options: SpaceGuardOptions = {},
    counter: SharedArrayBuffer = new SharedArrayBuffer(4),
  ) {
    this.#floorOption = this.#floorBytes = options.floorBytes;
    this.#checkEvery = options.checkEvery ?? 1 * MiB;
    this.#sinceCheck = new Int32Array(counter);
  }

  /**
   * What a worker needs to account into this guard's counter (see {@link fromShared}): writers
   * on several threads then still share one counter, and the overshoot bound holds for all.
   */
  share(): SharedSpace {
    return {
      dir: this.dir,
      floorBytes: this.#floorOption,
      checkEvery: this.#checkEvery,
      counter: this.#sinceCheck.buffer as SharedArrayBuffer,
    };
  }

  /** A guard in a worker that accounts into the counter of the guard that gave `shared`. */
  static fromShared(shared: SharedSpace): SpaceGuard {
    return new SpaceGuard(
      shared.dir,
      { floorBytes: shared.floorBytes, checkEvery: shared.checkEvery },
      shared.counter,
    );
  }

  /**
   * Accounts `bytes` about to be written (and `inodes` about to be made); looks at the
   * filesystem when enough was written since the last look.
   *
   * @throws {DiskFullError} when the floor would be crossed.
   */
  reserve(bytes: number, inodes = 0): void {
    // Each new file also costs at least a block of metadata: count it so that a layer of
    // millions of empty files is looked at too.
    const cost = bytes + inodes * 4096;
    if (Atomics.add(this.#sinceCheck, 0, cost) + cost < this.#checkEvery) return;
    // What was written before is in statvfs' figures; this write is not yet.
    this.check(cost);
  }

  /**
   * Looks at the filesystem now.
   *
   * @param need bytes that are about to be written on top (e.g. a blob's declared size).
   * @throws {DiskFullError} when fewer than `need` + the floor bytes are free.
   */
  check(need = 0): void {
    Atomics.store(this.#sinceCheck, 0, 0);
    if (this.#floorBytes === 0) return;
    const space = statvfs(this.dir);
    this.#floorBytes ??= defaultFloor(space.totalBytes);
    if (space.totalInodes > 0 && this.#floorInodes === 0) {
      this.#floorInodes = Math.min(10_000, Math.max(64, Math.floor(space.totalInodes / 100)));
    }
    if (space.availableBytes - need < this.#floorBytes) {
      const wanted = need > 0 ? `${mib(need)} more would leave less than ` : "below ";
      throw new DiskFullError(
        `the disk is full: ${mib(space.availableBytes)} free on the filesystem of ${this.dir}, ` +
          `${wanted}the ${mib(this.#floorBytes)} tsbox keeps free`,
        this.dir,
      );
    }
    if (space.totalInodes > 0 && space.availableInodes < this.#floorInodes) {
      throw new DiskFullError(
        `the disk is out of inodes: ${space.availableInodes} left on the filesystem of ` +
          `${this.dir}, below the ${this.#floorInodes} tsbox keeps free`,
        this.dir,
      );
    }
  }
}

/**
 * Runs `fn`; a failure for want of space (the guard's, ENOSPC or EDQUOT) comes out as a
 * {@link DiskFullError} whose message starts with `doing` (e.g. "layer sha256:ab..: unpacking
 * into /var/lib/tsbox/layers/.tmp-x"). Other errors pass unchanged.
 */
export async function namingDiskFull<T>(
  doing: string,
  path: string,
  fn: () => Promise<T>,
): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw diskFullIn(doing, path, err);
  }
}

/**
 * `err` with `doing` in front when it is a want of space while writing `path` (see
 * {@link namingDiskFull}); any other error unchanged.
 */
export function diskFullIn(doing: string, path: string, err: unknown): unknown {
  if (err instanceof DiskFullError) {
    return new DiskFullError(`${doing}: ${err.message}`, path, { cause: err });
  }
  if (isNoSpace(err)) {
    const what = (err as { code?: string }).code === "EDQUOT"
      ? "disk quota exceeded"
      : "no space left on device";
    return new DiskFullError(`${doing}: ${what} (${(err as Error).message})`, path, {
      cause: err,
    });
  }
  return err;
}
