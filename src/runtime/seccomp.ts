/**
 * Seccomp: docker's JSON profile format compiled into a classic BPF program for
 * `seccomp(SECCOMP_SET_MODE_FILTER)`, without libseccomp. A small assembler resolves labels into
 * cBPF's 8-bit relative jumps; the compiler emits an arch check (x86-64 only; x32 and i386 calls
 * kill the process), then one block per system call with its argument checks, then the default
 * action.
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import { SYSCALLS_X86_64 } from "./seccomp_syscalls.ts";

/** A profile action name, as in docker's profiles. */
export type SeccompAction =
  | "SCMP_ACT_KILL"
  | "SCMP_ACT_KILL_THREAD"
  | "SCMP_ACT_KILL_PROCESS"
  | "SCMP_ACT_TRAP"
  | "SCMP_ACT_ERRNO"
  | "SCMP_ACT_TRACE"
  | "SCMP_ACT_LOG"
  | "SCMP_ACT_ALLOW";

/** An argument comparison operator. */
export type SeccompOp =
  | "SCMP_CMP_NE"
  | "SCMP_CMP_LT"
  | "SCMP_CMP_LE"
  | "SCMP_CMP_EQ"
  | "SCMP_CMP_GE"
  | "SCMP_CMP_GT"
  | "SCMP_CMP_MASKED_EQ";

/** One argument condition; for MASKED_EQ `value` is the mask and `valueTwo` the expected bits. */
export interface SeccompArg {
  readonly index: number;
  readonly value: number | bigint;
  readonly valueTwo?: number | bigint;
  readonly op: SeccompOp;
}

/** When a rule applies: capabilities kept, architectures, minimum kernel. */
export interface SeccompFilter {
  readonly caps?: readonly string[];
  readonly arches?: readonly string[];
  readonly minKernel?: string;
}

/** One rule: these syscalls, when all `args` match, get `action`. */
export interface SeccompRule {
  readonly names: readonly string[];
  readonly action: SeccompAction;
  readonly errnoRet?: number;
  readonly args?: readonly SeccompArg[] | null;
  readonly includes?: SeccompFilter;
  readonly excludes?: SeccompFilter;
}

/** docker's profile format (the parts that matter on x86-64). */
export interface SeccompProfile {
  readonly defaultAction: SeccompAction;
  readonly defaultErrnoRet?: number;
  readonly architectures?: readonly string[];
  readonly syscalls: readonly SeccompRule[];
}

/** What a profile is compiled for. */
export interface SeccompContext {
  /** Capabilities the container keeps, as `CAP_*` names. */
  readonly capabilities: readonly string[];
  /** Running kernel release (`6.18.4-...`), for `minKernel`. */
  readonly kernel: string;
}

/** A profile that cannot be compiled. */
export class SeccompProfileError extends UsageError {
  constructor(message: string) {
    super(`seccomp profile: ${message}`);
    this.name = "SeccompProfileError";
  }
}

/** seccomp return values (include/uapi/linux/seccomp.h). */
export const SECCOMP_RET = {
  KILL_PROCESS: 0x80000000,
  KILL_THREAD: 0,
  TRAP: 0x00030000,
  ERRNO: 0x00050000,
  TRACE: 0x7ff00000,
  LOG: 0x7ffc0000,
  ALLOW: 0x7fff0000,
} as const;

/** AUDIT_ARCH_X86_64 (EM_X86_64 | 64BIT | LE). */
export const AUDIT_ARCH_X86_64 = 0xc000003e;
/** Syscall numbers with this bit set are x32 ABI calls. */
export const X32_SYSCALL_BIT = 0x40000000;

/** Offsets in `struct seccomp_data`. */
export const SECCOMP_DATA = { nr: 0, arch: 4, args: 16 } as const;

/** cBPF opcodes used here. */
export const BPF = {
  LD_W_ABS: 0x20,
  JEQ_K: 0x15,
  JGT_K: 0x25,
  JGE_K: 0x35,
  AND_K: 0x54,
  RET_K: 0x06,
} as const;

/** A jump target in an {@link Assembler} program. */
export class Label {
  at = -1;
  constructor(readonly name: string) {}
}

/** A jump offset: a label, or 0 for "the next instruction". */
export type Target = Label | 0;

interface Insn {
  code: number;
  k: number;
  jt: Target;
  jf: Target;
}

/** One decoded instruction (for tests and listings). */
export interface SockFilter {
  readonly code: number;
  readonly jt: number;
  readonly jf: number;
  readonly k: number;
}

