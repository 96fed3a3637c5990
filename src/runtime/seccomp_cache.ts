/**
 * Compiled default seccomp filters kept on disk between starts. Compiling the default profile
 * is ~14M instructions of JS on every container start; the result depends only on the
 * compiler, the profile, the capability set and the kernel, so it is stored under a key made
 * of exactly those (the compiler and profile identified by their files' size, mtime and
 * inode). The whole key is stored with the bytes and compared on load, so a file-name hash
 * collision can only cost a recompile.
 *
 * @module
 */

/** "../runtime/": the same files from src/runtime/ and from the supervisor's bundle in src/container/. */
const SOURCES = [
  "../runtime/seccomp.ts",
  "../runtime/seccomp_profile.ts",
  "../runtime/seccomp_syscalls.ts",
];
let sources: string | null | undefined;

/**
 * Identifies the compiler and default profile files as they are now (path, size, mtime, inode:
 * any edit changes it, and stat is far cheaper than reading and hashing them), or null when
 * they are not files (a compiled tsbox: no cache, compile every time).
 */
function compilerVersion(): string | null {
  if (sources !== undefined) return sources;
  try {
    sources = JSON.stringify(SOURCES.map((s) => {
      const url = new URL(s, import.meta.url);
      const st = Deno.statSync(url);
      return [url.pathname, st.size, st.mtime?.getTime(), st.ino];
    }));
  } catch {
    sources = null;
  }
  return sources;
}

function fnv1a(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0).toString(16).padStart(8, "0");
}

/**
 * The default profile's filter for `capabilities` on `kernel`: read from `dir` when a matching
 * entry exists, otherwise made by `compile` and stored there (best effort).
 */
export function cachedDefaultFilter(
  dir: string,
  capabilities: readonly string[],
  kernel: string,
  compile: () => Uint8Array<ArrayBuffer>,
): Uint8Array<ArrayBuffer> {
  return cachedFilter(dir, "default", JSON.stringify([capabilities, kernel]), compile);
}

/**
 * A filter whose input is wholly named by `input` (a profile already resolved for its
 * capabilities and kernel, as an OCI spec carries it): cached like the default one, under a
 * `kind` prefix.
 */
export function cachedFilter(
  dir: string,
  kind: string,
  input: string,
  compile: () => Uint8Array<ArrayBuffer>,
): Uint8Array<ArrayBuffer> {
  const source = compilerVersion();
  if (source === null) return compile();
  const keyText = kind === "default"
    ? JSON.stringify([...JSON.parse(input), source])
    : JSON.stringify([input, source]);
  const key = new TextEncoder().encode(keyText);
  const path = `${dir}/${kind}-${fnv1a(keyText)}.bpf`;
  try {
    const data = Deno.readFileSync(path);
    const keyLen = new DataView(data.buffer, data.byteOffset).getUint32(0, true);
    const stored = new TextDecoder().decode(data.subarray(4, 4 + keyLen));
    if (keyLen === key.length && stored === keyText) {
      return data.slice(4 + keyLen);
    }
  } catch { /* no entry yet */ }
  const filter = compile();
  try {
    Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const out = new Uint8Array(4 + key.length + filter.length);
    new DataView(out.buffer).setUint32(0, key.length, true);
    out.set(key, 4);
    out.set(filter, 4 + key.length);
    const temp = `${path}.${Deno.pid}.tmp`;
    Deno.writeFileSync(temp, out, { mode: 0o600 });
    Deno.renameSync(temp, path);
  } catch { /* a read-only or full store: compile next time too */ }
  return filter;
}
