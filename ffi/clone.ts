/**
 * The container's first process: libc `clone()` running a tiny native syscall interpreter.
 *
 * A Deno process is multi-threaded and its V8 heap is MADV_DONTFORK, so no JS can run in a
 * cloned child. Instead the parent compiles everything the child must do (mounts, pivot_root,
 * identity, capabilities, execve) into a *program* of raw system calls, placed with every string
 * and struct it points to in one libc-mmap'd region (copied into the child by clone, unlike
 * ArrayBuffers). The stub below runs the ops in order and either ends in a successful execve or
 * reports `{ opIndex | -1, errno }` on a close-on-exec status pipe and exits.
 *
 * @module
 */
import { check, errno, openLibc } from "./libc.ts";
import { SyscallError } from "./errors.ts";

/** Op flag: a failure is remembered (for the final report) and execution continues. */
export const IGNORE_ERROR = 1;
/** Op flag: a result of 0 counts as a failure (reported as EPIPE), e.g. `read` at EOF. */
export const FAIL_ON_ZERO = 2;
/**
 * Op flag: a successful nonzero result ends the process with exit_group(0). Put on a fork-like
 * `clone` op, the parent side (result: the child's pid) leaves and the child (result 0) runs
 * the rest of the program.
 */
export const EXIT_IF_NONZERO = 256;
/** Op flag: replace argument `n` (0..5) by the previous op's result. */
export function argFromLast(n: number): number {
  if (n < 0 || n > 5) throw new RangeError(`argument index ${n} out of range`);
  return 4 << n;
}

/** Size of one compiled op: nr, six arguments, flags; all u64. */
export const OP_SIZE = 64;

/**
 * The x86-64 interpreter, assembled from `clone_stub_x86_64.S` (`as --64`, .text section).
 * Listing, offset: bytes  instruction.
 */
