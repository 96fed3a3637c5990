/**
 * The foreground `run`: resolve (or pull) the image, merge its config with the flags, start the
 * container, forward signals, wait, clean up, and set tsbox's exit code to the container's.
 *
 * @module
 */
import { join } from "node:path";
import { UsageError } from "../errors.ts";
import { Store } from "../store/mod.ts";
import type { ResourceLimits } from "./cgroups.ts";
import { parseEnvFile, planProcess } from "./config.ts";
import { Container, type MountRequest, type NetworkMode } from "./container.ts";
import { newContainerId } from "./mod.ts";
import {
  parseBytes,
  parseCpus,
  parseInteger,
  parseMountFlag,
  parseTmpfs,
  parseVolume,
} from "./options.ts";

/** The flags of `run` as the CLI hands them over. */
export interface RunFlags {
  rm?: boolean;
  name?: string;
  hostname?: string;
  env?: string[];
  envFile?: string[];
  workdir?: string;
  user?: string;
  entrypoint?: string;
  network: string;
  memory?: string;
  memorySwap?: string;
  cpus?: string;
  cpuShares?: string;
  pidsLimit?: string;
  interactive?: boolean;
  tty?: boolean;
  volume?: string[];
  mount?: string[];
  tmpfs?: string[];
  readOnly?: boolean;
}

/** What run needs from the global options. */
export interface RunGlobals {
  readonly root: string;
  readonly debug: boolean;
  readonly insecureRegistries: readonly string[];
}

const FORWARDED: Deno.Signal[] = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"];
const SIGNAL_NUMBERS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGTERM: 15 };

/** The resource limits named by the flags. */
export function limitsFrom(f: RunFlags): ResourceLimits {
  return {
    memory: f.memory !== undefined ? parseBytes(f.memory, "--memory") : undefined,
    memorySwap: f.memorySwap !== undefined ? parseBytes(f.memorySwap, "--memory-swap") : undefined,
    cpus: f.cpus !== undefined ? parseCpus(f.cpus) : undefined,
    cpuShares: f.cpuShares !== undefined ? parseInteger(f.cpuShares, "--cpu-shares") : undefined,
    pidsLimit: f.pidsLimit !== undefined ? parseInteger(f.pidsLimit, "--pids-limit") : undefined,
  };
}

/** The user's mounts, in flag order (-v, then --mount, then --tmpfs). */
export function mountsFrom(f: RunFlags): MountRequest[] {
  return [
    ...(f.volume ?? []).map(parseVolume),
    ...(f.mount ?? []).map(parseMountFlag),
    ...(f.tmpfs ?? []).map(parseTmpfs),
  ];
}

function networkFrom(mode: string): NetworkMode {
  if (mode === "host") return "host";
  return mode === "none" ? "none" : "private";
}

/** Runs `image` in the foreground as `tsbox run` does; returns docker's exit code. */
export async function runForeground(
  imageName: string,
  command: readonly string[],
  flags: RunFlags,
  globals: RunGlobals,
): Promise<number> {
  if (flags.tty) throw new UsageError("-t/--tty is not supported yet");
  const limits = limitsFrom(flags);
  const mounts = mountsFrom(flags);
  const envFiles: string[] = [];
  for (const file of flags.envFile ?? []) {
    envFiles.push(...parseEnvFile(await Deno.readTextFile(file)));
  }
  const store = await Store.open(globals.root);
  let image;
  let layers: string[];
  try {
    image = store.findImage(imageName);
    if (!image) {
      console.error(`Unable to find image '${imageName}' locally`);
      const { pullImage } = await import("../image/pull.ts");
      image = (await pullImage(store, imageName, { insecure: globals.insecureRegistries })).image;
    }
    layers = image.layers.map((l) => l.shortId);
  } finally {
    store.close();
  }
  const id = newContainerId();
  const hostname = flags.hostname ?? id.slice(0, 12);
  const plan = planProcess(image.config.config ?? {}, {
    command,
    entrypoint: flags.entrypoint,
    env: [...envFiles, ...(flags.env ?? [])],
    workdir: flags.workdir,
    user: flags.user,
    tty: flags.tty,
  }, hostname);
  const stateDir = join(globals.root, "containers", id);
  await Deno.mkdir(stateDir, { recursive: true, mode: 0o700 });
  await Deno.writeTextFile(
    join(stateDir, "config.json"),
    JSON.stringify({
      id,
      name: flags.name ?? null,
      image: image.id,
      imageName,
      argv: plan.argv,
      created: new Date().toISOString(),
    }),
  );
  let container: Container;
  try {
    container = await Container.start({
      id,
      stateDir,
      lowerBase: join(globals.root, "l"),
      layers,
      argv: plan.argv,
      env: plan.env,
      cwd: plan.cwd,
      user: plan.user,
      hostname,
      network: networkFrom(flags.network),
      resources: limits,
      mounts,
      readOnly: flags.readOnly ?? false,
      stdio: [flags.interactive ? "inherit" : "null", "inherit", "inherit"],
    });
  } catch (err) {
    if (flags.rm) await Deno.remove(stateDir, { recursive: true }).catch(() => {});
    throw err;
  }
  const forward = FORWARDED.map((sig) => {
    const handler = () => container.kill(SIGNAL_NUMBERS[sig]);
    Deno.addSignalListener(sig, handler);
    return () => Deno.removeSignalListener(sig, handler);
  });
  try {
    const exit = await container.wait();
    if (globals.debug && exit.oomKilled) console.error("tsbox: container was killed for memory");
    await Deno.writeTextFile(
      join(stateDir, "state.json"),
      JSON.stringify({ exitCode: exit.exitCode, oomKilled: exit.oomKilled, finished: new Date() }),
    ).catch(() => {});
    return exit.exitCode;
  } finally {
    for (const off of forward) off();
    if (flags.rm) await container.remove();
  }
}
