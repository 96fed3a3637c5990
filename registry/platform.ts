/**
 * Platforms (`linux/arm64/v8`) and choosing an image index entry for one, with the same
 * normalisation and fallbacks as containerd's platform matcher that docker uses.
 *
 * @module
 */
import type { Descriptor, ImageIndex } from "./manifest.ts";

/** An OS, CPU architecture and optional CPU variant, e.g. linux/arm/v7. */
export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

/** No entry of an index can run on the wanted platform. */
export class NoMatchingPlatformError extends Error {
  constructor(readonly wanted: Platform, readonly available: Platform[]) {
    super(
      `no matching manifest for ${formatPlatform(wanted)} in the manifest list entries` +
        ` (available: ${available.map(formatPlatform).join(", ") || "none"})`,
    );
    this.name = "NoMatchingPlatformError";
  }
}

/** A platform string that cannot be understood. */
export class InvalidPlatformError extends Error {
  constructor(readonly input: string, reason: string) {
    super(`invalid platform ${JSON.stringify(input)}: ${reason}`);
    this.name = "InvalidPlatformError";
  }
}

/** `os/architecture[/variant]`. */
export function formatPlatform(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter((x) => x).join("/");
}

const KNOWN_OS = new Set([
  "aix",
  "android",
  "darwin",
  "dragonfly",
  "freebsd",
  "illumos",
  "ios",
  "js",
  "linux",
  "netbsd",
  "openbsd",
  "plan9",
  "solaris",
  "wasip1",
  "windows",
]);

/**
 * Normalises names the way containerd does: `x86_64` is `amd64`, `aarch64` is `arm64` (whose
 * only variant v8 is dropped), a bare `arm` is `arm/v7`, variants are written `vN`.
 */
export function normalizePlatform(p: Platform): Platform {
  const os = p.os.toLowerCase() === "macos" ? "darwin" : p.os.toLowerCase();
  let arch = p.architecture.toLowerCase();
  let variant = p.variant?.toLowerCase() || undefined;
  switch (arch) {
    case "i386":
      arch = "386";
      variant = undefined;
      break;
    case "x86_64":
    case "x86-64":
    case "amd64":
      arch = "amd64";
      if (variant === "v1") variant = undefined;
      break;
    case "aarch64":
    case "arm64":
      arch = "arm64";
      if (variant === "8" || variant === "v8") variant = undefined;
      break;
    case "armhf":
      arch = "arm";
      variant = "v7";
      break;
    case "armel":
      arch = "arm";
      variant = "v6";
      break;
    case "arm":
      if (variant === undefined) variant = "v7";
      else if (/^[5-8]$/.test(variant)) variant = `v${variant}`;
      break;
  }
  return variant === undefined ? { os, architecture: arch } : { os, architecture: arch, variant };
}

/** The platform this process runs on (OS linux, architecture mapped from Deno's names). */
export function hostPlatform(): Platform {
  const arch: Record<string, string> = { x86_64: "amd64", aarch64: "arm64" };
  return normalizePlatform({
    os: Deno.build.os,
    architecture: arch[Deno.build.arch] ?? Deno.build.arch,
  });
}

/**
 * Parses `os[/arch[/variant]]` or a bare architecture (`arm64`, taking the host's OS) like
 * `docker --platform`.
 *
 * @throws {InvalidPlatformError}
 */
export function parsePlatform(s: string): Platform {
  const parts = s.split("/");
  if (parts.length > 3 || parts.some((x) => !/^[A-Za-z0-9_.-]+$/.test(x))) {
    throw new InvalidPlatformError(s, "expected os/architecture[/variant]");
  }
  const host = hostPlatform();
  if (parts.length === 1) {
    const one = parts[0].toLowerCase();
    if (KNOWN_OS.has(one) || one === "macos") {
      return normalizePlatform({ os: one, architecture: host.architecture, variant: host.variant });
    }
    return normalizePlatform({ os: host.os, architecture: one });
  }
  return normalizePlatform({ os: parts[0], architecture: parts[1], variant: parts[2] });
}

/** The platforms that can run on `p`, best first (e.g. arm64 also runs arm/v7). */
function compatible(p: Platform): Platform[] {
  const n = normalizePlatform(p);
  const out: Platform[] = [n];
  const version = Number(n.variant?.slice(1));
  if (n.architecture === "amd64") {
    for (let v = Number.isFinite(version) ? version - 1 : 0; v >= 2; v--) {
      out.push({ os: n.os, architecture: "amd64", variant: `v${v}` });
    }
    if (n.variant) out.push({ os: n.os, architecture: "amd64" });
    out.push({ os: n.os, architecture: "386" });
  } else if (n.architecture === "arm64") {
    for (let v = 8; v >= 5; v--) out.push({ os: n.os, architecture: "arm", variant: `v${v}` });
  } else if (n.architecture === "arm" && Number.isFinite(version)) {
    for (let v = version - 1; v >= 5; v--) {
      out.push({ os: n.os, architecture: "arm", variant: `v${v}` });
    }
  }
  return out;
}

function same(a: Platform, b: Platform): boolean {
  return a.os === b.os && a.architecture === b.architecture && a.variant === b.variant;
}

/** True for attestation/SBOM entries that docker buildx adds to indexes; they are not images. */
export function isAttestation(d: Descriptor): boolean {
  return d.annotations?.["vnd.docker.reference.type"] === "attestation-manifest" ||
    (d.platform?.os === "unknown" && d.platform.architecture === "unknown");
}

/**
 * Chooses the index entry that best runs on `platform`: an exact match first, then the
 * compatible fallbacks in order; index order breaks ties.
 *
 * @throws {NoMatchingPlatformError} listing the platforms the index offers.
 */
export function selectManifest(index: ImageIndex, platform: Platform = hostPlatform()): Descriptor {
  const candidates = index.manifests.filter((d) => d.platform && !isAttestation(d));
  const normalized = candidates.map((d) => normalizePlatform(d.platform!));
  for (const want of compatible(platform)) {
    const i = normalized.findIndex((p) => same(p, want));
    if (i !== -1) return candidates[i];
  }
  throw new NoMatchingPlatformError(
    normalizePlatform(platform),
    candidates.map((d) => d.platform!).map((p) => ({
      os: p.os,
      architecture: p.architecture,
      ...(p.variant ? { variant: p.variant } : {}),
    })),
  );
}
