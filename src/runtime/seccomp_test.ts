import { assertEquals, assertThrows } from "../../tests/assert.ts";
import {
  Assembler,
  AUDIT_ARCH_X86_64,
  BPF,
  compileProfile,
  decodeFilter,
  encodeFilter,
  Label,
  parseProfile,
  SECCOMP_RET,
  SeccompProfileError,
  type SockFilter,
} from "./seccomp.ts";
import { DEFAULT_PROFILE } from "./seccomp_profile.ts";
import { SYSCALLS_X86_64 as NR } from "./seccomp_syscalls.ts";

/** A reference cBPF interpreter over struct seccomp_data, independent of the compiler. */
function run(prog: SockFilter[], nr: number, args: bigint[] = [], arch = AUDIT_ARCH_X86_64) {
  const data = new DataView(new ArrayBuffer(64));
  data.setUint32(0, nr >>> 0, true);
  data.setUint32(4, arch >>> 0, true);
  args.forEach((v, i) => data.setBigUint64(16 + i * 8, BigInt.asUintN(64, v), true));
  let A = 0;
  for (let pc = 0; pc < prog.length; pc++) {
    const i = prog[pc];
    switch (i.code) {
      case BPF.LD_W_ABS:
        A = data.getUint32(i.k, true);
        break;
      case BPF.AND_K:
        A = (A & i.k) >>> 0;
        break;
      case BPF.JEQ_K:
        pc += A === i.k ? i.jt : i.jf;
        break;
      case BPF.JGT_K:
        pc += A > i.k ? i.jt : i.jf;
        break;
      case BPF.JGE_K:
        pc += A >= i.k ? i.jt : i.jf;
        break;
      case BPF.RET_K:
        return i.k >>> 0;
      default:
        throw new Error(`bad opcode ${i.code}`);
    }
  }
  throw new Error("fell off the end");
}

const DEFAULT_CAPS = [
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_FSETID",
  "CAP_FOWNER",
  "CAP_MKNOD",
  "CAP_NET_RAW",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETFCAP",
  "CAP_SETPCAP",
  "CAP_NET_BIND_SERVICE",
  "CAP_SYS_CHROOT",
  "CAP_KILL",
  "CAP_AUDIT_WRITE",
];
const ctx = { capabilities: DEFAULT_CAPS, kernel: "6.18.0" };
const EPERM = (SECCOMP_RET.ERRNO | 1) >>> 0;
const ENOSYS = (SECCOMP_RET.ERRNO | 38) >>> 0;

Deno.test("syscall table: a few well-known x86-64 numbers", () => {
  assertEquals([NR.read, NR.execve, NR.clone, NR.unshare, NR.clone3, NR.mount], [
    0,
    59,
    56,
    272,
    435,
    165,
  ]);
});

Deno.test("default profile: ordinary calls allowed, mount/unshare/kexec denied with EPERM", () => {
  const prog = compileProfile(DEFAULT_PROFILE, ctx);
  for (const name of ["read", "write", "openat", "execve", "exit_group", "futex", "chroot"]) {
    assertEquals(run(prog, NR[name]), SECCOMP_RET.ALLOW, name);
  }
  for (const name of ["mount", "unshare", "setns", "kexec_load", "init_module", "keyctl"]) {
    assertEquals(run(prog, NR[name]), EPERM, name);
  }
  assertEquals(run(prog, 1000), EPERM, "unknown numbers take the default");
});

Deno.test("default profile: clone3 is ENOSYS, clone with namespace flags denied", () => {
  const prog = compileProfile(DEFAULT_PROFILE, ctx);
  assertEquals(run(prog, NR.clone3), ENOSYS);
  const threadFlags = 0x3d0f00n; // glibc pthread_create
  assertEquals(run(prog, NR.clone, [threadFlags]), SECCOMP_RET.ALLOW);
  assertEquals(run(prog, NR.clone, [0x01200011n]), SECCOMP_RET.ALLOW, "fork");
  assertEquals(run(prog, NR.clone, [0x10000000n | 17n]), EPERM, "CLONE_NEWUSER");
  assertEquals(run(prog, NR.clone, [0x00020000n]), EPERM, "CLONE_NEWNS");
});

Deno.test("default profile with CAP_SYS_ADMIN: mount, unshare, clone3 and namespaces allowed", () => {
  const prog = compileProfile(DEFAULT_PROFILE, {
    ...ctx,
    capabilities: [...DEFAULT_CAPS, "CAP_SYS_ADMIN"],
  });
  for (const name of ["mount", "unshare", "setns", "clone3"]) {
    assertEquals(run(prog, NR[name]), SECCOMP_RET.ALLOW, name);
  }
  assertEquals(run(prog, NR.clone, [0x10000000n]), SECCOMP_RET.ALLOW);
});

