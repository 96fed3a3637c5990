/**
 * Parsing `run`'s value syntaxes as docker does: sizes (`32m`), `-v`, `--mount`, `--tmpfs`.
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import type { MountRequest } from "../runtime/container.ts";

const UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1024,
  m: 1024 ** 2,
  g: 1024 ** 3,
  t: 1024 ** 4,
  p: 1024 ** 5,
};

/** docker's /dev/shm size when `--shm-size` is not given: 64 MiB. */
export { DEFAULT_SHM_SIZE } from "../runtime/defaults.ts";

/**
 * `32m`, `1g`, `512KiB`, `1048576` -> bytes, with docker's binary units (go-units RAMInBytes).
 * `-1` (unlimited) is taken only where the flag allows it (`--memory-swap`).
 */
export function parseBytes(value: string, flag: string, allowUnlimited = false): number {
  if (allowUnlimited && value.trim() === "-1") return -1;
  const m = /^([0-9]+(?:\.[0-9]+)?) ?([kmgtp]?)i?b?$/i.exec(value.trim());
  if (!m) throw new UsageError(`invalid value "${value}" for ${flag}: expected a size like 32m`);
  return Math.floor(Number(m[1]) * UNITS[m[2].toLowerCase()]);
}

/** A decimal (--cpus); whether it is in range is for the limit checks (container/limits.ts). */
export function parseCpus(value: string): number {
  const n = /^\s*-?[0-9]*\.?[0-9]+\s*$/.test(value) ? Number(value) : NaN;
  if (!Number.isFinite(n)) {
    throw new UsageError(`invalid value "${value}" for --cpus: expected a number like 1.5`);
  }
  return n;
}

/** An integer flag value. */
export function parseInteger(value: string, flag: string): number {
  if (!/^-?[0-9]+$/.test(value.trim())) {
    throw new UsageError(`invalid value "${value}" for ${flag}: expected an integer`);
  }
  return Number(value);
}

function absolute(path: string, what: string): string {
  if (!path.startsWith("/")) throw new UsageError(`${what} must be an absolute path: ${path}`);
  return path;
}

/**
 * A volume `run` asked for: named (`-v NAME:/path`, `--mount type=volume,source=NAME`) or
 * anonymous (`-v /path`, `--mount type=volume` without a source); the container module turns it
 * into a bind mount of the volume's directory.
 */
export interface VolumeRequest {
  readonly kind: "volume";
  /** The volume's name; absent for an anonymous volume (a random name is drawn at create). */
  readonly name?: string;
  readonly target: string;
  readonly readOnly: boolean;
  /** `nocopy` / `volume-nocopy`: do not seed a new volume with the image's content. */
  readonly noCopy: boolean;
}

/**
 * A bind mount as `run`'s flags state it. docker creates a missing source directory for `-v`
 * (`createSource`) but refuses one for `--mount type=bind`.
 */
export type BindFlag = Extract<MountRequest, { kind: "bind" }> & {
  readonly createSource?: boolean;
};

/** A mount as `run`'s flags state it: a bind, a tmpfs, or a volume. */
export type MountFlag = MountRequest | BindFlag | VolumeRequest;

/** docker's rule for volume names (at least two characters). */
export const VOLUME_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

/**
 * `-v /host:/container[:ro|rw]` (bind mount), `-v NAME:/container[:ro|rw|nocopy]` (named
 * volume) or `-v /container` (anonymous volume).
 */
export function parseVolume(spec: string): MountFlag {
  const parts = spec.split(":");
  if (parts.length > 3 || parts.some((p) => p === "")) {
    throw new UsageError(`invalid volume specification: '${spec}'`);
  }
  if (parts.length === 1) {
    return {
      kind: "volume",
      target: absolute(parts[0], "volume target"),
      readOnly: false,
      noCopy: false,
    };
  }
  const [source, target, mode = "rw"] = parts;
  const flags = mode.split(",");
  if (flags.some((f) => !["ro", "rw", "z", "Z", "nocopy"].includes(f))) {
    throw new UsageError(`invalid mode '${mode}' in volume specification '${spec}'`);
  }
  if (!source.startsWith("/")) {
    if (!VOLUME_NAME.test(source)) {
      throw new UsageError(
        `${source} includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path`,
      );
    }
    return {
      kind: "volume",
      name: source,
      target: absolute(target, "volume target"),
      readOnly: flags.includes("ro"),
      noCopy: flags.includes("nocopy"),
    };
  }
  if (flags.includes("nocopy")) {
    throw new UsageError(`invalid mode 'nocopy' for a bind mount in '${spec}'`);
  }
  return {
    kind: "bind",
    source: absolute(source, "volume source"),
    target: absolute(target, "volume target"),
    readOnly: flags.includes("ro"),
    createSource: true,
  };
}

/**
 * `--mount type=bind,source=/a,target=/b[,readonly]`, `type=tmpfs,target=/t[,tmpfs-size=..]` or
 * `type=volume[,source=NAME],target=/t[,readonly][,volume-nocopy]`.
 */
export function parseMountFlag(spec: string): MountFlag {
  const kv = new Map<string, string>();
  for (const field of spec.split(",")) {
    const [k, ...v] = field.split("=");
    kv.set(k.trim().toLowerCase(), v.join("="));
  }
  const type = kv.get("type") ?? "volume";
  const target = kv.get("target") ?? kv.get("destination") ?? kv.get("dst") ?? kv.get("dest");
  if (!target) throw new UsageError(`--mount ${spec}: target is required`);
  const ro = ["readonly", "ro"].some((k) => kv.has(k) && !["false", "0"].includes(kv.get(k)!));
  if (type === "bind") {
    const source = kv.get("source") ?? kv.get("src");
    if (!source) throw new UsageError(`--mount ${spec}: source is required`);
    return {
      kind: "bind",
      source: absolute(source, "mount source"),
      target: absolute(target, "mount target"),
      readOnly: ro,
    };
  }
  if (type === "tmpfs") {
    const opts = ["mode=755"];
    if (kv.has("tmpfs-size")) opts.push(`size=${parseBytes(kv.get("tmpfs-size")!, "tmpfs-size")}`);
    if (kv.has("tmpfs-mode")) opts[0] = `mode=${kv.get("tmpfs-mode")}`;
    return { kind: "tmpfs", target: absolute(target, "mount target"), options: opts.join(",") };
  }
  if (type === "volume") {
    const name = kv.get("source") ?? kv.get("src");
    if (name !== undefined && name !== "" && !VOLUME_NAME.test(name)) {
      throw new UsageError(`--mount ${spec}: invalid volume name '${name}'`);
    }
    const driver = kv.get("volume-driver");
    if (driver !== undefined && driver !== "local") {
      throw new UsageError(`--mount ${spec}: only the local volume driver is supported`);
    }
    const noCopy = kv.has("volume-nocopy") &&
      !["false", "0"].includes(kv.get("volume-nocopy")!);
    return {
      kind: "volume",
      ...(name ? { name } : {}),
      target: absolute(target, "mount target"),
      readOnly: ro,
      noCopy,
    };
  }
  throw new UsageError(`--mount type=${type} is not supported (bind, volume and tmpfs are)`);
}

/** `--tmpfs /path[:options]`. */
export function parseTmpfs(spec: string): MountRequest {
  const i = spec.indexOf(":");
  const target = i < 0 ? spec : spec.slice(0, i);
  const options = i < 0 ? "" : spec.slice(i + 1);
  return {
    kind: "tmpfs",
    target: absolute(target, "tmpfs target"),
    options: options || "mode=1777",
  };
}
