/**
 * The path of an executable that speaks runc's command line through tsbox's OCI runtime
 * (`tsbox runc ...`), for tests that hand it to podman (`--runtime`) or containerd
 * (`--runc-binary`, the shim's `BinaryName`). Those callers take one executable path, so this
 * writes a small wrapper script into `dir`.
 *
 * `TSBOX_TEST_RUNC` points the same tests at another runtime (for example /usr/bin/runc) to
 * check the tests themselves.
 *
 * @module
 */

const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** Writes `dir/tsbox-runc` (once) and returns its path, or `TSBOX_TEST_RUNC` when set. */
export async function runcBinary(dir: string): Promise<string> {
  const other = Deno.env.get("TSBOX_TEST_RUNC");
  if (other) return other;
  const path = `${dir}/tsbox-runc`;
  const script = [
    "#!/bin/sh",
    `DENO_NO_UPDATE_CHECK=1 exec "${Deno.execPath()}" run -A --quiet "${MAIN}" runc "$@"`,
    "",
  ].join("\n");
  await Deno.writeTextFile(path, script, { mode: 0o755 });
  return path;
}