Deno.test("default profile: socket(AF_VSOCK) denied, personality only for listed values", () => {
  const prog = compileProfile(DEFAULT_PROFILE, ctx);
  assertEquals(run(prog, NR.socket, [2n]), SECCOMP_RET.ALLOW);
  assertEquals(run(prog, NR.socket, [40n]), EPERM);
  assertEquals(run(prog, NR.socket, [40n | (1n << 32n)]), SECCOMP_RET.ALLOW, "64-bit compare");
  assertEquals(run(prog, NR.personality, [0n]), SECCOMP_RET.ALLOW);
  assertEquals(run(prog, NR.personality, [0xffffffffn]), SECCOMP_RET.ALLOW);
  assertEquals(run(prog, NR.personality, [0x0400000n]), EPERM, "READ_IMPLIES_EXEC");
});

Deno.test("arch check: i386 and x32 calls kill the process", () => {
  const prog = compileProfile(DEFAULT_PROFILE, ctx);
  assertEquals(run(prog, NR.read, [], 0x40000003), SECCOMP_RET.KILL_PROCESS);
  assertEquals(run(prog, 0x40000000 | NR.read), SECCOMP_RET.KILL_PROCESS);
});

Deno.test("comparison operators on 64-bit values", () => {
  const cases: [string, bigint, bigint, boolean][] = [
    ["SCMP_CMP_GT", 5n, 6n, true],
    ["SCMP_CMP_GT", 5n, 5n, false],
    ["SCMP_CMP_GT", 5n, 1n << 33n, true],
    ["SCMP_CMP_GE", 5n, 5n, true],
    ["SCMP_CMP_GE", 1n << 33n, 5n, false],
    ["SCMP_CMP_LT", 5n, 4n, true],
    ["SCMP_CMP_LT", 5n, 5n, false],
    ["SCMP_CMP_LT", 1n << 33n, 7n, true],
    ["SCMP_CMP_LE", 5n, 5n, true],
    ["SCMP_CMP_LE", 5n, (1n << 32n) + 1n, false],
    ["SCMP_CMP_EQ", 7n, 7n, true],
    ["SCMP_CMP_EQ", 7n, 7n + (1n << 32n), false],
    ["SCMP_CMP_NE", 7n, 7n, false],
    ["SCMP_CMP_NE", 7n, 8n, true],
  ];
  for (const [op, value, actual, allowed] of cases) {
    const prog = compileProfile({
      defaultAction: "SCMP_ACT_ERRNO",
      syscalls: [{
        names: ["write"],
        action: "SCMP_ACT_ALLOW",
        args: [{ index: 2, value, op: op as "SCMP_CMP_EQ" }],
      }],
    }, ctx);
    assertEquals(
      run(prog, NR.write, [0n, 0n, actual]),
      allowed ? SECCOMP_RET.ALLOW : EPERM,
      `${actual} ${op} ${value}`,
    );
  }
});

Deno.test("parseProfile reads docker's format (archMap, errnoRet) and rejects bad input", () => {
  const p = parseProfile(JSON.stringify({
    defaultAction: "SCMP_ACT_ALLOW",
    archMap: [{ architecture: "SCMP_ARCH_X86_64", subArchitectures: ["SCMP_ARCH_X86"] }],
    syscalls: [{ names: ["mkdir", "mkdirat"], action: "SCMP_ACT_ERRNO", errnoRet: 13 }],
  }));
  const prog = compileProfile(p, ctx);
  assertEquals(run(prog, NR.mkdirat), (SECCOMP_RET.ERRNO | 13) >>> 0);
  assertEquals(run(prog, NR.read), SECCOMP_RET.ALLOW);
  assertThrows(() => parseProfile("{"), SeccompProfileError);
  assertThrows(() => parseProfile(`{"defaultAction":"SCMP_ACT_NOPE"}`), SeccompProfileError);
  assertThrows(
    () => parseProfile(`{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_AARCH64"]}`),
    SeccompProfileError,
  );
});

Deno.test("assembler: labels resolve forward, out-of-range jumps are refused", () => {
  const a = new Assembler();
  const l = new Label("x");
  a.load(0), a.jeq(1, l, 0), a.ret(0), a.bind(l), a.ret(1);
  const prog = a.assemble();
  assertEquals(prog[1], { code: BPF.JEQ_K, jt: 1, jf: 0, k: 1 });
  assertEquals(decodeFilter(encodeFilter(prog)), prog);
  const b = new Assembler();
  const far = new Label("far");
  b.jeq(0, far, 0);
  for (let i = 0; i < 300; i++) b.ret(0);
  b.bind(far);
  b.ret(1);
  assertThrows(() => b.assemble(), Error, "out of range");
});
