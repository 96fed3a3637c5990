/**
 * Manifest, index and image-config documents of the OCI image spec and Docker's v2 schema 2,
 * with parsing that validates what the rest of tsbox relies on.
 *
 * @module
 */
import { InvalidManifestError, UnsupportedMediaTypeError } from "./errors.ts";
import { validateDigest } from "./reference.ts";

/** Media types this client reads and writes. */
export const MediaType = {
  OciManifest: "application/vnd.oci.image.manifest.v1+json",
  OciIndex: "application/vnd.oci.image.index.v1+json",
  OciConfig: "application/vnd.oci.image.config.v1+json",
  OciLayer: "application/vnd.oci.image.layer.v1.tar",
  OciLayerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  OciLayerZstd: "application/vnd.oci.image.layer.v1.tar+zstd",
  OciLayerNondistributable: "application/vnd.oci.image.layer.nondistributable.v1.tar",
  OciLayerNondistributableGzip: "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
  OciLayerNondistributableZstd: "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
  DockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  DockerManifestList: "application/vnd.docker.distribution.manifest.list.v2+json",
  DockerManifestV1Signed: "application/vnd.docker.distribution.manifest.v1+prettyjws",
  DockerManifestV1: "application/vnd.docker.distribution.manifest.v1+json",
  DockerConfig: "application/vnd.docker.container.image.v1+json",
  DockerLayer: "application/vnd.docker.image.rootfs.diff.tar",
  DockerLayerGzip: "application/vnd.docker.image.rootfs.diff.tar.gzip",
  DockerLayerZstd: "application/vnd.docker.image.rootfs.diff.tar.zstd",
  DockerForeignLayerGzip: "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
} as const;

/** Every manifest media type a registry may answer with that {@link parseManifest} accepts. */
export const MANIFEST_MEDIA_TYPES: readonly string[] = [
  MediaType.OciIndex,
  MediaType.DockerManifestList,
  MediaType.OciManifest,
  MediaType.DockerManifest,
];

/** An OS/architecture pair as it appears in an index entry or image config. */
export interface DescriptorPlatform {
  architecture: string;
  os: string;
  "os.version"?: string;
  "os.features"?: string[];
  variant?: string;
  features?: string[];
}

/** A pointer to content by digest. */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
  platform?: DescriptorPlatform;
  artifactType?: string;
}

