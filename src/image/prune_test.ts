import { assertEquals } from "../../tests/assert.ts";
import type { HistoryEntry, ImageConfig } from "../../registry/manifest.ts";
import type { ImageRecord, LayerRecord } from "../store/mod.ts";
import { imagesToPrune, isParentOf } from "./prune.ts";

/** An image named `id` with layers named by letters and history steps named by words. */
function image(id: string, layers: string, steps?: string[], tags: string[] = []): ImageRecord {
  const records: LayerRecord[] = [...layers].map((l) => ({
    diffId: `sha256:${l.repeat(64)}`,
    shortId: l,
    dir: `/x/${l}`,
    size: 1,
    blobDigest: `sha256:${l.repeat(64)}`,
    mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
    blobSize: 1,
  }));
  const history: HistoryEntry[] | undefined = steps?.map((s) => ({ created_by: s }));
  const config: ImageConfig = {
    architecture: "amd64",
    os: "linux",
    rootfs: { type: "layers", diff_ids: records.map((l) => l.diffId) },
    ...(history ? { history } : {}),
  };
  return {
    id,
    tags,
    digests: [],
    config,
    configJson: JSON.stringify(config),
    manifestDigest: `sha256:${"f".repeat(64)}`,
    manifestMediaType: "application/vnd.oci.image.manifest.v1+json",
    layers: records,
    size: records.length,
  };
}

Deno.test("isParentOf: layers and history both start the child's", () => {
  const base = image("base", "a", ["ADD a"]);
  const child = image("child", "ab", ["ADD a", "RUN b"]);
  const labelled = image("labelled", "a", ["ADD a", "LABEL x=y"]); // metadata only
  const other = image("other", "ab", ["ADD a2", "RUN b"]); // same layers, another history
  assertEquals(isParentOf(base, child), true);
  assertEquals(isParentOf(base, labelled), true);
  assertEquals(isParentOf(labelled, base), false);
  assertEquals(isParentOf(child, base), false);
  assertEquals(isParentOf(base, other), false);
  assertEquals(isParentOf(base, base), false);
  // Without histories only more layers on top make a child.
  assertEquals(isParentOf(image("p", "a"), image("c", "ab")), true);
  assertEquals(isParentOf(image("p", "a"), image("c", "a")), false);
  assertEquals(isParentOf(image("p", "b"), image("c", "ab")), false);
  assertEquals(isParentOf(image("p", ""), image("c", "ab")), false);
});

Deno.test("imagesToPrune: dangling images only, and never one a container or a child needs", () => {
  const tagged = image("tagged", "a", ["ADD a"], ["docker.io/library/base:1"]);
  const dangling = image("dangling", "ax", ["ADD a", "RUN x"]);
  const used = image("used", "ay", ["ADD a", "RUN y"]);
  const danglingParent = image("dparent", "az", ["ADD a", "RUN z"]);
  const child = image("child", "azw", ["ADD a", "RUN z", "RUN w"], ["docker.io/library/app:1"]);
  const all = [tagged, dangling, used, danglingParent, child];
  const inUse = (id: string) => id === "used";
  assertEquals(imagesToPrune(all, { inUse }).map((i) => i.id), ["dangling"]);
  // -a: every image no container uses, except those a staying image is built on.
  assertEquals(
    imagesToPrune(all, { all: true, inUse }).map((i) => i.id),
    ["dangling", "dparent", "child"],
  );
  const inUseChild = (id: string) => id === "child";
  assertEquals(
    imagesToPrune(all, { all: true, inUse: inUseChild }).map((i) => i.id),
    ["dangling", "used"],
  );
});

Deno.test("imagesToPrune: an image index's variants stay or go together", () => {
  const amd = image("amd", "a", ["ADD a"], ["docker.io/library/app:1"]);
  const arm = image("arm", "b", ["ADD b"]);
  const lone = image("lone", "c", ["ADD c"]);
  const all = [arm, amd, lone];
  const groupOf = (id: string) => id === "lone" ? [] : ["amd", "arm"];
  // Without -a a variant is not dangling, though it has no tag.
  assertEquals(imagesToPrune(all, { inUse: () => false }, groupOf).map((i) => i.id), ["lone"]);
  // -a: a container on one variant keeps the other.
  for (const used of ["amd", "arm"]) {
    assertEquals(
      imagesToPrune(all, { all: true, inUse: (id) => id === used }, groupOf).map((i) => i.id),
      ["lone"],
    );
  }
  // -a, nothing used: all go, the index's named image first (it takes the index along).
  assertEquals(
    imagesToPrune(all, { all: true, inUse: () => false }, groupOf).map((i) => i.id),
    ["amd", "arm", "lone"],
  );
});
