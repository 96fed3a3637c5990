/**
 * `RUN --mount=...`: parsing BuildKit's mount specs and turning them into the mounts one RUN
 * step's container gets. What a mount shows is never part of the step's layer: the container
 * sees it on a mount of its own, and the empty mount points the runtime had to create in the
 * rootfs are removed before the layer is made (see {@link MountPlan.targets}).
 *
 * - `type=bind`: a path of the context, another stage or an image; read-only unless `rw`, and
 *   then written on a copy or an overlay that is thrown away after the step.
 * - `type=cache`: a directory kept in the store across builds (src/builder/cache_mounts.ts).
 * - `type=tmpfs`: an empty tmpfs.
 * - `type=secret`: a secret given to `build --secret`, as a file on a tmpfs bound read-only,
 *   and/or an environment variable of the step; never written to disk (src/builder/secrets.ts).
 * - `type=ssh`: a socket relaying to an agent given to `build --ssh` (src/builder/ssh.ts), with
 *   `SSH_AUTH_SOCK` pointing at the first one.
 *
 * @module
 */
import { posix } from "node:path";
import { TsboxError } from "../errors.ts";
import type { MountRequest } from "../runtime/container.ts";
import { resolveInRoot } from "../runtime/rootfs.ts";
import { removeTree } from "../store/layers.ts";
import { acquireCacheMount } from "./cache_mounts.ts";
import { resolveSources, type SourceRoot } from "./context.ts";
import { copyInto } from "./copy.ts";
import { secretOnTmpfs, type Secrets } from "./secrets.ts";
import { type SshAgents, startSshRelay } from "./ssh.ts";

/** A `--mount` value that cannot be used (the builder adds the file and line). */
export class MountSpecError extends TsboxError {
  constructor(detail: string) {
    super(detail);
    this.name = "MountSpecError";
  }
}

/** How concurrent steps share a cache mount. */
export type CacheSharing = "shared" | "private" | "locked";

/** One parsed `--mount`. Paths are as written; relative targets are resolved by the builder. */
export type MountSpec =
  | {
    readonly type: "bind";
    readonly target: string;
    /** Path in the source (default its root). */
    readonly source: string;
    /** A stage or image; the build context when absent. */
    readonly from?: string;
    readonly readWrite: boolean;
  }
  | {
    readonly type: "cache";
    readonly target: string;
    /** The cache's name in the store (default: the target). */
    readonly id: string;
    readonly sharing: CacheSharing;
    /** A stage or image whose `source` path seeds a cache made new. */
    readonly from?: string;
    readonly source: string;
    readonly mode: number;
    readonly uid: number;
    readonly gid: number;
    readonly readOnly: boolean;
  }
  | { readonly type: "tmpfs"; readonly target: string; readonly sizeBytes?: number }
  | {
    readonly type: "secret";
    readonly id: string;
    /** Where the file appears; undefined when only {@link env} carries the secret. */
    readonly target?: string;
    readonly env?: string;
    readonly required: boolean;
    readonly mode: number;
    readonly uid: number;
    readonly gid: number;
  }
  | {
    readonly type: "ssh";
    /** The `--ssh` id (default `default`). */
    readonly id: string;
    /** Where the socket appears; undefined: BuildKit's `/run/buildkit/ssh_agent.N`. */
    readonly target?: string;
    readonly required: boolean;
    readonly mode: number;
    readonly uid: number;
    readonly gid: number;
  };

/** Splits `a=b,c="d,e"` into fields (CSV quoting, as BuildKit reads `--mount`). */
function fields(value: string): [string, string | undefined][] {
  const out: [string, string | undefined][] = [];
  let cur = "";
  let quoted = false;
  const push = () => {
    const i = cur.indexOf("=");
    const key = (i < 0 ? cur : cur.slice(0, i)).trim().toLowerCase();
    if (key !== "") out.push([key, i < 0 ? undefined : cur.slice(i + 1)]);
    cur = "";
  };
  for (const ch of value) {
    if (ch === '"') quoted = !quoted;
    else if (ch === "," && !quoted) push();
    else cur += ch;
  }
  if (quoted) throw new MountSpecError(`--mount=${value}: unterminated quote`);
  push();
  return out;
}

