/**
 * The runroot of a store and its boot marker (see boot.ts): what every command reading
 * containers checks first, kept apart from the reset itself (boot.ts), which loads the code
 * that releases mounts and cgroups, so that a command finding the marker current loads none.
 *
 * @module
 */
import { join } from "../path.ts";

const BOOT_ID = "/proc/sys/kernel/random/boot_id";
/** The marker's name in the runroot: the boot id the rows were last made true for. */
export const MARKER = "boot_id";

/** FNV-1a, 64 bits: names a store's runroot without loading node:crypto on the start path. */
function fnv64(text: string): string {
  let h = 0xcbf29ce484222325n;
  for (const b of new TextEncoder().encode(text)) {
    h ^= BigInt(b);
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return h.toString(16).padStart(16, "0");
}

function absolute(path: string): string {
  try {
    return Deno.realPathSync(path);
  } catch {
    return path.startsWith("/") ? path : join(Deno.cwd(), path);
  }
}

/** The runroot of the store at `root`: TSBOX_RUNROOT, else {@link defaultRunroot}. */
export function runrootOf(root: string): string {
  return Deno.env.get("TSBOX_RUNROOT") || defaultRunroot(root);
}

/** The runroot of the store at `root` when none is given: one per store, on tmpfs. */
export function defaultRunroot(root: string): string {
  const name = fnv64(absolute(root));
  if (Deno.uid() === 0) return `/run/tsbox/${name}`;
  const xdg = Deno.env.get("XDG_RUNTIME_DIR");
  return xdg ? `${xdg}/tsbox/${name}` : `/tmp/tsbox-${Deno.uid()}/${name}`;
}

/** A small file's text, trimmed; undefined when it cannot be read. */
export function readTrimmed(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path).trim();
  } catch {
    return undefined;
  }
}

/** The kernel's id of this boot. */
export function currentBootId(): string {
  return readTrimmed(BOOT_ID) ?? "unknown";
}

/** Whether the rows of the store at `root` were made true for this boot (no reset due). */
export function bootMarkerCurrent(root: string): boolean {
  return readTrimmed(join(runrootOf(root), MARKER)) === currentBootId();
}
