/**
 * Small constructors for the ops of a child's syscall program (ffi/clone.ts) that the
 * confinement builders (masks, devices, rlimits, seccomp) share.
 *
 * @module
 */
import { type Op, str } from "../../ffi/clone.ts";
import { SYSCALLS_X86_64 as NR } from "./seccomp_syscalls.ts";

/** One op with its description (shown when it fails). */
export function op(nr: number, what: string, args: Op["args"], flags = 0): Op {
  return { nr, args, flags, what };
}

/** mount(2) of `fstype` (or a bind when `fstype` is empty) on `target`. */
export function mountOp(
  source: string,
  target: string,
  fstype: string,
  flags: number,
  data = "",
): Op {
  return op(
    NR.mount,
    fstype ? `mount ${fstype} on ${target}` : `bind ${source} on ${target}`,
    [str(source), str(target), str(fstype), flags, data ? str(data) : 0],
  );
}
