/**
 * `load` of a docker-archive (docker save, skopeo docker-archive:): `manifest.json`'s images,
 * each config checked against its file name and each layer against the config's diff_ids.
 *
 * @module
 */
import type { Store } from "../store/mod.ts";
import { DigestMismatchError } from "../store/digest.ts";
import { storedLayerBlob } from "./images.ts";
import {
  ArchiveError,
  checkNamedDigest,
  diffIdsOf,
  DOCKER_LAYER_TYPE,
  fullTag,
  type ImagePlan,
  type LayerPlan,
  lookup,
  parseJson,
  readJson,
  sniff,
  type Spool,
} from "./load_archive.ts";

/** The images of a docker-archive's `manifest.json`. */
export async function dockerPlans(store: Store, spool: Spool): Promise<ImagePlan[]> {
  const entries = parseJson<unknown>(
    await readJson(lookup(spool, "manifest.json", "file"), "manifest.json"),
    "manifest.json",
  );
  if (!Array.isArray(entries)) throw new ArchiveError("manifest.json is not a list of images");
  const plans: ImagePlan[] = [];
  for (const [i, raw] of entries.entries()) {
    const e = raw as { Config?: unknown; RepoTags?: unknown; Layers?: unknown };
    if (typeof e?.Config !== "string" || !Array.isArray(e.Layers)) {
      throw new ArchiveError(`manifest.json entry ${i} lacks Config or Layers`);
    }
    const configFile = lookup(spool, e.Config, "the config");
    checkNamedDigest(e.Config, configFile, `config ${e.Config}`);
    const configBytes = await readJson(configFile, `config ${e.Config}`);
    const diffIds = diffIdsOf(configBytes, e.Config);
    if (diffIds.length !== e.Layers.length) {
      throw new ArchiveError(
        `image ${i}: the config lists ${diffIds.length} layers but manifest.json has ${e.Layers.length}`,
      );
    }
    const layers: LayerPlan[] = [];
    for (const [j, name] of (e.Layers as unknown[]).entries()) {
      if (typeof name !== "string") throw new ArchiveError(`image ${i}: layer ${j} is not a path`);
      const file = lookup(spool, name, "the layer");
      const compression = await sniff(file);
      const diffId = diffIds[j];
      // An uncompressed layer's file digest is its diffID: tampering shows before any unpacking.
      if (compression === "none" && file.digest !== diffId) {
        throw new DigestMismatchError(`layer ${name}`, diffId, file.digest);
      }
      // A blob the store keeps for the layer (pulled or built before) is reused: nothing new stored.
      const known = await storedLayerBlob(store, diffId);
      layers.push({
        diffId,
        file,
        compression,
        ...(known ?? {
          blobDigest: file.digest,
          mediaType: DOCKER_LAYER_TYPE[compression],
          blobSize: file.size,
        }),
        storeBlob: !known,
      });
    }
    const tags = Array.isArray(e.RepoTags) ? e.RepoTags.map((t) => fullTag(String(t))) : [];
    plans.push({ configBytes, id: configFile.digest, layers, tags });
  }
  return plans;
}
