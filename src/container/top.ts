/**
 * `top CONTAINER [ps OPTIONS]` as docker's daemon does it: the host's `ps` runs with the
 * user's options (docker's default `-ef`) and `-q` with the container's pids, and only the rows
 * of those pids are kept (thread rows, `-` in the PID column, follow their process). `top` is
 * not on the start path, so running a host program here costs nothing that matters.
 *
 * @module
 */
import { TsboxError } from "../errors.ts";

/** docker's `container.ContainerTopOKBody`: the ps header's titles and one row per process. */
export interface TopResult {
  readonly titles: string[];
  readonly processes: string[][];
}

/** docker's default ps options. */
export const DEFAULT_PS_ARGS = "-ef";

/**
 * Runs the host's `ps` with `psArgs` (split on spaces, as docker's daemon does) over `pids`,
 * retrying without `-q` for options that cannot go with it (`f`, say), and keeps the rows of
 * `pids`.
 */
export async function psTop(pids: readonly number[], psArgs = DEFAULT_PS_ARGS): Promise<TopResult> {
  const args = psArgs.split(" ");
  let out = await runPs([...args, "-q", pids.join(",")]);
  if (!out.ok) out = await runPs(args);
  if (!out.ok) throw new TsboxError(`ps: ${out.error}`);
  return parsePsOutput(out.text, pids);
}

async function runPs(args: string[]): Promise<{ ok: boolean; text: string; error: string }> {
  let result: Deno.CommandOutput;
  try {
    result = await new Deno.Command("ps", { args, stdin: "null", stdout: "piped", stderr: "piped" })
      .output();
  } catch (err) {
    return { ok: false, text: "", error: (err as Error).message };
  }
  const dec = new TextDecoder();
  const error = dec.decode(result.stderr).trim().split("\n")[0] ||
    `exit status ${result.code}`;
  return { ok: result.success, text: dec.decode(result.stdout), error };
}

/** docker's parsePSOutput: the header's PID column picks the rows of `pids`. */
export function parsePsOutput(output: string, pids: readonly number[]): TopResult {
  const lines = output.split("\n");
  const titles = (lines[0] ?? "").trim().split(/\s+/).filter(Boolean);
  const pidIndex = titles.indexOf("PID");
  if (pidIndex < 0) throw new TsboxError("Couldn't find PID field in ps output");
  const wanted = new Set(pids);
  const processes: string[][] = [];
  // A thread row (`ps -m`, PID `-`) belongs to the process row above it.
  let inContainer = false;
  const add = (fields: string[]) =>
    processes.push([
      ...fields.slice(0, titles.length - 1),
      fields.slice(titles.length - 1).join(" "),
    ]);
  for (const line of lines.slice(1)) {
    if (line === "") continue;
    const fields = line.trim().split(/\s+/);
    if (fields[pidIndex] === "-") {
      if (inContainer) add(fields);
      continue;
    }
    const pid = Number(fields[pidIndex]);
    if (!Number.isInteger(pid)) {
      throw new TsboxError(`Unexpected pid '${fields[pidIndex]}'`);
    }
    inContainer = wanted.has(pid);
    if (inContainer) add(fields);
  }
  return { titles, processes };
}
