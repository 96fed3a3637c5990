/**
 * `load` of an OCI image layout (oci-archive:): `index.json`'s manifests, every blob checked
 * against its descriptor's digest and size. An image index inside one (a multi-platform image,
 * as `save --platform a,b --format oci` and `skopeo copy --all` write it) brings every variant
 * the archive holds, recorded as the store's image index under the entry's name, so that save
 * and load round-trip; variants whose manifest the archive lacks (docker saves only the
 * platforms it has) are left out, the host's (or the first present) taking the name.
 *
 * @module
 */
import {
  type Descriptor,
  type ImageIndex,
  type ImageManifest,
  MediaType,
  parseManifest,
} from "../../registry/manifest.ts";
import {
  formatPlatform,
  isAttestation,
  NoMatchingPlatformError,
  normalizePlatform,
  selectManifest,
} from "../../registry/platform.ts";
import { TsboxError } from "../errors.ts";
import type { Store } from "../store/mod.ts";
import { DigestMismatchError } from "../store/digest.ts";
import {
  ArchiveError,
  clean,
  diffIdsOf,
  fullTag,
  type ImagePlan,
  type IndexPlan,
  type LayerPlan,
  lookup,
  readJson,
  sniff,
  type Spool,
  type Spooled,
} from "./load_archive.ts";

/** What an OCI layout holds: its images and the image indexes naming several of them. */
export interface OciPlans {
  readonly images: ImagePlan[];
  readonly indexes: IndexPlan[];
}

/** Whether the archive has the blob `digest` (a file, or a link to one). */
function hasBlob(spool: Spool, digest: string): boolean {
  if (!/^sha256:[a-f0-9]{64}$/.test(digest)) return false;
  try {
    lookup(spool, `blobs/sha256/${digest.slice(7)}`, "blob");
    return true;
  } catch {
    return false;
  }
}

/** The images and image indexes of an OCI layout's `index.json`. */
export async function ociPlans(store: Store, spool: Spool): Promise<OciPlans> {
  const blob = (desc: Descriptor, what: string): Spooled => {
    if (typeof desc?.digest !== "string" || !/^sha256:[a-f0-9]{64}$/.test(desc.digest)) {
      throw new ArchiveError(`${what}: invalid descriptor digest ${JSON.stringify(desc?.digest)}`);
    }
    const file = lookup(spool, clean(`blobs/sha256/${desc.digest.slice(7)}`), what);
    if (file.digest !== desc.digest) throw new DigestMismatchError(what, desc.digest, file.digest);
    if (typeof desc.size === "number" && file.size !== desc.size) {
      throw new DigestMismatchError(what, `${desc.size} bytes`, `${file.size} bytes`);
    }
    return file;
  };
  const parse = (bytes: Uint8Array, desc: Descriptor) => {
    try {
      return parseManifest(bytes, desc.mediaType);
    } catch (err) {
      if (err instanceof TsboxError) throw err;
      throw new ArchiveError(`manifest ${desc.digest}: ${(err as Error).message}`);
    }
  };
  /** Plans by manifest digest: an image named twice (two tags, two indexes) is loaded once. */
  const byManifest = new Map<string, ImagePlan>();
  const imagePlan = async (desc: Descriptor): Promise<ImagePlan> => {
    const known = byManifest.get(desc.digest);
    if (known) return known;
    const bytes = await readJson(blob(desc, `manifest ${desc.digest}`), `manifest ${desc.digest}`);
    const parsed = parse(bytes, desc);
    if (parsed.kind !== "image") throw new ArchiveError(`manifest ${desc.digest}: nested index`);
    const plan = await planImage(store, blob, desc, bytes, parsed.mediaType, parsed.manifest);
    byManifest.set(desc.digest, plan);
    return plan;
  };

  const indexBytes = await readJson(lookup(spool, "index.json", "file"), "index.json");
  let top;
  try {
    top = parseManifest(indexBytes, MediaType.OciIndex);
  } catch (err) {
    throw new ArchiveError(`index.json: ${(err as Error).message}`);
  }
  if (top.kind !== "index") throw new ArchiveError("index.json is not an image index");
  const images: ImagePlan[] = [];
  const indexes: IndexPlan[] = [];
  const add = (plan: ImagePlan) => {
    if (!images.includes(plan)) images.push(plan);
  };
  for (const entry of top.index.manifests) {
    const name = nameOf(entry);
    const bytes = await readJson(
      blob(entry, `manifest ${entry.digest}`),
      `manifest ${entry.digest}`,
    );
    const parsed = parse(bytes, entry);
    if (parsed.kind === "image") {
      const plan = await imagePlan(entry);
      add(plan);
      if (name && !plan.tags.includes(name)) plan.tags.push(name);
      continue;
    }
    const variants = await variantsOf(parsed.index, entry, (d) => hasBlob(spool, d.digest));
    const plans: { platform: string; plan: ImagePlan }[] = [];
    for (const v of variants) {
      const plan = await imagePlan(v);
      add(plan);
      if (!plans.some((p) => p.plan === plan)) {
        plans.push({ platform: formatPlatform(normalizePlatform(v.platform!)), plan });
      }
    }
    const tagged = byManifest.get(hostOf(parsed.index, variants).digest)!;
    if (plans.length === 1 || !name) {
      // One platform is a plain image; an index without a name leaves its variants by id.
      if (name && !tagged.tags.includes(name)) tagged.tags.push(name);
      continue;
    }
    indexes.push({
      tags: [name],
      entries: plans.map((p) => ({ platform: p.platform, imageId: p.plan.id })),
      tagged: tagged.id,
    });
  }
  return { images, indexes };
}