// deno-fmt-ignore
export const STUB_X86_64: Uint8Array = new Uint8Array([
  0x4c, 0x8b, 0x27,               // 00: mov r12,[rdi]         ; r12 = first op
  0x4c, 0x8b, 0x6f, 0x08,         // 03: mov r13,[rdi+8]       ; r13 = op count
  0x4c, 0x8b, 0x77, 0x10,         // 07: mov r14,[rdi+16]      ; r14 = status fd
  0x45, 0x31, 0xff,               // 0b: xor r15d,r15d         ; previous result = 0
  0x31, 0xdb,                     // 0e: xor ebx,ebx           ; remembered errno = 0
  0x31, 0xed,                     // 10: xor ebp,ebp           ; op index = 0
  0x4d, 0x85, 0xed,               // 12: test r13,r13          ; next_op: ops left?
  0x0f, 0x84, 0xae, 0x00, 0x00, 0x00,  // 15: je ran_out (c9)
  0x49, 0x8b, 0x04, 0x24,         // 1b: mov rax,[r12]         ; syscall number
  0x49, 0x8b, 0x7c, 0x24, 0x08,   // 1f: mov rdi,[r12+8]       ; arg0
  0x49, 0x8b, 0x74, 0x24, 0x10,   // 24: mov rsi,[r12+16]      ; arg1
  0x49, 0x8b, 0x54, 0x24, 0x18,   // 29: mov rdx,[r12+24]      ; arg2
  0x4d, 0x8b, 0x54, 0x24, 0x20,   // 2e: mov r10,[r12+32]      ; arg3
  0x4d, 0x8b, 0x44, 0x24, 0x28,   // 33: mov r8,[r12+40]       ; arg4
  0x4d, 0x8b, 0x4c, 0x24, 0x30,   // 38: mov r9,[r12+48]       ; arg5
  0x49, 0x8b, 0x4c, 0x24, 0x38,   // 3d: mov rcx,[r12+56]      ; flags
  0xf7, 0xc1, 0x04, 0x00, 0x00, 0x00,  // 42: test ecx,4            ; ARG0_FROM_LAST?
  0x49, 0x0f, 0x45, 0xff,         // 48: cmovne rdi,r15
  0xf7, 0xc1, 0x08, 0x00, 0x00, 0x00,  // 4c: test ecx,8            ; ARG1_FROM_LAST?
  0x49, 0x0f, 0x45, 0xf7,         // 52: cmovne rsi,r15
  0xf7, 0xc1, 0x10, 0x00, 0x00, 0x00,  // 56: test ecx,16           ; ARG2_FROM_LAST?
  0x49, 0x0f, 0x45, 0xd7,         // 5c: cmovne rdx,r15
  0xf7, 0xc1, 0x20, 0x00, 0x00, 0x00,  // 60: test ecx,32           ; ARG3_FROM_LAST?
  0x4d, 0x0f, 0x45, 0xd7,         // 66: cmovne r10,r15
  0xf7, 0xc1, 0x40, 0x00, 0x00, 0x00,  // 6a: test ecx,64           ; ARG4_FROM_LAST?
  0x4d, 0x0f, 0x45, 0xc7,         // 70: cmovne r8,r15
  0xf7, 0xc1, 0x80, 0x00, 0x00, 0x00,  // 74: test ecx,128          ; ARG5_FROM_LAST?
  0x4d, 0x0f, 0x45, 0xcf,         // 7a: cmovne r9,r15
  0x0f, 0x05,                     // 7e: syscall
  0x49, 0x89, 0xc7,               // 80: mov r15,rax           ; remember the result for the next op
  0x49, 0x8b, 0x4c, 0x24, 0x38,   // 83: mov rcx,[r12+56]      ; reload flags (syscall clobbered rcx)
  0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff,  // 88: cmp rax,-4095         ; -4095..-1 is an error
  0x73, 0x14,                     // 8e: jae failed (a4)
  0x48, 0x85, 0xc0,               // 90: test rax,rax
  0x75, 0x61,                     // 93: jne nonzero (f6)
  0xf7, 0xc1, 0x02, 0x00, 0x00, 0x00,  // 95: test ecx,2            ; FAIL_ON_ZERO?
  0x74, 0x1d,                     // 9b: je advance (ba)
  0x48, 0xc7, 0xc0, 0xe0, 0xff, 0xff, 0xff,  // 9d: mov rax,-32           ; zero counts as -EPIPE
  0x48, 0xf7, 0xd8,               // a4: neg rax               ; failed: rax = errno
  0xf7, 0xc1, 0x01, 0x00, 0x00, 0x00,  // a7: test ecx,1            ; IGNORE_ERROR?
  0x74, 0x23,                     // ad: je fatal (d2)
  0x85, 0xdb,                     // af: test ebx,ebx          ; nothing remembered yet?
  0x74, 0x05,                     // b1: je remember (b8)
  0x83, 0xfb, 0x02,               // b3: cmp ebx,2             ; only ENOENT remembered: a better one wins
  0x75, 0x02,                     // b6: jne advance (ba)
  0x89, 0xc3,                     // b8: mov ebx,eax           ; remember: keep this errno
  0x49, 0x83, 0xc4, 0x40,         // ba: add r12,64            ; advance: next op
  0x48, 0xff, 0xc5,               // be: inc rbp
  0x49, 0xff, 0xcd,               // c1: dec r13
  0xe9, 0x49, 0xff, 0xff, 0xff,   // c4: jmp next_op (12)
  0x48, 0xc7, 0xc5, 0xff, 0xff, 0xff, 0xff,  // c9: mov rbp,-1            ; ran_out: no execve succeeded
  0xeb, 0x03,                     // d0: jmp report (d5)
  0x48, 0x89, 0xc3,               // d2: mov rbx,rax           ; fatal: errno of the failed op
  0x53,                           // d5: push rbx              ; report: record = { rbp, rbx } on the stack
  0x55,                           // d6: push rbp
  0xb8, 0x01, 0x00, 0x00, 0x00,   // d7: mov eax,1             ; write(statusFd, rsp, 16)
  0x4c, 0x89, 0xf7,               // dc: mov rdi,r14
  0x48, 0x89, 0xe6,               // df: mov rsi,rsp
  0xba, 0x10, 0x00, 0x00, 0x00,   // e2: mov edx,16
  0x0f, 0x05,                     // e7: syscall
  0xb8, 0xe7, 0x00, 0x00, 0x00,   // e9: mov eax,231           ; exit_group(1)
  0xbf, 0x01, 0x00, 0x00, 0x00,   // ee: mov edi,1
  0x0f, 0x05,                     // f3: syscall
  0xf4,                           // f5: hlt                   ; unreachable
  0xf7, 0xc1, 0x00, 0x01, 0x00, 0x00,  // f6: test ecx,256          ; nonzero: EXIT_IF_NONZERO?
  0x74, 0xbc,                     // fc: je advance (ba)
  0xb8, 0xe7, 0x00, 0x00, 0x00,   // fe: mov eax,231           ; exit_group(0): the parent side leaves
  0x31, 0xff,                     // 103: xor edi,edi
  0x0f, 0x05,                     // 105: syscall
  0xf4,                           // 107: hlt                  ; unreachable
]);

