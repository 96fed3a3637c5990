/**
 * Build secrets (`build --secret id=ID,src=FILE|env=VAR`, used by `RUN --mount=type=secret`).
 * A secret's bytes are read once when the build starts and kept in memory only: a step sees
 * them as a file on a tmpfs of its own (bound read-only into the step's container and
 * unmounted right after) or as an environment variable of that step. They are never written
 * to the store's disk, the layer, the image config or history, the cache key (so changing a
 * secret does not invalidate the cache, as BuildKit), the build output or the database.
 *
 * @module
 */
import { join } from "../path.ts";
import { mount, MS, umount } from "../../ffi/mount.ts";
import { UsageError } from "../errors.ts";

/** Where a secret comes from, as `--secret` names it. */
export interface SecretSource {
  readonly id: string;
  readonly src?: string;
  readonly env?: string;
}

/**
 * Parses one `--secret` value: `id=ID[,src=FILE|source=FILE][,env=VAR][,type=file|env]`. With
 * neither a file nor a variable, the variable named ID is read (as buildx does), else a file
 * of that name.
 */
export function parseSecretFlag(value: string): SecretSource {
  let id: string | undefined;
  let src: string | undefined;
  let env: string | undefined;
  let type: string | undefined;
  for (const part of value.split(",")) {
    const i = part.indexOf("=");
    const k = (i < 0 ? part : part.slice(0, i)).trim().toLowerCase();
    const v = i < 0 ? "" : part.slice(i + 1);
    if (k === "id") id = v;
    else if (k === "src" || k === "source") src = v;
    else if (k === "env") env = v;
    else if (k === "type") type = v;
    else throw new UsageError(`invalid --secret ${value}: unknown key "${k}"`);
  }
  if (type !== undefined && type !== "file" && type !== "env") {
    throw new UsageError(`invalid --secret ${value}: type must be file or env`);
  }
  if (src !== undefined && type === "env") env = src, src = undefined;
  id ||= src ? src.split("/").pop() : env;
  if (!id) throw new UsageError(`invalid --secret ${value}: no id`);
  if (src === undefined && env === undefined) {
    if (type === "file") src = id;
    else env = id;
  }
  return { id, src, env };
}

/** The secrets of one build, by id. */
export type Secrets = ReadonlyMap<string, Uint8Array>;

/** Reads every secret's bytes; a missing file or variable fails the build before it starts. */
export async function loadSecrets(sources: readonly SecretSource[]): Promise<Secrets> {
  const out = new Map<string, Uint8Array>();
  for (const s of sources) {
    if (s.src !== undefined) {
      try {
        out.set(s.id, await Deno.readFile(s.src));
      } catch (err) {
        if (err instanceof Deno.errors.NotFound) {
          throw new UsageError(`secret ${s.id}: file ${s.src} not found`);
        }
        throw err;
      }
    } else {
      const v = Deno.env.get(s.env!);
      if (v === undefined) {
        throw new UsageError(`secret ${s.id}: environment variable ${s.env} is not set`);
      }
      out.set(s.id, new TextEncoder().encode(v));
    }
  }
  return out;
}

/**
 * Puts a secret on a fresh tmpfs at `dir` (a directory the build owns, so a killed build's
 * sweep unmounts it) as the file `dir/secret` with `mode` and owner; returns that file and
 * the unmount, after which the bytes are gone with the tmpfs.
 */
export async function secretOnTmpfs(
  dir: string,
  data: Uint8Array,
  opts: { mode: number; uid: number; gid: number },
): Promise<{ file: string; release: () => Promise<void> }> {
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const size = Math.max(4096, Math.ceil((data.length + 4096) / 4096) * 4096);
  mount("tmpfs", dir, "tmpfs", MS.NOSUID | MS.NODEV | MS.NOEXEC, `mode=0700,size=${size}`);
  const file = join(dir, "secret");
  try {
    await Deno.writeFile(file, data, { mode: 0o600, createNew: true });
    await Deno.chown(file, opts.uid, opts.gid);
    await Deno.chmod(file, opts.mode);
  } catch (err) {
    umount(dir);
    throw err;
  }
  return {
    file,
    release: async () => {
      umount(dir);
      await Deno.remove(dir).catch(() => {});
    },
  };
}
