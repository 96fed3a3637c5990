/**
 * The supervisor as one bundled file. A supervisor stays resident for its container's whole
 * life, and what it costs is mostly what loading its ~110 source modules leaves behind: Deno
 * keeps every module's source and graph entry in the C heap, V8 every module's (commented)
 * source text. Measured with 20 running: 18.4 MiB PSS per supervisor from the sources, 14.8
 * from a minified bundle of the same code.
 *
 * The bundle (.supervisor_bundle.js, beside this file, so that the `new URL("../x/y.ts",
 * import.meta.url)` of its modules resolve as from their own directories: all are one level
 * below src/, supervisor_bundle_test.ts checks it) is made by `deno bundle` from
 * supervisor_bundle_entry.ts, in a detached process started by the first spawn that finds it
 * missing or stale; spawns use the sources until it is there. Its manifest records the size and
 * mtime of every file it was made from and the Deno version: any difference, and the sources
 * are used (and a new bundle made). Not used by a compiled tsbox, whose supervisor is itself.
 *
 * @module
 */

/** The bundle, its manifest, and the lock its builder holds. */
export const BUNDLE_PATH = new URL("./.supervisor_bundle.js", import.meta.url).pathname;
export const MANIFEST_PATH = new URL("./.supervisor_bundle.json", import.meta.url).pathname;
const LOCK_PATH = new URL("./.supervisor_bundle.lock", import.meta.url).pathname;
/** The entry point the bundle is made from. */
export const BUNDLE_ENTRY = new URL("./supervisor_bundle_entry.ts", import.meta.url).pathname;
const BUILDER = new URL("./supervisor_bundle_build.ts", import.meta.url).pathname;
/** A builder holds its lock for a second or two; an older lock is one a killed builder left. */
const STALE_LOCK_MS = 120_000;

/** A file as the manifest records it: path, size, mtime in ms. */
export type FileStamp = [path: string, size: number, mtimeMs: number];

/** What a bundle was made from. */
export interface BundleManifest {
  readonly deno: string;
  readonly bundle: FileStamp;
  readonly inputs: FileStamp[];
}

/** `path`'s stamp now, or undefined when it cannot be read. */
export function stampOf(path: string): FileStamp | undefined {
  try {
    const st = Deno.statSync(path);
    return [path, st.size, st.mtime?.getTime() ?? -1];
  } catch {
    return undefined;
  }
}

function sameStamp(want: FileStamp): boolean {
  const now = stampOf(want[0]);
  return now !== undefined && now[1] === want[1] && now[2] === want[2];
}

/**
 * Whether the manifest at `manifestPath` describes its bundle and inputs as they are now, for
 * this Deno.
 */
export function bundleIsCurrent(manifestPath: string = MANIFEST_PATH): boolean {
  let m: BundleManifest;
  try {
    m = JSON.parse(Deno.readTextFileSync(manifestPath));
  } catch {
    return false;
  }
  if (m.deno !== Deno.version.deno || !Array.isArray(m.inputs) || m.inputs.length === 0) {
    return false;
  }
  return sameStamp(m.bundle) && m.inputs.every(sameStamp);
}

/**
 * Takes the builder's lock: false when a builder (not older than {@link STALE_LOCK_MS}) holds
 * it or the directory cannot be written (an installed, read-only tree: never bundled).
 */
function takeLock(): boolean {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      Deno.writeTextFileSync(LOCK_PATH, String(Deno.pid), { createNew: true });
      return true;
    } catch (err) {
      if (!(err instanceof Deno.errors.AlreadyExists)) return false;
      const since = stampOf(LOCK_PATH)?.[2];
      if (since === undefined || Date.now() - since < STALE_LOCK_MS) return false;
      try {
        Deno.removeSync(LOCK_PATH);
      } catch { /* another spawn took it over */ }
    }
  }
  return false;
}

/** Starts a detached builder of the bundle unless one runs; it outlives this process. */
function startBuild(): void {
  if (!takeLock()) return;
  try {
    new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--quiet", BUILDER, LOCK_PATH],
      stdin: "null",
      stdout: "null",
      stderr: "null",
      detached: true,
    }).spawn().unref();
  } catch {
    try {
      Deno.removeSync(LOCK_PATH);
    } catch { /* gone */ }
  }
}

/**
 * The file a supervisor should run: the bundle when it is current, else the sources'
 * supervisor_main.ts (`source`), after starting a build of the bundle.
 */
export function supervisorEntry(source: string): string {
  if (bundleIsCurrent()) return BUNDLE_PATH;
  startBuild();
  return source;
}
