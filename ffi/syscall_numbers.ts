/**
 * Linux x86-64 system call numbers used by the container's first process (see clone.ts).
 * Numbers differ per architecture; this table is the x86-64 one, the only stub we ship.
 *
 * @module
 */

/** System call numbers (arch/x86/entry/syscalls/syscall_64.tbl). */
export const SYS = {
  read: 0,
  write: 1,
  close: 3,
  munmap: 11,
  rt_sigaction: 13,
  rt_sigprocmask: 14,
  ioctl: 16,
  socket: 41,
  sendmsg: 46,
  clone: 56,
  execve: 59,
  chdir: 80,
  fchdir: 81,
  fchown: 93,
  umask: 95,
  setsid: 112,
  setgroups: 116,
  setresuid: 117,
  setresgid: 119,
  capset: 126,
  pivot_root: 155,
  prctl: 157,
  chroot: 161,
  mount: 165,
  umount2: 166,
  sethostname: 170,
  exit_group: 231,
  openat: 257,
  mkdirat: 258,
  mknodat: 259,
  symlinkat: 266,
  unshare: 272,
  dup3: 292,
  setns: 308,
  close_range: 436,
} as const;

/** Reverse lookup for error messages: number -> name. */
export function syscallName(nr: number): string {
  for (const [name, value] of Object.entries(SYS)) if (value === nr) return name;
  return `syscall ${nr}`;
}
