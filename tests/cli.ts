/**
 * Runs the tsbox command line as a user would, as a separate process, for integration tests.
 *
 * @module
 */

import { join } from "node:path";
import { purgeRoot, purgeRootSync } from "./cleanup.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

/**
 * Refuses a container name made only of hex digits: tsbox (like docker) resolves a name that is
 * not found as an id prefix, so such a name can match another container's id (issue 25).
 */
export function checkTestName(name: string): void {
  if (/^[0-9a-f]+$/.test(name)) {
    throw new Error(
      `test container name ${JSON.stringify(name)} can be an id prefix: use t-${name}`,
    );
  }
}

function checkNames(args: string[]): void {
  args.forEach((arg, i) => {
    if (arg === "--name" && i + 1 < args.length) checkTestName(args[i + 1]);
    if (arg.startsWith("--name=")) checkTestName(arg.slice("--name=".length));
  });
}

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

/**
 * Runs `tsbox ARGS...` with `--root` set and returns its exit code and output. A `--name` that
 * could be an id prefix is refused (see {@link checkTestName}).
 */
export async function tsbox(args: string[], options: CliOptions): Promise<CliResult> {
  checkNames(args);
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

/**
 * A fresh temporary store root. The returned function removes it with every container in it
 * (running ones included), their supervisors and mounts, so a failing test leaves nothing.
 */
export async function tempRoot(): Promise<{ root: string; cleanup: () => Promise<void> }> {
  const root = await Deno.makeTempDir({ prefix: "tsbox-test-" });
  // A test that never calls cleanup (a shared root) still leaves no bridge, rule or container
  // behind: the store's containers run on the default bridge network, host-wide.
  globalThis.addEventListener("unload", () => purgeRootSync(root));
  return { root, cleanup: () => purgeRoot(root) };
}

/** A test that needs root (it fails, never skips, in CI as root), with a store's open resources. */
export function rootTest(name: string, fn: () => Promise<void>): void {
  Deno.test({ name, ignore: Deno.uid() !== 0, sanitizeResources: false, sanitizeOps: false, fn });
}

/** A fresh temporary directory holding `files` (path below it → content), e.g. a build context. */
export async function dirWith(files: Record<string, string>): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "tsbox-ctx-" });
  for (const [path, content] of Object.entries(files)) {
    await Deno.mkdir(join(dir, path, ".."), { recursive: true });
    await Deno.writeTextFile(join(dir, path), content);
  }
  return dir;
}