/** A tiny cBPF assembler: emit instructions with label targets, then {@link assemble}. */
export class Assembler {
  readonly #insns: Insn[] = [];

  /** Number of instructions so far. */
  get length(): number {
    return this.#insns.length;
  }

  /** Places `label` at the next instruction. */
  bind(label: Label): void {
    if (label.at >= 0) throw new Error(`label ${label.name} bound twice`);
    label.at = this.#insns.length;
  }

  /** A = 32-bit word at `offset` of seccomp_data. */
  load(offset: number): void {
    this.#insns.push({ code: BPF.LD_W_ABS, k: offset, jt: 0, jf: 0 });
  }

  /** A &= k. */
  and(k: number): void {
    this.#insns.push({ code: BPF.AND_K, k: k >>> 0, jt: 0, jf: 0 });
  }

  /** if (A == k) goto jt else goto jf. */
  jeq(k: number, jt: Target, jf: Target): void {
    this.#insns.push({ code: BPF.JEQ_K, k: k >>> 0, jt, jf });
  }

  /** if (A > k) goto jt else goto jf (unsigned). */
  jgt(k: number, jt: Target, jf: Target): void {
    this.#insns.push({ code: BPF.JGT_K, k: k >>> 0, jt, jf });
  }

  /** if (A >= k) goto jt else goto jf (unsigned). */
  jge(k: number, jt: Target, jf: Target): void {
    this.#insns.push({ code: BPF.JGE_K, k: k >>> 0, jt, jf });
  }

  /** return k. */
  ret(k: number): void {
    this.#insns.push({ code: BPF.RET_K, k: k >>> 0, jt: 0, jf: 0 });
  }

  /** Resolves labels; throws when a jump is out of cBPF's reach (255) or backwards. */
  assemble(): SockFilter[] {
    const offset = (t: Target, from: number): number => {
      if (t === 0) return 0;
      if (t.at < 0) throw new Error(`label ${t.name} never bound`);
      const d = t.at - from - 1;
      if (d < 0 || d > 255) throw new Error(`jump to ${t.name} out of range (${d})`);
      return d;
    };
    if (this.#insns.length > 4096) {
      throw new SeccompProfileError(`program too long (${this.#insns.length} > 4096 instructions)`);
    }
    return this.#insns.map((i, n) => ({
      code: i.code,
      jt: offset(i.jt, n),
      jf: offset(i.jf, n),
      k: i.k,
    }));
  }
}

