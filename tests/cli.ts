/**
 * Runs the tsbox command line as a user would, as a separate process, for integration tests.
 *
 * @module
 */

const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** What a finished tsbox process left behind. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Options for {@link tsbox}. */
export interface CliOptions {
  /** The store root (`--root`). */
  root: string;
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** Bytes for stdin; stdin is /dev/null otherwise. */
  stdin?: Uint8Array | string;
}

/** Runs `tsbox ARGS...` with `--root` set and returns its exit code and output. */
export async function tsbox(args: string[], options: CliOptions): Promise<CliResult> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", MAIN, "--root", options.root, ...args],
    // Deno's own update check would reach dl.deno.land from every test run: tests stay local.
    env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1", ...options.env },
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (options.stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(
      typeof options.stdin === "string" ? new TextEncoder().encode(options.stdin) : options.stdin,
    );
    await w.close();
  }
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** A fresh temporary store root, removed by the returned function. */
export async function tempRoot(): Promise<{ root: string; cleanup: () => Promise<void> }> {
  const root = await Deno.makeTempDir({ prefix: "tsbox-test-" });
  return { root, cleanup: () => Deno.remove(root, { recursive: true }).catch(() => {}) };
}
