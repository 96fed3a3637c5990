/**
 * RUN: the step's command (exec form, shell form, heredocs), its environment and network, its
 * `--mount`s, and the container that runs it on an overlay of the stage's layers, whose upper
 * directory afterwards is the step's layer.
 *
 * @module
 */
import { join, resolve } from "node:path";
import { hostPlatform } from "../../registry/platform.ts";
import { closeFd, pipe } from "../../ffi/process.ts";
import type { Container as RuntimeContainer } from "../runtime/container.ts";
import { DEFAULT_PATH } from "../runtime/config.ts";
import { removeTree } from "../store/layers.ts";
import type { Store } from "../store/mod.ts";
import type { BuildEvent } from "./builder.ts";
import { BuildStepError, platformOf, runsOn } from "./build_errors.ts";
import type { SourceRoot } from "./context.ts";
import type { Instruction } from "./dockerfile.ts";
import { execForm } from "./exec_form.ts";
import { commitLayer } from "./layer.ts";
import { removeMountStubs } from "./mount_stubs.ts";
import { PrefixedLines } from "./output.ts";
import { type MountSpec, MountSpecError, parseMountFlag, prepareMounts } from "./run_mounts.ts";
import type { Secrets } from "./secrets.ts";
import type { SshAgents } from "./ssh.ts";
import { type BuildState, configOf, nextState } from "./state.ts";
import { type Lookup, processWord } from "./words.ts";

const DEFAULT_SHELL = ["/bin/sh", "-c"];

/** What a RUN step needs of the build it belongs to. */
export interface RunStepContext {
  readonly store: Store;
  /** The build context (bind mounts without `from` read it). */
  readonly context: SourceRoot;
  readonly secrets: Secrets;
  /** `--ssh` agents by id, for `--mount=type=ssh`. */
  readonly ssh?: SshAgents;
  /** `--allow security.insecure`: `--security=insecure` steps run privileged. */
  readonly allowInsecure: boolean;
  /** The Dockerfile's escape character. */
  readonly escape: string;
  /** The build's network for RUN steps without `--network`. */
  readonly network: "host" | "none";
  /** This build's scratch directory. */
  readonly scratch: string;
  /** A fresh path in the scratch directory for a mount of `kind`. */
  fresh(kind: string): string;
  /** Lower entries of `state` (relative to the store's link dir), bottom first. */
  lowers(state: BuildState): Promise<string[]>;
  /** Mounts a stage's or image's filesystem for a `--mount from=`. */
  view(from: string): Promise<{ dir: string; release: () => Promise<void> }>;
  emit(e: BuildEvent): void;
  /** The step's number (its output events carry it). */
  readonly step: number;
  /** `stage step/total` when stages run at the same time (output lines get it as prefix). */
  readonly label?: string;
  /** Throws the instruction's error (names the file and line). */
  fail(ins: Instruction, detail: string): never;
}

/** The network a RUN step gets: its `--network` flag, else the build's. */
export function runNetwork(
  ins: Instruction,
  fallback: "host" | "none",
  fail: (detail: string) => never,
): "host" | "none" {
  const flag = ins.flags.find((f) => f.name === "network")?.value;
  if (flag === "none") return "none";
  if (flag === "host" || flag === "default" || flag === "") return "host";
  if (flag !== undefined) fail(`unsupported network mode ${flag}`);
  return fallback;
}

/**
 * Whether a RUN runs with `--security=insecure` (every capability, no seccomp, no masks, the
 * host's devices: BuildKit's entitlement), which only `build --allow security.insecure`
 * grants; otherwise refused naming the flag.
 */
export function runInsecure(
  ins: Instruction,
  allowed: boolean,
  fail: (detail: string) => never,
): boolean {
  const security = ins.flags.find((f) => f.name === "security")?.value;
  if (security === undefined || security === "sandbox") return false;
  if (security !== "insecure") fail(`--security=${security}: sandbox or insecure`);
  if (!allowed) fail("--security=insecure is not allowed (give build --allow security.insecure)");
  return true;
}

/**
 * The `--mount`s of a RUN, expanded and parsed; its `--security` is checked here too (every
 * RUN's mounts are read before its cache lookup).
 */
export function runMountSpecs(
  ins: Instruction,
  lookup: Lookup,
  escape: string,
  allowInsecure: boolean,
  fail: (detail: string) => never,
): MountSpec[] {
  runInsecure(ins, allowInsecure, fail);
  return ins.flags.filter((f) => f.name === "mount").map((f) => {
    try {
      return parseMountFlag(processWord(f.value, lookup, { escape }));
    } catch (err) {
      if (err instanceof MountSpecError) fail(err.message);
      throw err;
    }
  });
}