const libc = openLibc({
  mmap: { parameters: ["pointer", "usize", "i32", "i32", "i32", "i64"], result: "pointer" },
  munmap: { parameters: ["pointer", "usize"], result: "i32" },
  mprotect: { parameters: ["pointer", "usize", "i32"], result: "i32" },
  clone: { parameters: ["pointer", "pointer", "i32", "pointer"], result: "i32" },
});

const PROT_READ = 1;
const PROT_WRITE = 2;
const PROT_EXEC = 4;
const MAP_SHARED = 1;
const MAP_PRIVATE = 2;
const MAP_ANONYMOUS = 0x20;
const MAP_FAILED = -1n;

/** Clone flags (include/uapi/linux/sched.h). */
export const CLONE = {
  NEWNS: 0x00020000,
  NEWCGROUP: 0x02000000,
  NEWUTS: 0x04000000,
  NEWIPC: 0x08000000,
  NEWUSER: 0x10000000,
  NEWPID: 0x20000000,
  NEWNET: 0x40000000,
  /** The new process's parent is the caller's parent (who can then wait for it). */
  PARENT: 0x00008000,
  /** Store the new process's pid at `parent_tid` (the third argument of the raw syscall). */
  PARENT_SETTID: 0x00100000,
} as const;

/** SIGCHLD, the exit signal the parent's waitpid expects. */
export const SIGCHLD = 17;

/** A pointer argument: bytes the compiler copies into the program's mmap'd region. */
export class Data {
  constructor(readonly bytes: Uint8Array) {}
}

const encoder = new TextEncoder();

/** A NUL-terminated string argument, placed in the program's memory. */
export function str(s: string): Data {
  const bytes = encoder.encode(s);
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  return new Data(out);
}

/** A raw struct/buffer argument, placed in the program's memory. */
export function bytes(b: Uint8Array): Data {
  return new Data(b);
}

/** A NULL-terminated array of strings (argv, envp), placed in the program's memory. */
export class StringArray {
  constructor(readonly items: readonly string[]) {}
}

/**
 * A struct argument holding pointers to other placed memory (e.g. a msghdr pointing at its iovec
 * and control buffer): `bytes` is copied, then each `pointers[i].to` is placed and its address
 * written as a u64 at `pointers[i].offset`.
 */
export class Struct {
  constructor(
    readonly bytes: Uint8Array,
    readonly pointers: readonly { readonly offset: number; readonly to: Data | Struct }[],
  ) {}
}

/** One argument of an op: an integer, or memory the compiler lays out. */
export type Arg = number | bigint | Data | StringArray | Struct;

/** One system call of the child's program. */
export interface Op {
  /** System call number (see syscall_numbers.ts). */
  readonly nr: number;
  /** Up to six arguments. */
  readonly args: readonly Arg[];
  /** IGNORE_ERROR | FAIL_ON_ZERO | argFromLast(n)... */
  readonly flags?: number;
  /** What the op does, for error messages: `mount proc on /proc`. */
  readonly what: string;
}

/** Ensures this machine has a stub; other architectures fail clearly. */
export function assertSupportedArch(): void {
  if (Deno.build.arch !== "x86_64" || Deno.build.os !== "linux") {
    throw new Error(
      `tsbox runs containers only on x86-64 Linux (this is ${Deno.build.os}/${Deno.build.arch})`,
    );
  }
}

