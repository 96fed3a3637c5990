/**
 * `load` of an OCI image layout (oci-archive:): `index.json`'s manifests (an index inside one
 * resolved for this platform), every blob checked against its descriptor's digest and size.
 *
 * @module
 */
import {
  type Descriptor,
  type ImageManifest,
  MediaType,
  parseManifest,
} from "../../registry/manifest.ts";
import { selectManifest } from "../../registry/platform.ts";
import { TsboxError } from "../errors.ts";
import type { Store } from "../store/mod.ts";
import { DigestMismatchError } from "../store/digest.ts";
import {
  ArchiveError,
  diffIdsOf,
  fullTag,
  type ImagePlan,
  type LayerPlan,
  lookup,
  readJson,
  sniff,
  type Spool,
  type Spooled,
} from "./load_archive.ts";

/** The images of an OCI layout's `index.json`. */
export async function ociPlans(store: Store, spool: Spool): Promise<ImagePlan[]> {
  const blob = (desc: Descriptor, what: string): Spooled => {
    if (typeof desc?.digest !== "string" || !/^sha256:[a-f0-9]{64}$/.test(desc.digest)) {
      throw new ArchiveError(`${what}: invalid descriptor digest ${JSON.stringify(desc?.digest)}`);
    }
    const file = lookup(spool, `blobs/sha256/${desc.digest.slice(7)}`, what);
    if (file.digest !== desc.digest) throw new DigestMismatchError(what, desc.digest, file.digest);
    if (typeof desc.size === "number" && file.size !== desc.size) {
      throw new DigestMismatchError(what, `${desc.size} bytes`, `${file.size} bytes`);
    }
    return file;
  };
  const indexBytes = await readJson(lookup(spool, "index.json", "file"), "index.json");
  let top;
  try {
    top = parseManifest(indexBytes, MediaType.OciIndex);
  } catch (err) {
    throw new ArchiveError(`index.json: ${(err as Error).message}`);
  }
  if (top.kind !== "index") throw new ArchiveError("index.json is not an image index");
  const plans: ImagePlan[] = [];
  for (const entry of top.index.manifests) {
    let desc = entry;
    let file = blob(desc, `manifest ${desc.digest}`);
    let bytes = await readJson(file, `manifest ${desc.digest}`);
    let parsed;
    try {
      parsed = parseManifest(bytes, desc.mediaType);
      if (parsed.kind === "index") {
        desc = selectManifest(parsed.index);
        file = blob(desc, `manifest ${desc.digest}`);
        bytes = await readJson(file, `manifest ${desc.digest}`);
        parsed = parseManifest(bytes, desc.mediaType);
      }
    } catch (err) {
      if (err instanceof TsboxError) throw err;
      throw new ArchiveError(`manifest ${desc.digest}: ${(err as Error).message}`);
    }
    if (parsed.kind !== "image") throw new ArchiveError(`manifest ${desc.digest}: nested index`);
    const manifest: ImageManifest = parsed.manifest;
    const configFile = blob(manifest.config, `config ${manifest.config.digest}`);
    const configBytes = await readJson(configFile, "config");
    const diffIds = diffIdsOf(configBytes, manifest.config.digest);
    if (diffIds.length !== manifest.layers.length) {
      throw new ArchiveError(
        `manifest ${desc.digest}: the config lists ${diffIds.length} layers but the manifest has ${manifest.layers.length}`,
      );
    }
    const layers: LayerPlan[] = [];
    for (const [j, l] of manifest.layers.entries()) {
      const lf = blob(l, `layer ${l.digest}`);
      const compression = await sniff(lf);
      layers.push({
        diffId: diffIds[j],
        file: lf,
        compression,
        blobDigest: l.digest,
        mediaType: l.mediaType,
        blobSize: lf.size,
        storeBlob: !await store.blobs.has(l.digest),
      });
    }
    const annotations = entry.annotations ?? {};
    const name = annotations["io.containerd.image.name"] ??
      (/[/:]/.test(annotations["org.opencontainers.image.ref.name"] ?? "")
        ? annotations["org.opencontainers.image.ref.name"]
        : undefined);
    plans.push({
      configBytes,
      id: configFile.digest,
      layers,
      manifest: { bytes, digest: desc.digest, mediaType: parsed.mediaType },
      tags: name ? [fullTag(name)] : [],
    });
  }
  return plans;
}