/** The name an index.json entry gives its image, if any. */
function nameOf(entry: Descriptor): string | undefined {
  const annotations = entry.annotations ?? {};
  const name = annotations["io.containerd.image.name"] ??
    (/[/:]/.test(annotations["org.opencontainers.image.ref.name"] ?? "")
      ? annotations["org.opencontainers.image.ref.name"]
      : undefined);
  return name ? fullTag(name) : undefined;
}

/**
 * The platform images of an index the archive holds (not attestations), in index order; a
 * nested index, or an index none of whose images the archive holds, is refused.
 */
function variantsOf(
  index: ImageIndex,
  entry: Descriptor,
  present: (d: Descriptor) => boolean,
): Descriptor[] {
  const images = index.manifests.filter((d) => d.platform && !isAttestation(d));
  for (const d of images) {
    if (d.mediaType === MediaType.OciIndex || d.mediaType === MediaType.DockerManifestList) {
      throw new ArchiveError(`manifest ${entry.digest}: nested index`);
    }
  }
  const held = images.filter(present);
  if (held.length === 0) {
    throw new ArchiveError(
      `image index ${entry.digest}: the archive holds none of its images (${
        images.map((d) => formatPlatform(d.platform!)).join(", ") || "none listed"
      })`,
    );
  }
  return held;
}

/** The variant that runs here among `variants` (the first when none does). */
function hostOf(index: ImageIndex, variants: Descriptor[]): Descriptor {
  try {
    return selectManifest({ ...index, manifests: variants });
  } catch (err) {
    if (err instanceof NoMatchingPlatformError) return variants[0];
    throw err;
  }
}

/** The plan of one image manifest: its config and layers checked against their descriptors. */
async function planImage(
  store: Store,
  blob: (desc: Descriptor, what: string) => Spooled,
  desc: Descriptor,
  bytes: Uint8Array,
  mediaType: string,
  manifest: ImageManifest,
): Promise<ImagePlan> {
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
  return {
    configBytes,
    id: configFile.digest,
    layers,
    manifest: { bytes, digest: desc.digest, mediaType },
    tags: [],
  };
}
