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
export const STUB_X86_64: Uint8Array = new Uint8Array([
  // 00: 4c 8b 27             mov r12,[rdi]         ; r12 = first op
  0x4c,
  0x8b,
  0x27,
  // 03: 4c 8b 6f 08          mov r13,[rdi+8]       ; r13 = op count
  0x4c,
  0x8b,
  0x6f,
  0x08,
  // 07: 4c 8b 77 10          mov r14,[rdi+16]      ; r14 = status fd
  0x4c,
  0x8b,
  0x77,
  0x10,
  // 0b: 45 31 ff             xor r15d,r15d         ; previous result = 0
  0x45,
  0x31,
  0xff,
  // 0e: 31 db                xor ebx,ebx           ; remembered errno = 0
  0x31,
  0xdb,
  // 10: 31 ed                xor ebp,ebp           ; op index = 0
  0x31,
  0xed,
  // 12: 4d 85 ed             test r13,r13          ; next_op: ops left?
  0x4d,
  0x85,
  0xed,
  // 15: 0f 84 ae 00 00 00    je ran_out (c9)
  0x0f,
  0x84,
  0xae,
  0x00,
  0x00,
  0x00,
  // 1b: 49 8b 04 24          mov rax,[r12]         ; syscall number
  0x49,
  0x8b,
  0x04,
  0x24,
  // 1f: 49 8b 7c 24 08       mov rdi,[r12+8]       ; arg0
  0x49,
  0x8b,
  0x7c,
  0x24,
  0x08,
  // 24: 49 8b 74 24 10       mov rsi,[r12+16]      ; arg1
  0x49,
  0x8b,
  0x74,
  0x24,
  0x10,
  // 29: 49 8b 54 24 18       mov rdx,[r12+24]      ; arg2
  0x49,
  0x8b,
  0x54,
  0x24,
  0x18,
  // 2e: 4d 8b 54 24 20       mov r10,[r12+32]      ; arg3
  0x4d,
  0x8b,
  0x54,
  0x24,
  0x20,
  // 33: 4d 8b 44 24 28       mov r8,[r12+40]       ; arg4
  0x4d,
  0x8b,
  0x44,
  0x24,
  0x28,
  // 38: 4d 8b 4c 24 30       mov r9,[r12+48]       ; arg5
  0x4d,
  0x8b,
  0x4c,
  0x24,
  0x30,
  // 3d: 49 8b 4c 24 38       mov rcx,[r12+56]      ; flags
  0x49,
  0x8b,
  0x4c,
  0x24,
  0x38,
  // 42: f7 c1 04 00 00 00    test ecx,4            ; ARG0_FROM_LAST?
  0xf7,
  0xc1,
  0x04,
  0x00,
  0x00,
  0x00,
  // 48: 49 0f 45 ff          cmovne rdi,r15
  0x49,
  0x0f,
  0x45,
  0xff,
  // 4c: f7 c1 08 00 00 00    test ecx,8            ; ARG1_FROM_LAST?
  0xf7,
  0xc1,
  0x08,
  0x00,
  0x00,
  0x00,
  // 52: 49 0f 45 f7          cmovne rsi,r15
  0x49,
  0x0f,
  0x45,
  0xf7,
  // 56: f7 c1 10 00 00 00    test ecx,16           ; ARG2_FROM_LAST?
  0xf7,
  0xc1,
  0x10,
  0x00,
  0x00,
  0x00,
  // 5c: 49 0f 45 d7          cmovne rdx,r15
  0x49,
  0x0f,
  0x45,
  0xd7,
  // 60: f7 c1 20 00 00 00    test ecx,32           ; ARG3_FROM_LAST?
  0xf7,
  0xc1,
  0x20,
  0x00,
  0x00,
  0x00,
  // 66: 4d 0f 45 d7          cmovne r10,r15
  0x4d,
  0x0f,
  0x45,
  0xd7,
  // 6a: f7 c1 40 00 00 00    test ecx,64           ; ARG4_FROM_LAST?
  0xf7,
  0xc1,
  0x40,
  0x00,
  0x00,
  0x00,
  // 70: 4d 0f 45 c7          cmovne r8,r15
  0x4d,
  0x0f,
  0x45,
  0xc7,
  // 74: f7 c1 80 00 00 00    test ecx,128          ; ARG5_FROM_LAST?
  0xf7,
  0xc1,
  0x80,
  0x00,
  0x00,
  0x00,
  // 7a: 4d 0f 45 cf          cmovne r9,r15
  0x4d,
  0x0f,
  0x45,
  0xcf,
  // 7e: 0f 05                syscall
  0x0f,
  0x05,
  // 80: 49 89 c7             mov r15,rax           ; remember the result for the next op
  0x49,
  0x89,
  0xc7,
  // 83: 49 8b 4c 24 38       mov rcx,[r12+56]      ; reload flags (syscall clobbered rcx)
  0x49,
  0x8b,
  0x4c,
  0x24,
  0x38,
  // 88: 48 3d 01 f0 ff ff    cmp rax,-4095         ; -4095..-1 is an error
  0x48,
  0x3d,
  0x01,
  0xf0,
  0xff,
  0xff,
  // 8e: 73 14                jae failed (a4)
  0x73,
  0x14,
  // 90: 48 85 c0             test rax,rax
  0x48,
  0x85,
  0xc0,
  // 93: 75 25                jne advance (ba)
  0x75,
  0x25,
  // 95: f7 c1 02 00 00 00    test ecx,2            ; FAIL_ON_ZERO?
  0xf7,
  0xc1,
  0x02,
  0x00,
  0x00,
  0x00,
  // 9b: 74 1d                je advance (ba)
  0x74,
  0x1d,
  // 9d: 48 c7 c0 e0 ff ff ff mov rax,-32           ; zero counts as -EPIPE
  0x48,
  0xc7,
  0xc0,
  0xe0,
  0xff,
  0xff,
  0xff,
  // a4: 48 f7 d8             neg rax               ; failed: rax = errno
  0x48,
  0xf7,
  0xd8,
  // a7: f7 c1 01 00 00 00    test ecx,1            ; IGNORE_ERROR?
  0xf7,
  0xc1,
  0x01,
  0x00,
  0x00,
  0x00,
  // ad: 74 23                je fatal (d2)
  0x74,
  0x23,
  // af: 85 db                test ebx,ebx          ; nothing remembered yet?
  0x85,
  0xdb,
  // b1: 74 05                je remember (b8)
  0x74,
  0x05,
  // b3: 83 fb 02             cmp ebx,2             ; only ENOENT remembered: a better one wins
  0x83,
  0xfb,
  0x02,
  // b6: 75 02                jne advance (ba)
  0x75,
  0x02,
  // b8: 89 c3                mov ebx,eax           ; remember: keep this errno
  0x89,
  0xc3,
  // ba: 49 83 c4 40          add r12,64            ; advance: next op
  0x49,
  0x83,
  0xc4,
  0x40,
  // be: 48 ff c5             inc rbp
  0x48,
  0xff,
  0xc5,
  // c1: 49 ff cd             dec r13
  0x49,
  0xff,
  0xcd,
  // c4: e9 49 ff ff ff       jmp next_op (12)
  0xe9,
  0x49,
  0xff,
  0xff,
  0xff,
  // c9: 48 c7 c5 ff ff ff ff mov rbp,-1            ; ran_out: no execve succeeded
  0x48,
  0xc7,
  0xc5,
  0xff,
  0xff,
  0xff,
  0xff,
  // d0: eb 03                jmp report (d5)
  0xeb,
  0x03,
  // d2: 48 89 c3             mov rbx,rax           ; fatal: errno of the failed op
  0x48,
  0x89,
  0xc3,
  // d5: 53                   push rbx              ; report: record = { rbp, rbx } on the stack
  0x53,
  // d6: 55                   push rbp
  0x55,
  // d7: b8 01 00 00 00       mov eax,1             ; write(statusFd, rsp, 16)
  0xb8,
  0x01,
  0x00,
  0x00,
  0x00,
  // dc: 4c 89 f7             mov rdi,r14
  0x4c,
  0x89,
  0xf7,
  // df: 48 89 e6             mov rsi,rsp
  0x48,
  0x89,
  0xe6,
  // e2: ba 10 00 00 00       mov edx,16
  0xba,
  0x10,
  0x00,
  0x00,
  0x00,
  // e7: 0f 05                syscall
  0x0f,
  0x05,
  // e9: b8 e7 00 00 00       mov eax,231           ; exit_group(1)
  0xb8,
  0xe7,
  0x00,
  0x00,
  0x00,
  // ee: bf 01 00 00 00       mov edi,1
  0xbf,
  0x01,
  0x00,
  0x00,
  0x00,
  // f3: 0f 05                syscall
  0x0f,
  0x05,
  // f5: f4                   hlt                   ; unreachable
  0xf4,
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

function mmap(size: number, prot: number): Deno.PointerObject {
  const p = libc.mmap(null, BigInt(size), prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0n);
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