/** The command a RUN runs: its exec form, or the shell with its text (and heredocs). */
export function runArgv(ins: Instruction, shell: readonly string[]): string[] {
  const json = execForm(ins.args);
  if (json) return json;
  if (ins.heredocs.length > 0 && /^<<-?["']?[A-Za-z_][A-Za-z0-9_]*["']?$/.test(ins.args.trim())) {
    // `RUN <<EOF` with nothing else on the line: the heredoc is the script.
    return [...shell, ins.heredocs[0].body];
  }
  if (ins.heredocs.length > 0) {
    // A command reading heredocs: the shell understands the whole text.
    return [...shell, [ins.args, ...ins.heredocs.map((h) => `${h.body}${h.name}`)].join("\n")];
  }
  return [...shell, ins.args.trim()];
}

/** The image's environment (with a PATH) and the build args it does not set. */
export function runEnv(imageEnv: readonly string[], argList: readonly string[]): string[] {
  const env = [...imageEnv];
  if (!env.some((e) => e.startsWith("PATH="))) env.unshift(`PATH=${DEFAULT_PATH}`);
  const envNames = new Set(env.map((e) => e.split("=", 1)[0]));
  for (const a of argList) if (!envNames.has(a.split("=", 1)[0])) env.push(a);
  return env;
}

/** Runs a RUN step on `state`; returns the state with its layer. */
export async function runStep(
  ctx: RunStepContext,
  state: BuildState,
  ins: Instruction,
  argList: string[],
  created: string,
  lookup: Lookup,
): Promise<BuildState> {
  const cfg = configOf(state).config ?? {};
  const argv = runArgv(ins, cfg.Shell ?? DEFAULT_SHELL);
  if (argv.length === 0) ctx.fail(ins, "RUN names no command");
  const env = runEnv(cfg.Env ?? [], argList);
  const id = crypto.randomUUID().replaceAll("-", "") + crypto.randomUUID().replaceAll("-", "");
  // The full id: the cgroups are named after it, and a sweep after a kill finds them by it.
  const stateDir = join(ctx.scratch, `run-${id}`);
  await Deno.mkdir(stateDir, { recursive: true, mode: 0o700 });
  const lowers = await ctx.lowers(state);
  const specs = runMountSpecs(ins, lookup, ctx.escape, ctx.allowInsecure, (d) => ctx.fail(ins, d));
  const mountPlan = await prepareMounts(specs, cfg.WorkingDir || "/", {
    storeRoot: resolve(ctx.store.root),
    context: ctx.context,
    secrets: ctx.secrets,
    ssh: ctx.ssh,
    fresh: ctx.fresh,
    view: ctx.view,
  }).catch((err) => {
    if (err instanceof MountSpecError) ctx.fail(ins, err.message);
    throw err;
  });
  try {
    return await runContainer(ctx, state, ins, argv, [...env, ...mountPlan.env], {
      id,
      stateDir,
      lowers,
      mounts: mountPlan.mounts,
      mountTargets: mountPlan.targets,
      created,
    });
  } finally {
    await mountPlan.release();
  }
}

/** Runs a RUN step's container and makes its layer from what it changed. */
async function runContainer(
  ctx: RunStepContext,
  state: BuildState,
  ins: Instruction,
  argv: string[],
  env: string[],
  c: {
    id: string;
    stateDir: string;
    lowers: string[];
    mounts: Awaited<ReturnType<typeof prepareMounts>>["mounts"];
    mountTargets: string[];
    created: string;
  },
): Promise<BuildState> {
  const { id, stateDir, lowers, created } = c;
  const cfg = configOf(state).config ?? {};
  const [readFd, writeFd] = pipe();
  let output: Deno.FsFile | undefined;
  // Loaded on the first RUN that misses the cache: a cached build never needs the runtime.
  const { Container } = await import("../runtime/container.ts");
  const { runStepConfig, writeRunStepBundle } = await import("./run_spec.ts");
  // Every capability this process can hand on, as `run --privileged` gives.
  const insecure = runInsecure(ins, ctx.allowInsecure, (d) => ctx.fail(ins, d))
    ? (await import("../container/security_flags.ts")).boundingSet()
    : undefined;
  const image = { config: configOf(state) };
  if (!runsOn(image, hostPlatform())) {
    // Another architecture's programs run through the host's binfmt_misc handler; without one
    // the step would fail with execve's bare "exec format error".
    const { checkEmulation, EmulationError } = await import("../image/emulation.ts");
    try {
      checkEmulation(platformOf(image));
    } catch (err) {
      if (err instanceof EmulationError) ctx.fail(ins, err.message);
      throw err;
    }
  }
  let container: RuntimeContainer;
  try {
    // Described as `tsbox run` describes a container (its OCI spec), then started the same way.
    const config = runStepConfig({
      argv,
      env,
      cwd: cfg.WorkingDir || "/",
      user: cfg.User ?? "",
      network: runNetwork(ins, ctx.network, (d) => ctx.fail(ins, d)),
      mounts: c.mounts,
      layers: lowers,
      insecure,
    });
    // Its config.json in its bundle directory, and the start made from that file.
    const spec = await writeRunStepBundle(id, stateDir, ctx.store.linkDir, config);
    // The pipe's read end as a file, so output streams as it comes instead of in fixed reads.
    output = await Deno.open(`/proc/self/fd/${readFd}`, { read: true });
    container = await Container.start(spec, {
      id,
      stateDir,
      lowerBase: ctx.store.linkDir,
      layers: lowers,
      stdio: ["null", writeFd, writeFd],
      parentDeathSignal: 9,
    });
  } catch (err) {
    output?.close();
    throw err;
  } finally {
    closeFd(readFd);
    closeFd(writeFd);
  }
  const send = (data: Uint8Array) => ctx.emit({ type: "output", data, step: ctx.step });
  const lines = ctx.label ? new PrefixedLines(`[${ctx.label}] `, send) : undefined;
  const reading = (async () => {
    for await (const chunk of output.readable) {
      if (lines) lines.write(chunk);
      else send(chunk);
    }
  })();
  const exit = await container.wait();
  await reading.catch(() => {});
  lines?.flush();
  try {
    if (exit.exitCode !== 0) {
      throw new BuildStepError(argv, exit.exitCode);
    }
    const upper = join(stateDir, "upper");
    await removeMountStubs(upper, state, ctx.store, c.mountTargets);
    const layer = await commitLayer(ctx.store, upper, true);
    const shown = `RUN ${argv.join(" ")} # buildkit`;
    return nextState(state, { createdBy: shown, created, layer });
  } finally {
    await removeTree(stateDir);
  }
}