/** An OCI image manifest or Docker v2s2 manifest: one config plus ordered layers. */
export interface ImageManifest {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

/** An OCI image index or Docker manifest list: per-platform manifests. */
export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  manifests: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

/** The result of {@link parseManifest}. */
export type ParsedManifest =
  | { kind: "image"; mediaType: string; manifest: ImageManifest }
  | { kind: "index"; mediaType: string; index: ImageIndex };

/** Healthcheck as stored in the image config (durations in nanoseconds). */
export interface HealthConfig {
  Test?: string[];
  Interval?: number;
  Timeout?: number;
  StartPeriod?: number;
  StartInterval?: number;
  Retries?: number;
}

/** The runtime defaults an image carries (the `config` object of the image config). */
export interface ContainerConfig {
  User?: string;
  Env?: string[];
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  WorkingDir?: string;
  ExposedPorts?: Record<string, Record<string, never>>;
  Volumes?: Record<string, Record<string, never>>;
  Labels?: Record<string, string>;
  StopSignal?: string;
  Healthcheck?: HealthConfig;
  Shell?: string[];
  ArgsEscaped?: boolean;
  OnBuild?: string[] | null;
}

/** One entry of the image's build history. */
export interface HistoryEntry {
  created?: string;
  created_by?: string;
  author?: string;
  comment?: string;
  empty_layer?: boolean;
}

/** The OCI image configuration (also Docker's `container.image.v1`). */
export interface ImageConfig {
  architecture: string;
  os: string;
  "os.version"?: string;
  "os.features"?: string[];
  variant?: string;
  created?: string;
  author?: string;
  config?: ContainerConfig;
  rootfs: { type: string; diff_ids: string[] };
  history?: HistoryEntry[];
}

/** How a layer blob is compressed. */
export type Compression = "gzip" | "zstd" | "none";

const LAYER_COMPRESSION: Record<string, Compression> = {
  [MediaType.OciLayer]: "none",
  [MediaType.OciLayerGzip]: "gzip",
  [MediaType.OciLayerZstd]: "zstd",
  [MediaType.DockerLayer]: "none",
  [MediaType.DockerLayerGzip]: "gzip",
  [MediaType.DockerLayerZstd]: "zstd",
};

const FOREIGN_LAYERS = new Set<string>([
  MediaType.DockerForeignLayerGzip,
  MediaType.OciLayerNondistributable,
  MediaType.OciLayerNondistributableGzip,
  MediaType.OciLayerNondistributableZstd,
]);

/**
 * The compression of a layer from its media type.
 *
 * @throws {UnsupportedMediaTypeError} for foreign (non-distributable, e.g. Windows base) layers
 * and anything that is not a tar layer.
 */
export function layerCompression(mediaType: string): Compression {
  const c = LAYER_COMPRESSION[mediaType];
  if (c) return c;
  if (FOREIGN_LAYERS.has(mediaType)) {
    throw new UnsupportedMediaTypeError(
      mediaType,
      `foreign layer ${mediaType} is not supported: it must be fetched from outside the registry ` +
        `(usually a Windows base layer)`,
    );
  }
  throw new UnsupportedMediaTypeError(mediaType, `unknown layer media type ${mediaType}`);
}

const TO_OCI_LAYER: Record<string, string> = {
  [MediaType.DockerLayer]: MediaType.OciLayer,
  [MediaType.DockerLayerGzip]: MediaType.OciLayerGzip,
  [MediaType.DockerLayerZstd]: MediaType.OciLayerZstd,
};

/**
 * The OCI media type of a layer: a Docker layer type names the same bytes, and an OCI manifest
 * that keeps one is refused by skopeo (`--format v2s2`) and podman ("Unknown media type during
 * manifest conversion"). Other types are returned as they are.
 */
export function ociLayerMediaType(mediaType: string): string {
  return TO_OCI_LAYER[mediaType] ?? mediaType;
}

/**
 * Whether every layer of a manifest has a media type of the manifest's own schema: Docker types
 * in a Docker v2 schema 2 manifest, OCI types in an OCI one. Other tools cannot convert a
 * manifest that mixes them.
 */
export function layersMatchSchema(manifest: ImageManifest): boolean {
  const prefix = manifest.mediaType === MediaType.DockerManifest
    ? "application/vnd.docker."
    : "application/vnd.oci.";
  return manifest.layers.every((l) => l.mediaType.startsWith(prefix));
}

/** The layers of a container image with their compression; throws on anything not runnable. */
export function imageLayers(
  manifest: ImageManifest,
): { descriptor: Descriptor; compression: Compression }[] {
  const cfg = manifest.config.mediaType;
  if (cfg !== MediaType.OciConfig && cfg !== MediaType.DockerConfig) {
    throw new UnsupportedMediaTypeError(
      cfg,
      `not a container image: config media type is ${cfg}`,
    );
  }
  return manifest.layers.map((d) => ({
    descriptor: d,
    compression: layerCompression(d.mediaType),
  }));
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function optionalString(o: Json, key: string, where: string): void {
  if (o[key] !== undefined && typeof o[key] !== "string") {
    throw new InvalidManifestError(`${where}.${key} must be a string`);
  }
}

function stringMap(v: unknown, where: string): void {
  if (v === undefined) return;
  if (!isObject(v) || Object.values(v).some((x) => typeof x !== "string")) {
    throw new InvalidManifestError(`${where} must map strings to strings`);
  }
}

function checkDigest(v: unknown, where: string): void {
  if (typeof v !== "string") throw new InvalidManifestError(`${where} must be a string`);
  const reason = validateDigest(v);
  if (reason) throw new InvalidManifestError(`${where}: ${reason} (${v})`);
}

function checkDescriptor(v: unknown, where: string): Descriptor {
  if (!isObject(v)) throw new InvalidManifestError(`${where} must be an object`);
  if (typeof v.mediaType !== "string" || v.mediaType === "") {
    throw new InvalidManifestError(`${where}.mediaType must be a non-empty string`);
  }
  checkDigest(v.digest, `${where}.digest`);
  if (typeof v.size !== "number" || !Number.isSafeInteger(v.size) || v.size < 0) {
    throw new InvalidManifestError(`${where}.size must be a non-negative integer`);
  }
  if (
    v.urls !== undefined && (!Array.isArray(v.urls) || v.urls.some((u) => typeof u !== "string"))
  ) {
    throw new InvalidManifestError(`${where}.urls must be an array of strings`);
  }
  stringMap(v.annotations, `${where}.annotations`);
  if (v.platform !== undefined) {
    const p = v.platform;
    if (!isObject(p) || typeof p.os !== "string" || typeof p.architecture !== "string") {
      throw new InvalidManifestError(`${where}.platform needs string os and architecture`);
    }
    optionalString(p, "variant", `${where}.platform`);
  }
  optionalString(v, "artifactType", where);
  return v as unknown as Descriptor;
}

function kindOf(mediaType: string): "image" | "index" | undefined {
  if (mediaType === MediaType.OciManifest || mediaType === MediaType.DockerManifest) return "image";
  if (mediaType === MediaType.OciIndex || mediaType === MediaType.DockerManifestList) {
    return "index";
  }
  return undefined;
}

/**
 * Parses and validates a manifest or index.
 *
 * @param bytes the document exactly as served (its digest is the manifest's identity).
 * @param mediaType the `Content-Type` the registry sent, if any. A generic type such as
 *   `application/json` is ignored; a manifest type must agree with the document's own
 *   `mediaType` field when both are present.
 * @throws {InvalidManifestError} on malformed documents.
 * @throws {UnsupportedMediaTypeError} on schema 1 or non-manifest types.
 */
export function parseManifest(bytes: Uint8Array, mediaType?: string): ParsedManifest {
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (err) {
    throw new InvalidManifestError(`not valid JSON: ${(err as Error).message}`);
  }
  if (!isObject(doc)) throw new InvalidManifestError("document must be a JSON object");
  const header = mediaType?.split(";")[0].trim();
  const field = typeof doc.mediaType === "string" ? doc.mediaType : undefined;
  if (doc.mediaType !== undefined && field === undefined) {
    throw new InvalidManifestError("mediaType must be a string");
  }
  if (
    header === MediaType.DockerManifestV1Signed || header === MediaType.DockerManifestV1 ||
    doc.schemaVersion === 1
  ) {
    throw new UnsupportedMediaTypeError(
      header ?? MediaType.DockerManifestV1,
      "image manifest schema 1 is not supported (deprecated by Docker); push the image again " +
        "with a current client",
    );
  }
  if (doc.schemaVersion !== 2) throw new InvalidManifestError("schemaVersion must be 2");
  const headerKind = header ? kindOf(header) : undefined;
  if (headerKind && field && field !== header) {
    throw new InvalidManifestError(
      `media type ${field} in the document disagrees with ${header} sent by the registry`,
    );
  }
  let type = field ?? (headerKind ? header : undefined);
  if (type === undefined) {
    // OCI documents may omit mediaType; fall back to their shape like containerd does.
    if (Array.isArray(doc.manifests)) type = MediaType.OciIndex;
    else if (isObject(doc.config) && Array.isArray(doc.layers)) type = MediaType.OciManifest;
    else throw new InvalidManifestError("cannot tell a manifest from an index: no mediaType");
  }
  const kind = kindOf(type);
  if (!kind) throw new UnsupportedMediaTypeError(type, `unsupported manifest media type ${type}`);
  stringMap(doc.annotations, "annotations");
  optionalString(doc, "artifactType", "manifest");
  if (doc.subject !== undefined) checkDescriptor(doc.subject, "subject");
  if (kind === "index") {
    if (!Array.isArray(doc.manifests)) throw new InvalidManifestError("manifests must be an array");
    doc.manifests.forEach((m, i) => checkDescriptor(m, `manifests[${i}]`));
    return { kind, mediaType: type, index: doc as unknown as ImageIndex };
  }
  checkDescriptor(doc.config, "config");
  if (!Array.isArray(doc.layers)) throw new InvalidManifestError("layers must be an array");
  doc.layers.forEach((l, i) => checkDescriptor(l, `layers[${i}]`));
  return { kind, mediaType: type, manifest: doc as unknown as ImageManifest };
}

function optionalStringArray(o: Json, key: string, where: string, nullable = false): void {
  const v = o[key];
  if (v === undefined || (nullable && v === null)) return;
  if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) {
    throw new InvalidManifestError(`${where}.${key} must be an array of strings`);
  }
}

/**
 * Parses and validates an image configuration blob.
 *
 * @throws {InvalidManifestError} when a field tsbox relies on has the wrong shape.
 */
export function parseImageConfig(bytes: Uint8Array): ImageConfig {
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (err) {
    throw new InvalidManifestError(`image config is not valid JSON: ${(err as Error).message}`);
  }
  if (!isObject(doc)) throw new InvalidManifestError("image config must be a JSON object");
  if (typeof doc.architecture !== "string" || typeof doc.os !== "string") {
    throw new InvalidManifestError("image config needs string architecture and os");
  }
  for (const k of ["variant", "created", "author"]) optionalString(doc, k, "config");
  const rootfs = doc.rootfs;
  if (!isObject(rootfs) || rootfs.type !== "layers" || !Array.isArray(rootfs.diff_ids)) {
    throw new InvalidManifestError('image config rootfs must be {type: "layers", diff_ids: [...]}');
  }
  rootfs.diff_ids.forEach((d, i) => checkDigest(d, `rootfs.diff_ids[${i}]`));
  if (doc.config !== undefined && doc.config !== null) {
    const c = doc.config;
    if (!isObject(c)) throw new InvalidManifestError("image config.config must be an object");
    for (const k of ["User", "WorkingDir", "StopSignal"]) optionalString(c, k, "config");
    optionalStringArray(c, "Env", "config");
    optionalStringArray(c, "Entrypoint", "config", true);
    optionalStringArray(c, "Cmd", "config", true);
    optionalStringArray(c, "Shell", "config");
    stringMap(c.Labels ?? undefined, "config.Labels");
    for (const k of ["ExposedPorts", "Volumes"]) {
      if (c[k] !== undefined && c[k] !== null && !isObject(c[k])) {
        throw new InvalidManifestError(`config.${k} must be an object`);
      }
    }
  } else {
    delete doc.config;
  }
  if (doc.history !== undefined && !Array.isArray(doc.history)) {
    throw new InvalidManifestError("image config history must be an array");
  }
  return doc as unknown as ImageConfig;
}
