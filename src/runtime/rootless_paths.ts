/**
 * Where a rootless tsbox keeps its store, and who the user is: kept apart from rootless.ts (id
 * maps, newuidmap, the FFI it needs) because every command resolves its default root first,
 * and the short ones should not load the runtime's FFI modules for that.
 *
 * @module
 */
import { join } from "../path.ts";

/** Whether this process runs tsbox rootless (its uid is not 0). */
export function isRootless(uid: number = Deno.uid() ?? 0): boolean {
  return uid !== 0;
}

/** The environment variables the defaults depend on. */
export type Env = Readonly<Record<string, string | undefined>>;

/** The environment, as {@link Env}. */
export function env(): Env {
  return Deno.env.toObject();
}

/**
 * The default store root: `/var/lib/tsbox` for root; for anyone else `$XDG_DATA_HOME/tsbox`,
 * or `~/.local/share/tsbox`, as podman keeps its storage under the user's home.
 */
export function defaultRoot(uid: number = Deno.uid() ?? 0, e: Env = env()): string {
  if (!isRootless(uid)) return "/var/lib/tsbox";
  if (e.XDG_DATA_HOME?.startsWith("/")) return join(e.XDG_DATA_HOME, "tsbox");
  const home = e.HOME?.startsWith("/") ? e.HOME : passwdEntry(uid)?.[5];
  // Without any home, a private directory in /tmp (see runtimeDir) still keeps users apart.
  return home ? join(home, ".local", "share", "tsbox") : `/tmp/tsbox-${uid}/root`;
}

/** The /etc/passwd fields of `uid` (name first, home at 5), if it has an entry. */
export function passwdEntry(uid: number): string[] | undefined {
  try {
    return Deno.readTextFileSync("/etc/passwd").split("\n").map((l) => l.split(":"))
      .find((f) => f[2] === String(uid));
  } catch {
    return undefined;
  }
}

/**
 * Makes `dir` (in the shared /tmp) 0700 if it is missing; whether it is this user's own private
 * directory. One someone else planted there must not be used: whoever owns it could rewrite
 * what tsbox keeps in it.
 */
export function ownPrivateDir(dir: string, uid: number): boolean {
  try {
    Deno.mkdirSync(dir, { mode: 0o700 });
  } catch (err) {
    if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
  }
  const info = Deno.lstatSync(dir);
  return info.isDirectory && info.uid === uid && ((info.mode ?? 0) & 0o077) === 0;
}