/** Encodes instructions as `struct sock_filter[]` (8 bytes each, little-endian). */
export function encodeFilter(insns: readonly SockFilter[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(insns.length * 8);
  const view = new DataView(out.buffer);
  insns.forEach((i, n) => {
    view.setUint16(n * 8, i.code, true);
    view.setUint8(n * 8 + 2, i.jt);
    view.setUint8(n * 8 + 3, i.jf);
    view.setUint32(n * 8 + 4, i.k >>> 0, true);
  });
  return out;
}

/** Decodes `struct sock_filter[]` bytes. */
export function decodeFilter(bytes: Uint8Array): SockFilter[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: SockFilter[] = [];
  for (let n = 0; n + 8 <= bytes.length; n += 8) {
    out.push({
      code: view.getUint16(n, true),
      jt: view.getUint8(n + 2),
      jf: view.getUint8(n + 3),
      k: view.getUint32(n + 4, true),
    });
  }
  return out;
}

const ACTIONS: Record<SeccompAction, number> = {
  SCMP_ACT_KILL: SECCOMP_RET.KILL_THREAD,
  SCMP_ACT_KILL_THREAD: SECCOMP_RET.KILL_THREAD,
  SCMP_ACT_KILL_PROCESS: SECCOMP_RET.KILL_PROCESS,
  SCMP_ACT_TRAP: SECCOMP_RET.TRAP,
  SCMP_ACT_ERRNO: SECCOMP_RET.ERRNO,
  SCMP_ACT_TRACE: SECCOMP_RET.TRACE,
  SCMP_ACT_LOG: SECCOMP_RET.LOG,
  SCMP_ACT_ALLOW: SECCOMP_RET.ALLOW,
};
const OPS: readonly SeccompOp[] = [
  "SCMP_CMP_NE",
  "SCMP_CMP_LT",
  "SCMP_CMP_LE",
  "SCMP_CMP_EQ",
  "SCMP_CMP_GE",
  "SCMP_CMP_GT",
  "SCMP_CMP_MASKED_EQ",
];
const EPERM = 1;

/** The seccomp return value of `action` (errno in the low 16 bits for ERRNO and TRACE). */
export function actionValue(action: string, errnoRet: number | undefined): number {
  if (!(action in ACTIONS)) throw new SeccompProfileError(`unsupported action ${action}`);
  const base = ACTIONS[action as SeccompAction];
  if (action === "SCMP_ACT_ERRNO") return (base | ((errnoRet ?? EPERM) & 0xffff)) >>> 0;
  if (action === "SCMP_ACT_TRACE") return (base | ((errnoRet ?? 0) & 0xffff)) >>> 0;
  return base;
}

function kernelAtLeast(running: string, min: string): boolean {
  const parse = (v: string) => (/^(\d+)\.(\d+)/.exec(v) ?? [, "0", "0"]).slice(1).map(Number);
  const [a, b] = parse(running), [c, d] = parse(min);
  return a > c || (a === c && b >= d);
}

/** Whether `rule` applies (docker's includes: all caps kept; excludes: any cap kept). */
export function ruleApplies(rule: SeccompRule, ctx: SeccompContext): boolean {
  const caps = new Set(ctx.capabilities);
  const inc = rule.includes ?? {}, exc = rule.excludes ?? {};
  if (inc.caps?.length && !inc.caps.every((c) => caps.has(c))) return false;
  if (inc.arches?.length && !inc.arches.includes("amd64")) return false;
  if (inc.minKernel && !kernelAtLeast(ctx.kernel, inc.minKernel)) return false;
  if (exc.caps?.some((c) => caps.has(c))) return false;
  if (exc.arches?.includes("amd64")) return false;
  if (exc.minKernel && kernelAtLeast(ctx.kernel, exc.minKernel)) return false;
  return true;
}

function split64(v: number | bigint): [number, number] {
  const u = BigInt.asUintN(64, BigInt(v));
  return [Number(u >> 32n), Number(u & 0xffffffffn)];
}

/** Emits the checks of one argument condition: falls through when it holds, else jumps to `fail`. */
function emitArg(a: Assembler, arg: SeccompArg, fail: Label): void {
  const hiOff = SECCOMP_DATA.args + 8 * arg.index + 4;
  const loOff = SECCOMP_DATA.args + 8 * arg.index;
  const ok = new Label("arg-ok");
  const [vh, vl] = split64(arg.value);
  switch (arg.op) {
    case "SCMP_CMP_EQ":
      a.load(hiOff), a.jeq(vh, 0, fail), a.load(loOff), a.jeq(vl, 0, fail);
      break;
    case "SCMP_CMP_NE":
      a.load(hiOff), a.jeq(vh, 0, ok), a.load(loOff), a.jeq(vl, fail, 0);
      break;
    case "SCMP_CMP_MASKED_EQ": {
      const [eh, el] = split64(arg.valueTwo ?? 0);
      a.load(hiOff), a.and(vh), a.jeq(eh, 0, fail);
      a.load(loOff), a.and(vl), a.jeq(el, 0, fail);
      break;
    }
    case "SCMP_CMP_GT":
    case "SCMP_CMP_GE":
      a.load(hiOff), a.jgt(vh, ok, 0), a.jeq(vh, 0, fail), a.load(loOff);
      if (arg.op === "SCMP_CMP_GT") a.jgt(vl, 0, fail);
      else a.jge(vl, 0, fail);
      break;
    case "SCMP_CMP_LT":
    case "SCMP_CMP_LE":
      a.load(hiOff), a.jgt(vh, fail, 0), a.jeq(vh, 0, ok), a.load(loOff);
      if (arg.op === "SCMP_CMP_LT") a.jge(vl, fail, 0);
      else a.jgt(vl, fail, 0);
      break;
    default:
      throw new SeccompProfileError(`unsupported operator ${arg.op}`);
  }
  a.bind(ok);
}

function validate(profile: SeccompProfile): void {
  actionValue(profile.defaultAction, profile.defaultErrnoRet);
  for (const r of profile.syscalls) {
    if (!Array.isArray(r.names)) throw new SeccompProfileError("a rule without names");
    actionValue(r.action, r.errnoRet);
    for (const arg of r.args ?? []) {
      if (!OPS.includes(arg.op)) throw new SeccompProfileError(`unsupported operator ${arg.op}`);
      if (!Number.isInteger(arg.index) || arg.index < 0 || arg.index > 5) {
        throw new SeccompProfileError(`argument index ${arg.index} out of range (0..5)`);
      }
    }
  }
}

/**
 * Compiles `profile` for x86-64 into cBPF instructions. Rules whose includes/excludes do not
 * match `ctx` are left out; names x86-64 does not have are skipped (as runc does). For one
 * syscall, an unconditional rule wins; otherwise its conditional rules are tried in order and
 * the default action applies when none matches.
 */
export function compileProfile(profile: SeccompProfile, ctx: SeccompContext): SockFilter[] {
  validate(profile);
  const byNr = new Map<number, SeccompRule[]>();
  for (const rule of profile.syscalls) {
    if (!ruleApplies(rule, ctx)) continue;
    for (const name of rule.names) {
      const nr = SYSCALLS_X86_64[name];
      if (nr === undefined) continue;
      const list = byNr.get(nr) ?? [];
      list.push(rule);
      byNr.set(nr, list);
    }
  }
  const dflt = actionValue(profile.defaultAction, profile.defaultErrnoRet);
  const a = new Assembler();
  a.load(SECCOMP_DATA.arch);
  const archOk = new Label("arch-ok");
  a.jeq(AUDIT_ARCH_X86_64, archOk, 0);
  a.ret(SECCOMP_RET.KILL_PROCESS);
  a.bind(archOk);
  a.load(SECCOMP_DATA.nr);
  const native = new Label("native");
  a.jge(X32_SYSCALL_BIT, 0, native);
  a.ret(SECCOMP_RET.KILL_PROCESS);
  a.bind(native);
  for (const [nr, rules] of [...byNr].sort((x, y) => x[0] - y[0])) {
    const next = new Label(`after-${nr}`);
    a.jeq(nr, 0, next);
    const plain = rules.find((r) => !r.args?.length);
    if (plain) {
      a.ret(actionValue(plain.action, plain.errnoRet ?? profile.defaultErrnoRet));
    } else {
      for (const rule of rules) {
        const fail = new Label(`rule-fail-${nr}`);
        for (const arg of rule.args ?? []) emitArg(a, arg, fail);
        a.ret(actionValue(rule.action, rule.errnoRet ?? profile.defaultErrnoRet));
        a.bind(fail);
        // Argument checks clobbered A: reload the syscall number for the next rule.
        a.load(SECCOMP_DATA.nr);
      }
      a.ret(dflt);
    }
    a.bind(next);
  }
  a.ret(dflt);
  return a.assemble();
}

/** Parses a `--security-opt seccomp=FILE` profile (docker's JSON format). */
export function parseProfile(text: string): SeccompProfile {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new SeccompProfileError(`not JSON: ${(err as Error).message}`);
  }
  if (typeof raw !== "object" || raw === null) throw new SeccompProfileError("not an object");
  const p = raw as Record<string, unknown>;
  if (typeof p.defaultAction !== "string") {
    throw new SeccompProfileError("defaultAction is required");
  }
  const arches = Array.isArray(p.architectures)
    ? p.architectures as string[]
    : Array.isArray(p.archMap)
    ? (p.archMap as { architecture: string; subArchitectures?: string[] }[])
      .flatMap((m) => [m.architecture, ...(m.subArchitectures ?? [])])
    : undefined;
  if (arches && arches.length > 0 && !arches.includes("SCMP_ARCH_X86_64")) {
    throw new SeccompProfileError("the profile does not cover SCMP_ARCH_X86_64");
  }
  const syscalls = Array.isArray(p.syscalls) ? p.syscalls as Record<string, unknown>[] : [];
  const profile: SeccompProfile = {
    defaultAction: p.defaultAction as SeccompAction,
    defaultErrnoRet: typeof p.defaultErrnoRet === "number" ? p.defaultErrnoRet : undefined,
    architectures: arches,
    syscalls: syscalls.map((s) => ({
      // Old profiles name one syscall per rule with "name".
      names: Array.isArray(s.names)
        ? s.names as string[]
        : typeof s.name === "string"
        ? [s.name]
        : [],
      action: s.action as SeccompAction,
      errnoRet: typeof s.errnoRet === "number" ? s.errnoRet : undefined,
      args: Array.isArray(s.args) ? s.args as SeccompArg[] : undefined,
      includes: s.includes as SeccompFilter | undefined,
      excludes: s.excludes as SeccompFilter | undefined,
    })),
  };
  validate(profile);
  return profile;
}
