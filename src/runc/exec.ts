/**
 * `exec`: a new process in a running container (src/runtime/exec.ts joins its namespaces and
 * cgroups), described by `--process FILE` (runtime-spec `process` JSON, what containerd and
 * conmon pass) or by the arguments and flags. The container's seccomp profile applies to it
 * as to its first process; capabilities, no_new_privs and rlimits come from the process.
 *
 * @module
 */
import type { Process } from "../oci/spec.ts";
import { TsboxError } from "../errors.ts";
import { execInContainer } from "../runtime/exec.ts";
import {
  capabilitySets,
  OciConfigError,
  rlimitSettings,
  validateProcess,
} from "../runtime/oci_config.ts";
import { linuxHost } from "../runtime/host.ts";
import type { SeccompProfile } from "../runtime/seccomp.ts";
import { seccompFlags } from "../runtime/oci_seccomp_flags.ts";
import { list, type RuncContext, str, writeAtomic } from "./context.ts";
import { checkId, readRecord, statusOf } from "./state.ts";
import { windowSize } from "../runtime/oci_start.ts";

async function processOf(ctx: RuncContext, base: Process): Promise<Process> {
  const file = str(ctx.flags, "process");
  if (file) {
    let raw: unknown;
    try {
      raw = JSON.parse(
        file === "-"
          ? await new Response(Deno.stdin.readable).text()
          : await Deno.readTextFile(file),
      );
    } catch (err) {
      throw new OciConfigError(`process ${file}: ${(err as Error).message}`);
    }
    if (typeof raw !== "object" || raw === null) {
      throw new OciConfigError(`process ${file}: not an object`);
    }
    return validateProcess(raw as Record<string, unknown>, "process");
  }
  const args = ctx.args.slice(1);
  if (args.length === 0) throw new TsboxError("exec: no command given (use --process or ARGS)");
  const user = str(ctx.flags, "user");
  const [uid, gid] = user ? user.split(":").map(Number) : [base.user.uid, base.user.gid];
  const caps = list(ctx.flags, "cap");
  return {
    ...base,
    args,
    terminal: ctx.flags.tty === true,
    cwd: str(ctx.flags, "cwd") ?? base.cwd,
    env: [...(base.env ?? []), ...list(ctx.flags, "env")],
    user: {
      uid: uid ?? 0,
      gid: gid ?? 0,
      additionalGids: list(ctx.flags, "additional-gids").map(Number),
    },
    noNewPrivileges: ctx.flags["no-new-privs"] === true || base.noNewPrivileges,
    capabilities: caps.length
      ? Object.fromEntries(
        ["bounding", "effective", "permitted"].map((
          s,
        ) => [s, [...(base.capabilities?.bounding ?? []), ...caps]]),
      )
      : base.capabilities,
  } as Process;
}

/** `exec [--process FILE | ARGS...] ID`. */
export async function exec(ctx: RuncContext): Promise<number> {
  const id = checkId(ctx.args[0]);
  const rec = await readRecord(ctx.root, id);
  const status = statusOf(ctx.root, rec);
  if (status !== "running") throw new TsboxError(`cannot exec in a ${status} container`);
  const p = await processOf(ctx, rec.config.process);
  if (p.terminal && !str(ctx.flags, "console-socket")) {
    throw new TsboxError("exec with a terminal needs --console-socket");
  }
  const caps = capabilitySets(p, linuxHost.lastCap(), (m) => ctx.log.warn(m));
  if (Number(str(ctx.flags, "preserve-fds") ?? "0") > 0) {
    ctx.log.warn("exec --preserve-fds is not supported: the process gets stdio only");
  }
  const seccomp = rec.config.linux.seccomp as unknown as SeccompProfile | undefined;
  const proc = await execInContainer(rec.pid, {
    argv: p.args,
    env: p.env ?? [],
    cwd: p.cwd,
    // As create reads the first process: the ids, groups and rlimits as the process gives them.
    user: p.user,
    rlimits: rlimitSettings(p),
    stdio: ["inherit", "inherit", "inherit"],
    seccompFlags: seccompFlags(rec.config.linux.seccomp?.flags),
    tty: p.terminal ? { size: windowSize(p.consoleSize) } : undefined,
    capabilities: caps,
    security: {
      seccomp: seccomp ?? "unconfined",
      noNewPrivileges: p.noNewPrivileges ?? false,
    },
  });
  if (proc.terminal !== undefined) {
    linuxHost.sendTerminal(str(ctx.flags, "console-socket")!, proc.terminal);
  }
  const pidFile = str(ctx.flags, "pid-file");
  if (pidFile) await writeAtomic(pidFile, String(proc.pid));
  if (ctx.flags.detach === true) return 0;
  return await proc.wait();
}
