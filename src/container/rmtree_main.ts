/**
 * The hidden `__rmtree PATH` mode: removes one directory tree and exits. rmtree.ts starts it
 * inside a user namespace mapped like a rootless container's, where it is root over every
 * mapped id, so it can remove files a container created as a subordinate id (`podman unshare
 * rm -rf`). It imports nothing, so it starts without an import map or lockfile.
 *
 * @module
 */

/** Removes the tree at `args[0]` (an absolute path, not `/`); returns the exit code. */
export async function rmtreeMain(args: readonly string[]): Promise<number> {
  const path = args[0];
  if (args.length !== 1 || !path.startsWith("/") || path.replace(/\/+/g, "/") === "/") {
    console.error("usage: tsbox __rmtree ABSOLUTE-PATH");
    return 2;
  }
  try {
    await Deno.remove(path, { recursive: true });
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return 0;
    console.error(`tsbox: removing ${path} in the user namespace: ${(err as Error).message}`);
    return 1;
  }
  return 0;
}

if (import.meta.main) Deno.exit(await rmtreeMain(Deno.args));
