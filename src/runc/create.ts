/**
 * `create` and `run`: the commands that start a container's process (src/runtime/oci_start.ts).
 *
 * @module
 */
import { closeFd, killPid, waitPid } from "../../ffi/process.ts";
import { attachTerminal } from "../runtime/tty.ts";
import { TsboxError } from "../errors.ts";
import { cgroupPathFor, ociCgroup } from "../runtime/oci_cgroup.ts";
import { type OciRootless, planRootless, runtimeIsRootless } from "../runtime/oci_rootless.ts";
import { readBundleConfig, rootPath } from "../runtime/oci_config.ts";
import { createOciContainer } from "../runtime/oci_start.ts";
import { type RuncContext, str, writeAtomic } from "./context.ts";
import { createContainerPlace, runHooks, runtimePlace } from "./hooks.ts";
import { destroy, startContainer } from "./lifecycle.ts";
import {
  checkId,
  type ContainerRecord,
  makeStateDir,
  procStat,
  stateJson,
  writeRecord,
} from "./state.ts";

function idArg(ctx: RuncContext): string {
  return checkId(ctx.args[0]);
}

/** `create`: the container waits on its fifo; the pid file is written; exit 0. */
export async function create(ctx: RuncContext): Promise<number> {
  await createContainer(ctx);
  return 0;
}

/** runc's rule: a terminal needs someone to take it (a console socket, or a foreground run). */
function checkTerminal(ctx: RuncContext, terminal: boolean | undefined): void {
  if (terminal && ctx.flags.detach === true && !str(ctx.flags, "console-socket")) {
    throw new TsboxError("cannot allocate tty if runc will detach without setting console socket");
  }
}

async function createContainer(
  ctx: RuncContext,
  keepTerminal = false,
): Promise<{ rec: ContainerRecord; terminal?: number }> {
  const id = idArg(ctx);
  const bundle = Deno.realPathSync(str(ctx.flags, "bundle") ?? Deno.cwd());
  let spec = await readBundleConfig(bundle);
  const dir = await makeStateDir(ctx.root, id);
  let rec: ContainerRecord | undefined;
  let rootless: OciRootless | undefined;
  const cgroupPath = cgroupPathFor(spec.linux.cgroupsPath, id);
  try {
    if (runtimeIsRootless()) ({ spec, rootless } = await planRootless(spec, cgroupPath));
    const preserve = Number(str(ctx.flags, "preserve-fds") ?? "0");
    if (!Number.isInteger(preserve) || preserve < 0) {
      throw new TsboxError("--preserve-fds must be a count");
    }
    const created_ = new Date().toISOString();
    const record = (pid: number, cgroupPath: string): ContainerRecord => ({
      id,
      pid,
      startTime: procStat(pid)?.startTime ?? "",
      bundle,
      rootfs: rootPath(bundle, spec),
      created: created_,
      cgroupPath,
      config: spec,
    });
    const h = spec.hooks ?? {};
    const hooked = [h.prestart, h.createRuntime, h.createContainer].some((l) => l?.length);
    const created = await createOciContainer({
      id,
      bundle,
      spec,
      stateDir: dir,
      consoleSocket: str(ctx.flags, "console-socket"),
      noPivot: ctx.flags["no-pivot"] === true,
      preserveFds: preserve,
      keepTerminal,
      rootless,
      warn: (m) => ctx.log.warn(m),
      // As runc: after the namespaces and mounts exist, before pivot_root (see hooks.ts).
      hooks: hooked
        ? async (pid) => {
          const state = { ...stateJson(ctx.root, record(pid, "")), status: "creating", pid };
          const host = runtimePlace(bundle);
          await runHooks("prestart", h.prestart, state, host);
          await runHooks("createRuntime", h.createRuntime, state, host);
          await runHooks(
            "createContainer",
            h.createContainer,
            state,
            createContainerPlace(pid, bundle, spec),
          );
        }
        : undefined,
    });
    rec = record(created.pid, created.cgroupPath);
    await writeRecord(ctx.root, rec);
    const pidFile = str(ctx.flags, "pid-file");
    if (pidFile) await writeAtomic(pidFile, String(created.pid));
    ctx.log.debug(`created ${id} pid ${created.pid}`);
    return { rec, terminal: created.terminal };
  } catch (err) {
    if (rec) {
      killPid(rec.pid, 9);
      await ociCgroup(rec.cgroupPath).remove().catch(() => {});
    }
    // A rootless create may have made the cgroup before it failed.
    if (rootless && !rootless.noCgroup) await ociCgroup(cgroupPath).remove().catch(() => {});
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw err;
  }
}

/** `run`: create and start; without --detach, wait and exit with the container's status. */
export async function run(ctx: RuncContext): Promise<number> {
  const bundle = str(ctx.flags, "bundle") ?? Deno.cwd();
  const terminal = (await readBundleConfig(Deno.realPathSync(bundle))).process.terminal;
  checkTerminal(ctx, terminal);
  const { rec, terminal: master } = await createContainer(
    ctx,
    terminal === true && !str(ctx.flags, "console-socket"),
  );
  try {
    await startContainer(ctx, rec);
  } catch (err) {
    if (master !== undefined) closeFd(master);
    await destroy(ctx, rec, true);
    throw err;
  }
  if (ctx.flags.detach === true) return 0;
  // A foreground run with a terminal: the pty is connected to this process's own terminal.
  const session = master !== undefined ? attachTerminal(master, { stdin: true }) : undefined;
  // Terminal signals reach the container's process, as runc forwards them.
  const forward = (sig: Deno.Signal) => () => killPid(rec.pid, sig === "SIGINT" ? 2 : 15);
  const handlers: [Deno.Signal, () => void][] = [
    ["SIGINT", forward("SIGINT")],
    ["SIGTERM", forward("SIGTERM")],
  ];
  for (const [s, h] of handlers) Deno.addSignalListener(s, h);
  const status = await waitPid(rec.pid);
  for (const [s, h] of handlers) Deno.removeSignalListener(s, h);
  if (session) {
    await session.stop();
    closeFd(master!);
  }
  if (ctx.flags.keep !== true) await destroy(ctx, rec, true);
  return status.signal !== undefined ? 128 + status.signal : status.exitCode ?? 0;
}
