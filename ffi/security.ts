/**
 * Security primitives for the parent side: native memory a child program can point into (the
 * seccomp filter), resource limits, and idmapped mounts (open_tree + mount_setattr + move_mount)
 * for user-namespaced containers.
 *
 * @module
 */
import { check, cstr, errno, openLibc } from "./libc.ts";
import { SyscallError } from "./errors.ts";

const libc = openLibc({
  mmap: { parameters: ["pointer", "usize", "i32", "i32", "i32", "i64"], result: "pointer" },
  munmap: { parameters: ["pointer", "usize"], result: "i32" },
  prlimit: { name: "prlimit64", parameters: ["i32", "i32", "buffer", "buffer"], result: "i32" },
  syscall6: {
    name: "syscall",
    parameters: ["i64", "i64", "i64", "i64", "i64", "i64", "i64"],
    result: "i64",
  },
  prctl: { parameters: ["i32", "u64", "u64", "u64", "u64"], result: "i32" },
});

const NR_OPEN_TREE = 428;
const NR_MOVE_MOUNT = 429;
const NR_MOUNT_SETATTR = 442;

/** open_tree(2) flags. */
export const OPEN_TREE_CLONE = 1;
const OPEN_TREE_CLOEXEC = 0o2000000;
const AT_FDCWD = -100;
const AT_EMPTY_PATH = 0x1000;
const AT_RECURSIVE = 0x8000;
const MOVE_MOUNT_F_EMPTY_PATH = 0x4;
/** mount_setattr(2): attach a user namespace's id mapping to a detached mount. */
export const MOUNT_ATTR_IDMAP = 0x00100000;

/**
 * A region of libc-mmap'd memory. Unlike an ArrayBuffer it is copied into a cloned child, so a
 * child program may hold its address (e.g. the filter a `struct sock_fprog` points to).
 */
export class NativeBuffer {
  #ptr: Deno.PointerObject | null;
  /** Address of the first byte. */
  readonly address: bigint;

  constructor(readonly bytes: Uint8Array) {
    const size = Math.max(bytes.length, 1);
    const p = libc.mmap(null, BigInt(size), 3, 0x22, -1, 0n); // RW, PRIVATE|ANONYMOUS
    if (p === null || Deno.UnsafePointer.value(p) === 0xffffffffffffffffn) {
      throw new SyscallError("mmap", [size], errno());
    }
    new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(p, size)).set(bytes);
    this.#ptr = p;
    this.address = BigInt(Deno.UnsafePointer.value(p));
  }

  /** Unmaps the region (a child cloned before keeps its copy). */
  free(): void {
    if (!this.#ptr) return;
    libc.munmap(this.#ptr, BigInt(Math.max(this.bytes.length, 1)));
    this.#ptr = null;
  }
}

/** Resource numbers of setrlimit(2) (asm-generic/resource.h). */
export const RLIMIT: Readonly<Record<string, number>> = {
  cpu: 0,
  fsize: 1,
  data: 2,
  stack: 3,
  core: 4,
  rss: 5,
  nproc: 6,
  nofile: 7,
  memlock: 8,
  as: 9,
  locks: 10,
  sigpending: 11,
  msgqueue: 12,
  nice: 13,
  rtprio: 14,
  rttime: 15,
};

/** RLIM_INFINITY. */
export const RLIM_INFINITY = 0xffffffffffffffffn;

/** A soft/hard limit pair. */
export interface Rlimit {
  readonly soft: bigint;
  readonly hard: bigint;
}

/** This process's limit for `resource`. */
export function getRlimit(resource: number): Rlimit {
  const buf = new Uint8Array(16);
  check(libc.prlimit(0, resource, null, buf), "prlimit64", [resource]);
  const view = new DataView(buf.buffer);
  return { soft: view.getBigUint64(0, true), hard: view.getBigUint64(8, true) };
}

/** `struct rlimit64` bytes for a prlimit64 op of the child's program. */
export function rlimitBytes(limit: Rlimit): Uint8Array {
  const out = new Uint8Array(16);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, limit.soft, true);
  view.setBigUint64(8, limit.hard, true);
  return out;
}

function sys(nr: number, args: (number | bigint)[], name: string, shown: unknown[]): number {
  const a = [...args.map((v) => BigInt(v)), 0n, 0n, 0n, 0n, 0n, 0n].slice(0, 6);
  const r = libc.syscall6(BigInt(nr), a[0], a[1], a[2], a[3], a[4], a[5]);
  if (r < 0n) throw new SyscallError(name, shown, errno());
  return Number(r);
}

function ptr(buf: Uint8Array<ArrayBuffer>): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)));
}

/**
 * Binds `source` onto `target` (an existing directory) as an idmapped mount: files owned by an
 * id the user namespace behind `usernsFd` maps appear with the mapped id (inside 0 -> outside
 * 100000 shows a root-owned file as owned by 100000). The mount lives in the caller's
 * namespace; detach it with umount2 when done.
 */
export function idmappedBind(source: string, target: string, usernsFd: number): void {
  const src = cstr(source);
  const fd = sys(
    NR_OPEN_TREE,
    [
      AT_FDCWD,
      ptr(src),
      OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE,
    ],
    "open_tree",
    [source],
  );
  try {
    const attr = new Uint8Array(32); // struct mount_attr { set, clr, propagation, userns_fd }
    const view = new DataView(attr.buffer);
    view.setBigUint64(0, BigInt(MOUNT_ATTR_IDMAP), true);
    view.setBigUint64(24, BigInt(usernsFd), true);
    const empty = cstr("");
    sys(
      NR_MOUNT_SETATTR,
      [fd, ptr(empty), AT_EMPTY_PATH | AT_RECURSIVE, ptr(attr), 32],
      "mount_setattr",
      [source, "MOUNT_ATTR_IDMAP"],
    );
    const dst = cstr(target);
    sys(
      NR_MOVE_MOUNT,
      [fd, ptr(empty), AT_FDCWD, ptr(dst), MOVE_MOUNT_F_EMPTY_PATH],
      "move_mount",
      [source, target],
    );
  } finally {
    sys(3, [fd], "close", [fd]);
  }
}

const PR_GET_NO_NEW_PRIVS = 39;
const PR_GET_SECCOMP = 21;

/** no_new_privs and seccomp mode of this process (for `info` and tests). */
export function processSecurity(): { noNewPrivs: boolean; seccompMode: number } {
  return {
    noNewPrivs: libc.prctl(PR_GET_NO_NEW_PRIVS, 0n, 0n, 0n, 0n) === 1,
    seccompMode: Math.max(0, libc.prctl(PR_GET_SECCOMP, 0n, 0n, 0n, 0n)),
  };
}
