/**
 * Makes the supervisor's bundle (supervisor_bundle.ts): `supervisor_bundle_build.ts [LOCK]`.
 * Records every input's stamp before bundling and publishes the bundle only if none changed
 * meanwhile, by renames: a reader sees the old bundle and manifest or the new ones. Removes
 * LOCK (taken by the spawn that started it) when done.
 *
 * @module
 */
import {
  BUNDLE_ENTRY,
  BUNDLE_PATH,
  type BundleManifest,
  type FileStamp,
  MANIFEST_PATH,
  stampOf,
} from "./supervisor_bundle.ts";

/** Thrown when the bundle cannot be made; the sources stay in use. */
export class BundleBuildError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BundleBuildError";
  }
}

async function output(args: string[]): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), { args, stdout: "piped", stderr: "piped" })
    .output();
  if (!out.success) {
    throw new BundleBuildError(
      `deno ${args[0]} failed: ${new TextDecoder().decode(out.stderr).trim()}`,
    );
  }
  return new TextDecoder().decode(out.stdout);
}

/** The local files of the entry's graph, dynamic and type-only imports included. */
async function inputFiles(): Promise<string[]> {
  const info = JSON.parse(await output(["info", "--json", BUNDLE_ENTRY])) as {
    modules: { specifier: string }[];
  };
  return info.modules.map((m) => m.specifier).filter((s) => s.startsWith("file:"))
    .map((s) => new URL(s).pathname);
}

/** Bundles the supervisor and publishes it with its manifest. */
export async function buildSupervisorBundle(): Promise<void> {
  const files = await inputFiles();
  const before = files.map((f) => {
    const s = stampOf(f);
    if (!s) throw new BundleBuildError(`cannot stat ${f}`);
    return s;
  });
  const tmp = `${BUNDLE_PATH}.${Deno.pid}.tmp`;
  try {
    await output(["bundle", "--quiet", "--minify", "--platform", "deno", "-o", tmp, BUNDLE_ENTRY]);
    const changed = before.find((s) => {
      const now = stampOf(s[0]);
      return !now || now[1] !== s[1] || now[2] !== s[2];
    });
    if (changed) throw new BundleBuildError(`${changed[0]} changed while bundling`);
    Deno.renameSync(tmp, BUNDLE_PATH);
  } finally {
    try {
      Deno.removeSync(tmp);
    } catch { /* renamed */ }
  }
  const bundle = stampOf(BUNDLE_PATH) as FileStamp;
  const manifest: BundleManifest = { deno: Deno.version.deno, bundle, inputs: before };
  const mtmp = `${MANIFEST_PATH}.${Deno.pid}.tmp`;
  Deno.writeTextFileSync(mtmp, JSON.stringify(manifest));
  Deno.renameSync(mtmp, MANIFEST_PATH);
}

if (import.meta.main) {
  const [lock] = Deno.args;
  try {
    await buildSupervisorBundle();
  } catch (err) {
    console.error((err as Error).message);
    Deno.exitCode = 1;
  } finally {
    if (lock) {
      try {
        Deno.removeSync(lock);
      } catch { /* gone */ }
    }
  }
}