function mmap(size: number, prot: number, shared = false): Deno.PointerObject {
  const type = shared ? MAP_SHARED : MAP_PRIVATE;
  const p = libc.mmap(null, BigInt(size), prot, type | MAP_ANONYMOUS, -1, 0n);
  if (p === null || BigInt(Deno.UnsafePointer.value(p)) === MAP_FAILED) {
    throw new SyscallError("mmap", [size, prot], errno());
  }
  return p;
}

let stubPage: Deno.PointerObject | undefined;

function stub(): Deno.PointerObject {
  if (stubPage) return stubPage;
  assertSupportedArch();
  const page = mmap(4096, PROT_READ | PROT_WRITE);
  new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(page, 4096)).set(STUB_X86_64);
  check(libc.mprotect(page, 4096n, PROT_READ | PROT_EXEC), "mprotect", ["stub", "r-x"]);
  stubPage = page;
  return page;
}

const HEADER = 64;
const STACK_SIZE = 64 * 1024;

function align(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

/** A program laid out in one mmap'd region: header, ops, then the data they point to. */
export class CompiledProgram {
  #base: Deno.PointerObject | null;
  /** Address of the region. */
  readonly address: bigint;

  private constructor(
    base: Deno.PointerObject,
    /** Size of the region in bytes. */
    readonly size: number,
    /** The ops, in order, as given. */
    readonly ops: readonly Op[],
  ) {
    this.#base = base;
    this.address = BigInt(Deno.UnsafePointer.value(base));
  }

  /** Lays out `ops` (reporting failures on `statusFd`) in freshly mmap'd memory. */
  static compile(ops: readonly Op[], statusFd: number): CompiledProgram {
    for (const op of ops) {
      if (op.args.length > 6) throw new RangeError(`${op.what}: more than six arguments`);
    }
    // First pass: size of the data area.
    let dataSize = 0;
    const sizeOf = (a: Arg): number => {
      if (a instanceof Data) return align(a.bytes.length, 8);
      if (a instanceof Struct) {
        return align(a.bytes.length, 8) + a.pointers.reduce((n, p) => n + sizeOf(p.to), 0);
      }
      if (a instanceof StringArray) {
        return 8 * (a.items.length + 1) +
          a.items.reduce((n, s) => n + align(encoder.encode(s).length + 1, 8), 0);
      }
      return 0;
    };
    for (const op of ops) for (const a of op.args) dataSize += sizeOf(a);
    const opsOffset = HEADER;
    const dataOffset = opsOffset + ops.length * OP_SIZE;
    const size = align(dataOffset + dataSize + STACK_SIZE, 4096);
    const base = mmap(size, PROT_READ | PROT_WRITE);
    const baseAddr = BigInt(Deno.UnsafePointer.value(base));
    const mem = Deno.UnsafePointerView.getArrayBuffer(base, size);
    const u8 = new Uint8Array(mem);
    const view = new DataView(mem);
    let cursor = dataOffset;
    const place = (b: Uint8Array): bigint => {
      const at = cursor;
      u8.set(b, at);
      cursor += align(b.length, 8);
      return baseAddr + BigInt(at);
    };
    const value = (a: Arg): bigint => {
      if (typeof a === "number") return BigInt.asUintN(64, BigInt(a));
      if (typeof a === "bigint") return BigInt.asUintN(64, a);
      if (a instanceof Data) return place(a.bytes);
      if (a instanceof Struct) {
        const copy = a.bytes.slice();
        const cv = new DataView(copy.buffer);
        for (const p of a.pointers) cv.setBigUint64(p.offset, value(p.to), true);
        return place(copy);
      }
      const strings = a.items.map((s) => place(str(s).bytes));
      const table = new Uint8Array(8 * (strings.length + 1));
      const tv = new DataView(table.buffer);
      strings.forEach((p, i) => tv.setBigUint64(i * 8, p, true));
      return place(table);
    };
    view.setBigUint64(0, baseAddr + BigInt(opsOffset), true);
    view.setBigUint64(8, BigInt(ops.length), true);
    view.setBigUint64(16, BigInt(statusFd), true);
    ops.forEach((op, i) => {
      const at = opsOffset + i * OP_SIZE;
      view.setBigUint64(at, BigInt(op.nr), true);
      for (let j = 0; j < 6; j++) {
        view.setBigUint64(at + 8 + j * 8, j < op.args.length ? value(op.args[j]) : 0n, true);
      }
      view.setBigUint64(at + 56, BigInt(op.flags ?? 0), true);
    });
    return new CompiledProgram(base, size, ops);
  }

  /** The raw words of op `i`: `[nr, a0..a5, flags]`, as the stub will read them. */
  word(i: number): bigint[] {
    if (!this.#base) throw new Error("program freed");
    const view = new DataView(Deno.UnsafePointerView.getArrayBuffer(this.#base, this.size));
    const at = HEADER + i * OP_SIZE;
    return Array.from({ length: 8 }, (_, j) => view.getBigUint64(at + j * 8, true));
  }

  /** Bytes of the region at `address` (for tests: read back what a pointer argument holds). */
  read(address: bigint, length: number): Uint8Array {
    if (!this.#base) throw new Error("program freed");
    const off = Number(address - this.address);
    if (off < 0 || off + length > this.size) throw new RangeError("address outside the program");
    return new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(this.#base, length, off));
  }

  /** The top of the stack area at the end of the region (16-byte aligned). */
  get stackTop(): Deno.PointerObject {
    if (!this.#base) throw new Error("program freed");
    return Deno.UnsafePointer.offset(this.#base, this.size - 16)!;
  }

  /** The region itself, passed as the stub's argument. */
  get pointer(): Deno.PointerObject {
    if (!this.#base) throw new Error("program freed");
    return this.#base;
  }

  /** Unmaps the region. The child has its own copy after clone, so this is safe right away. */
  free(): void {
    if (!this.#base) return;
    libc.munmap(this.#base, BigInt(this.size));
    this.#base = null;
  }
}

/**
 * Clones a child with `flags` (namespace flags; SIGCHLD is added) that runs `program`.
 * Synchronous: runs on the calling (main) thread. Returns the child's pid.
 */
export function cloneProgram(program: CompiledProgram, flags: number): number {
  const fn = stub();
  const pid = libc.clone(fn, program.stackTop, flags | SIGCHLD, program.pointer);
  return check(pid, "clone", [`0x${(flags | SIGCHLD).toString(16)}`]);
}

/**
 * One 32-bit word in a page shared with cloned children (MAP_SHARED survives clone without
 * CLONE_VM): what a child's program or the kernel writes there on its behalf, such as the pid a
 * `clone` op with CLONE_PARENT_SETTID stores, is seen by the parent.
 */
export class SharedWord {
  #page: Deno.PointerObject | null;
  /** Address of the word, to pass as a program argument. */
  readonly address: bigint;

  constructor() {
    this.#page = mmap(4096, PROT_READ | PROT_WRITE, true);
    this.address = BigInt(Deno.UnsafePointer.value(this.#page));
  }

  /** The word's current value. */
  read(): number {
    if (!this.#page) throw new Error("shared word freed");
    return new Deno.UnsafePointerView(this.#page).getInt32(0);
  }

  /** Unmaps the page. */
  free(): void {
    if (!this.#page) return;
    libc.munmap(this.#page, 4096n);
    this.#page = null;
  }
}

/** What the status pipe said: which op failed (-1: every execve candidate) and its errno. */
export interface ProgramFailure {
  /** Index of the fatal op, or -1 when the ops ran out without a successful execve. */
  readonly opIndex: number;
  /** errno of that op (for -1, the remembered errno of the execve candidates). */
  readonly errno: number;
}

/** Decodes the 16-byte status record; `undefined` for an empty read (execve succeeded). */
export function decodeStatus(record: Uint8Array): ProgramFailure | undefined {
  if (record.length === 0) return undefined;
  if (record.length !== 16) throw new Error(`short status record (${record.length} bytes)`);
  const view = new DataView(record.buffer, record.byteOffset, 16);
  return {
    opIndex: Number(view.getBigInt64(0, true)),
    errno: Number(view.getBigInt64(8, true)),
  };
}
