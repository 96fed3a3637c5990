/**
 * Merging an image's config with `run`'s options into the process to start: argv, environment,
 * working directory and user, with docker's defaults (PATH, HOSTNAME, HOME, TERM).
 *
 * @module
 */
import { UsageError } from "../errors.ts";

/** The part of an OCI image config `run` honours. */
export interface ImageProcessConfig {
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  Env?: string[] | null;
  WorkingDir?: string;
  User?: string;
}

/** What the user asked for on the command line. */
export interface ProcessOverrides {
  /** COMMAND [ARG...] after the image, if any. */
  readonly command?: readonly string[];
  /** `--entrypoint` ("" clears the image's). */
  readonly entrypoint?: string;
  /** `-e` values, in order (`NAME=value`, or `NAME` to copy the host's). */
  readonly env?: readonly string[];
  /** `-w`. */
  readonly workdir?: string;
  /** `-u`. */
  readonly user?: string;
  /** `-t`: adds TERM=xterm. */
  readonly tty?: boolean;
}

/** docker's default PATH when the image sets none. */
export const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** The merged process before the user is resolved against the image's passwd. */
export interface ProcessPlan {
  readonly argv: string[];
  /** The entrypoint part of {@link argv} (the image's or `--entrypoint`), for inspect. */
  readonly entrypoint: string[];
  readonly env: string[];
  readonly cwd: string;
  readonly user: string;
}

function setEnv(env: string[], entry: string): void {
  const name = entry.split("=", 1)[0];
  const i = env.findIndex((e) => e.split("=", 1)[0] === name);
  if (i >= 0) env[i] = entry;
  else env.push(entry);
}

/** Looks `name` up in a `NAME=value` list. */
export function getEnv(env: readonly string[], name: string): string | undefined {
  const hit = env.find((e) => e.startsWith(`${name}=`));
  return hit?.slice(name.length + 1);
}

/** Merges image config and overrides; HOME is added later from the resolved user. */
export function planProcess(
  image: ImageProcessConfig,
  o: ProcessOverrides,
  hostname: string,
  hostEnv: (name: string) => string | undefined = (n) => Deno.env.get(n),
): ProcessPlan {
  const entrypoint = o.entrypoint !== undefined
    ? (o.entrypoint === "" ? [] : [o.entrypoint])
    : [...(image.Entrypoint ?? [])];
  // As docker: --entrypoint drops the image's Cmd; a command replaces it.
  const cmd = o.command && o.command.length > 0
    ? [...o.command]
    : (o.entrypoint !== undefined ? [] : [...(image.Cmd ?? [])]);
  const argv = [...entrypoint, ...cmd];
  if (argv.length === 0) throw new UsageError("no command specified");
  const env: string[] = [`PATH=${DEFAULT_PATH}`, `HOSTNAME=${hostname}`];
  for (const e of image.Env ?? []) setEnv(env, e);
  if (o.tty) setEnv(env, "TERM=xterm");
  for (const e of o.env ?? []) {
    if (e.includes("=")) setEnv(env, e);
    else {
      const v = hostEnv(e);
      if (v !== undefined) setEnv(env, `${e}=${v}`);
    }
  }
  const cwd = o.workdir || image.WorkingDir || "/";
  if (!cwd.startsWith("/")) throw new UsageError(`the working directory '${cwd}' is invalid`);
  return { argv, entrypoint, env, cwd, user: o.user ?? image.User ?? "" };
}

/** Parses an --env-file: `NAME=value` or `NAME` lines; `#` comments and blank lines skipped. */
export function parseEnvFile(text: string): string[] {
  return text.split("\n").map((l) => l.replace(/\r$/, "")).filter((l) =>
    l.trim() !== "" && !l.trimStart().startsWith("#")
  );
}

/**
 * The execve candidates for `argv0`: itself when it holds a `/`, else each `$PATH` entry in
 * order (an empty entry is the working directory), as execvp does.
 */
export function execCandidates(argv0: string, env: readonly string[]): string[] {
  if (argv0.includes("/")) return [argv0];
  const path = getEnv(env, "PATH") ?? DEFAULT_PATH;
  return path.split(":").map((dir) => dir === "" ? argv0 : `${dir.replace(/\/+$/, "")}/${argv0}`);
}
