/**
 * Parsing `run`'s value syntaxes as docker does: sizes (`32m`), `-v`, `--mount`, `--tmpfs`.
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import type { MountRequest } from "./container.ts";

const UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1024,
  m: 1024 ** 2,
  g: 1024 ** 3,
  t: 1024 ** 4,
};

/** `32m`, `1g`, `512k`, `1048576` -> bytes; `-1` stays -1 (unlimited, for --memory-swap). */
export function parseBytes(value: string, flag: string): number {
  if (value === "-1") return -1;
  const m = /^([0-9]+(?:\.[0-9]+)?)\s*([bkmgt]?)b?$/i.exec(value.trim());
  if (!m) throw new UsageError(`invalid value "${value}" for ${flag}: expected a size like 32m`);
  return Math.round(Number(m[1]) * UNITS[m[2].toLowerCase()]);
}

/** A positive decimal (--cpus). */
export function parseCpus(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`invalid value "${value}" for --cpus`);
  return n;
}

/** An integer flag value. */
export function parseInteger(value: string, flag: string): number {
  if (!/^-?[0-9]+$/.test(value)) throw new UsageError(`invalid value "${value}" for ${flag}`);
  return Number(value);
}

function absolute(path: string, what: string): string {
  if (!path.startsWith("/")) throw new UsageError(`${what} must be an absolute path: ${path}`);
  return path;
}

/** `-v /host:/container[:ro|rw]` (bind mounts of host paths; named volumes are not supported). */
export function parseVolume(spec: string): MountRequest {
  const parts = spec.split(":");
  if (parts.length < 2 || parts.length > 3) {
    throw new UsageError(`invalid volume specification: '${spec}'`);
  }
  const [source, target, mode = "rw"] = parts;
  const flags = mode.split(",");
  if (flags.some((f) => !["ro", "rw", "z", "Z"].includes(f))) {
    throw new UsageError(`invalid mode '${mode}' in volume specification '${spec}'`);
  }
  if (!source.startsWith("/")) {
    throw new UsageError(
      `named volumes are not supported: '${source}' (use an absolute host path)`,
    );
  }
  return {
    kind: "bind",
    source: absolute(source, "volume source"),
    target: absolute(target, "volume target"),
    readOnly: flags.includes("ro"),
  };
}

/** `--mount type=bind,source=/a,target=/b[,readonly]` or `type=tmpfs,target=/t[,tmpfs-size=..]`. */
export function parseMountFlag(spec: string): MountRequest {
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
  throw new UsageError(`--mount type=${type} is not supported (bind and tmpfs are)`);
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
