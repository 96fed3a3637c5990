/**
 * Helpers of the README audit tests (tests/readme_audit_*_test.ts, issue 19): root-only tests,
 * a CLI bound to one store root per test file, names that cannot be id prefixes, and polling.
 *
 * @module
 */
import { assertEquals } from "./assert.ts";
import { type CliResult, tsbox } from "./cli.ts";

const isRoot = Deno.uid() === 0;

/** A test that needs root (real namespaces, mounts and cgroups). */
export function rootTest(name: string, fn: () => Promise<void>): void {
  Deno.test({ name, ignore: !isRoot, sanitizeResources: false, sanitizeOps: false, fn });
}

/** A container, volume or image name of this test run: `t-WHAT-xxxxxxxx`. */
export function uniqueName(what: string): string {
  return `t-${what}-${crypto.randomUUID().slice(0, 8)}`;
}

/** The tsbox CLI on one store root. */
export interface Cli {
  root: string;
  /** Runs tsbox and returns what it left. */
  t(args: string[], options?: { env?: Record<string, string>; stdin?: string }): Promise<CliResult>;
  /** Runs tsbox, asserts exit 0 and returns its stdout. */
  ok(args: string[], options?: { env?: Record<string, string>; stdin?: string }): Promise<string>;
}

/** A {@link Cli} for `root`. */
export function cliFor(root: string): Cli {
  const t: Cli["t"] = (args, options) => tsbox(args, { root, ...options });
  return {
    root,
    t,
    ok: async (args, options) => {
      const r = await t(args, options);
      assertEquals(r.code, 0, `tsbox ${args.join(" ")}: ${r.stdout}\n${r.stderr}`);
      return r.stdout;
    },
  };
}

/** Polls `fn` every 100 ms until it returns a value, failing after `ms`. */
export async function until<T>(
  what: string,
  fn: () => Promise<T | undefined>,
  ms = 30_000,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** sha256 of bytes as `sha256:<hex>`. */
export async function sha256(bytes: Uint8Array): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return `sha256:${Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("")}`;
}