function bool(key: string, v: string | undefined): boolean {
  if (v === undefined || v === "" || v === "true") return true;
  if (v === "false") return false;
  throw new MountSpecError(`--mount: invalid value for ${key}: ${v}`);
}

function uint(key: string, v: string | undefined, radix = 10): number {
  const ok = radix === 8 ? /^0?[0-7]{1,4}$/ : /^\d+$/;
  if (v === undefined || !ok.test(v)) throw new MountSpecError(`--mount: invalid ${key}: ${v}`);
  return parseInt(v, radix);
}

/** `64m`, `1g`, `100000` (bytes; k/m/g binary, as docker's RAMInBytes). */
function bytes(v: string | undefined): number {
  const m = /^(\d+)([kmg]?)i?b?$/i.exec(v ?? "");
  if (!m) throw new MountSpecError(`--mount: invalid size: ${v}`);
  const unit = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2].toLowerCase()]!;
  return Number(m[1]) * unit;
}

const KEYS: Record<string, readonly string[]> = {
  bind: ["target", "source", "from", "rw", "readwrite", "ro", "readonly"],
  cache: ["target", "id", "sharing", "from", "source", "mode", "uid", "gid", "ro", "readonly"],
  tmpfs: ["target", "size"],
  secret: ["target", "id", "env", "required", "mode", "uid", "gid"],
  ssh: ["target", "id", "required", "mode", "uid", "gid"],
};

const ALIASES: Record<string, string> = {
  dst: "target",
  destination: "target",
  src: "source",
};

/** Parses one `--mount` value (variables already expanded). */
export function parseMountFlag(value: string): MountSpec {
  const raw = fields(value).map(([k, v]) => [ALIASES[k] ?? k, v] as const);
  const type = raw.find(([k]) => k === "type")?.[1] ?? "bind";
  const allowed = KEYS[type];
  if (!allowed) throw new MountSpecError(`--mount: unsupported mount type "${type}"`);
  const f = new Map<string, string | undefined>();
  for (const [k, v] of raw) {
    if (k === "type") continue;
    if (!allowed.includes(k)) {
      throw new MountSpecError(`--mount: unknown key "${k}" for type=${type}`);
    }
    f.set(k, v);
  }
  const target = f.get("target");
  const needTarget = () => {
    if (!target) throw new MountSpecError(`--mount=type=${type}: target is required`);
    return target;
  };
  const readOnly = f.has("ro")
    ? bool("ro", f.get("ro"))
    : f.has("readonly")
    ? bool("readonly", f.get("readonly"))
    : undefined;
  switch (type) {
    case "bind": {
      const rw = f.has("rw")
        ? bool("rw", f.get("rw"))
        : f.has("readwrite")
        ? bool("readwrite", f.get("readwrite"))
        : readOnly === undefined
        ? false
        : !readOnly;
      return {
        type,
        target: needTarget(),
        source: f.get("source") || "/",
        from: f.get("from") || undefined,
        readWrite: rw,
      };
    }
    case "cache": {
      const sharing = f.get("sharing") ?? "shared";
      if (sharing !== "shared" && sharing !== "private" && sharing !== "locked") {
        throw new MountSpecError(`--mount: invalid sharing "${sharing}" (shared|private|locked)`);
      }
      const t = needTarget();
      return {
        type,
        target: t,
        id: f.get("id") || t,
        sharing,
        from: f.get("from") || undefined,
        source: f.get("source") || "/",
        mode: f.has("mode") ? uint("mode", f.get("mode"), 8) : 0o755,
        uid: f.has("uid") ? uint("uid", f.get("uid")) : 0,
        gid: f.has("gid") ? uint("gid", f.get("gid")) : 0,
        readOnly: readOnly ?? false,
      };
    }
    case "tmpfs":
      return {
        type,
        target: needTarget(),
        sizeBytes: f.has("size") ? bytes(f.get("size")) : undefined,
      };
    case "ssh":
      return {
        type,
        id: f.get("id") || "default",
        target: target || undefined,
        required: f.has("required") ? bool("required", f.get("required")) : false,
        mode: f.has("mode") ? uint("mode", f.get("mode"), 8) : 0o600,
        uid: f.has("uid") ? uint("uid", f.get("uid")) : 0,
        gid: f.has("gid") ? uint("gid", f.get("gid")) : 0,
      };
    default: {
      const env = f.get("env") || undefined;
      const id = f.get("id") || (target ? posix.basename(target) : undefined);
      if (!id) throw new MountSpecError(`--mount=type=secret: id or target is required`);
      if (env !== undefined && !/^[A-Za-z_][A-Za-z0-9_]*$/.test(env)) {
        throw new MountSpecError(`--mount=type=secret: invalid env name "${env}"`);
      }
      return {
        type: "secret",
        id,
        // BuildKit: a file at /run/secrets/ID unless only an env variable was asked for.
        target: target || (env ? undefined : `/run/secrets/${id}`),
        env,
        required: f.has("required") ? bool("required", f.get("required")) : false,
        mode: f.has("mode") ? uint("mode", f.get("mode"), 8) : 0o400,
        uid: f.has("uid") ? uint("uid", f.get("uid")) : 0,
        gid: f.has("gid") ? uint("gid", f.get("gid")) : 0,
      };
    }
  }
}

