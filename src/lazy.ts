/**
 * Imports that Deno does not read ahead. Deno loads (reads, parses) the module graph of every
 * import whose name it can see in the source as the program starts, dynamic ones included,
 * whether they ever run or not: a literal `await import("./x.ts")` on the path of a short
 * command costs it x.ts's whole graph. A name computed at run time is loaded only when the
 * import runs. Modules reached only this way must be named to `deno compile` (compile.sh);
 * the ones tsbox loads so are all in the static graph of src/cli/mod.ts, which it includes.
 *
 * A bundled program (the supervisor's bundle, src/container/supervisor_bundle.ts) carries its
 * lazily imported modules inside: it registers them with {@link registerLazy}, so that
 * {@link lazyImport} takes the bundle's copy (one instance of every module, as unbundled)
 * instead of loading a second one from the source files.
 *
 * @module
 */

const registered = new Map<string, () => Promise<unknown>>();

/**
 * Imports `url` (a `new URL("./x.ts", import.meta.url)` of the caller) when called; type it as
 * `lazyImport<typeof import("./x.ts")>(...)`.
 */
export function lazyImport<T>(url: URL): Promise<T> {
  const load = registered.get(url.href);
  return (load ? load() : import(url.href)) as Promise<T>;
}

/** Makes {@link lazyImport} of `url` call `load` (a bundle's import of its own copy). */
export function registerLazy(url: URL, load: () => Promise<unknown>): void {
  registered.set(url.href, load);
}