/** What {@link prepareMounts} takes its mounts' contents from. */
export interface MountSources {
  /** The store root (cache mounts live under it). */
  readonly storeRoot: string;
  /** The build context, with its .dockerignore. */
  readonly context: SourceRoot;
  readonly secrets: Secrets;
  /** Agent sockets by `--ssh` id. */
  readonly ssh?: SshAgents;
  /** A fresh directory path under the build's own directory (not yet created). */
  fresh(kind: string): string;
  /**
   * Mounts the filesystem of the stage or image `from` (an overlay whose writes go to a
   * directory thrown away at release).
   */
  view(from: string): Promise<{ dir: string; release: () => Promise<void> }>;
}

/** The mounts of one RUN step, ready for the runtime. */
export interface MountPlan {
  readonly mounts: MountRequest[];
  /** `VAR=value` entries for secrets given as environment variables. */
  readonly env: string[];
  /** Absolute container paths of the mount points (their stubs stay out of the layer). */
  readonly targets: string[];
  /** Unmounts and drops what the step held (cache locks, secret tmpfs, stage views). */
  release(): Promise<void>;
}

/**
 * Prepares `specs` for one RUN whose working directory is `workdir` (relative targets are
 * resolved against it). On failure whatever was already taken is released.
 */
export async function prepareMounts(
  specs: readonly MountSpec[],
  workdir: string,
  src: MountSources,
): Promise<MountPlan> {
  const releases: (() => Promise<void>)[] = [];
  const release = async () => {
    for (const r of releases.splice(0).reverse()) await r();
  };
  const mounts: MountRequest[] = [];
  const env: string[] = [];
  const targets: string[] = [];
  const abs = (p: string) => posix.resolve(workdir || "/", p);
  let sshCount = 0;
  let sshSock = false;
  try {
    for (const m of specs) {
      switch (m.type) {
        case "ssh": {
          const agent = src.ssh?.get(m.id);
          if (agent === undefined) {
            if (m.required) {
              throw new MountSpecError(
                `ssh agent ${m.id}: not provided (give --ssh ${m.id}[=SOCKET])`,
              );
            }
            break; // BuildKit: an optional agent that was not given is not mounted
          }
          const target = abs(m.target ?? `/run/buildkit/ssh_agent.${sshCount}`);
          sshCount++;
          const relay = await startSshRelay(agent, src.fresh("ssh"), m);
          releases.push(() => relay.close());
          mounts.push({ kind: "bind", source: relay.socket, target, readOnly: false });
          targets.push(target);
          if (!sshSock) {
            sshSock = true;
            env.push(`SSH_AUTH_SOCK=${target}`);
          }
          break;
        }
        case "tmpfs": {
          const size = m.sizeBytes === undefined ? "" : `,size=${m.sizeBytes}`;
          mounts.push({ kind: "tmpfs", target: abs(m.target), options: `mode=1777${size}` });
          targets.push(abs(m.target));
          break;
        }
        case "secret": {
          const data = src.secrets.get(m.id);
          if (data === undefined) {
            if (m.required) {
              throw new MountSpecError(
                `secret ${m.id}: not provided (give --secret id=${m.id},...)`,
              );
            }
            break; // BuildKit: an optional secret that was not given is not mounted
          }
          if (m.env) env.push(`${m.env}=${new TextDecoder().decode(data)}`);
          if (m.target === undefined) break;
          const held = await secretOnTmpfs(src.fresh("secret"), data, m);
          releases.push(held.release);
          mounts.push({ kind: "bind", source: held.file, target: abs(m.target), readOnly: true });
          targets.push(abs(m.target));
          break;
        }
        case "cache": {
          const from = m.from;
          const seed = from === undefined ? undefined : async (dir: string) => {
            const view = await src.view(from);
            try {
              await copyTree(view.dir, m.source, dir);
            } finally {
              await view.release();
            }
          };
          const held = await acquireCacheMount(src.storeRoot, { ...m, seed }, src.fresh("cache"));
          releases.push(held.release);
          mounts.push({
            kind: "bind",
            source: held.dir,
            target: abs(m.target),
            readOnly: m.readOnly,
          });
          targets.push(abs(m.target));
          break;
        }
        case "bind": {
          let source: string;
          if (m.from !== undefined) {
            // An overlay of its own: with rw the writes land in its throwaway upper dir.
            const view = await src.view(m.from);
            releases.push(view.release);
            source = resolveInRoot(view.dir, m.source);
          } else if (!m.readWrite && !src.context.ignored) {
            source = resolveInRoot(src.context.dir, m.source);
          } else {
            // A copy: what .dockerignore excludes stays out, and rw writes are thrown away.
            const dir = src.fresh("bind");
            releases.push(() => removeTree(dir));
            source = await copyTree(src.context.dir, m.source, dir, src.context);
          }
          try {
            await Deno.stat(source);
          } catch {
            throw new MountSpecError(
              `--mount=type=bind: source ${m.source} not found in ${m.from ?? "the context"}`,
            );
          }
          mounts.push({ kind: "bind", source, target: abs(m.target), readOnly: !m.readWrite });
          targets.push(abs(m.target));
          break;
        }
      }
    }
  } catch (err) {
    await release();
    throw err;
  }
  return { mounts, env, targets, release };
}

/**
 * Copies `source` (a path inside `root`) into the new directory `dest`: a directory's
 * contents into `dest` itself, a file to `dest/<name>`. Returns what the mount should show.
 */
async function copyTree(
  root: string,
  source: string,
  dest: string,
  filter?: SourceRoot,
): Promise<string> {
  const from: SourceRoot = filter ?? { dir: root };
  const sources = await resolveSources(from, [source]);
  await Deno.mkdir(dest, { recursive: true, mode: 0o755 });
  const single = sources.length === 1 && !sources[0].isDir;
  await copyInto(dest, from, sources, single ? `/${sources[0].name}` : "/", {
    owner: undefined,
  });
  return single ? posix.join(dest, sources[0].name) : dest;
}
