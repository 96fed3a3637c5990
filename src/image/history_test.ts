import { assertEquals } from "../../tests/assert.ts";
import type { ImageConfig } from "../../registry/manifest.ts";
import type { ImageRecord, LayerRecord } from "../store/mod.ts";
import { imageHistory } from "./history.ts";

function image(config: Partial<ImageConfig>, sizes: number[]): ImageRecord {
  const layers: LayerRecord[] = sizes.map((size, i) => ({
    diffId: `sha256:${String(i).repeat(64)}`,
    shortId: `s${i}`,
    dir: `/x/${i}`,
    size,
    blobDigest: `sha256:${String(i).repeat(64)}`,
    mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
    blobSize: size,
  }));
  const full: ImageConfig = {
    architecture: "amd64",
    os: "linux",
    rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffId) },
    ...config,
  };
  return {
    id: `sha256:${"a".repeat(64)}`,
    tags: [],
    digests: [],
    config: full,
    configJson: JSON.stringify(full),
    manifestDigest: `sha256:${"b".repeat(64)}`,
    manifestMediaType: "application/vnd.oci.image.manifest.v1+json",
    layers,
    size: sizes.reduce((a, b) => a + b, 0),
    created: config.created,
  };
}

Deno.test("history matches non-empty steps to layers in order, newest first", () => {
  const rows = imageHistory(image({
    history: [
      { created: "2024-01-01T00:00:00Z", created_by: "ADD rootfs /" },
      { created: "2024-01-02T00:00:00Z", created_by: "ENV A=1", empty_layer: true },
      { created: "2024-01-03T00:00:00Z", created_by: "RUN make", comment: "buildkit" },
      { created: "2024-01-04T00:00:00Z", created_by: 'CMD ["sh"]', empty_layer: true },
    ],
  }, [1000, 250]));
  assertEquals(rows.map((r) => [r.id.slice(0, 9), r.createdBy, r.size, r.comment]), [
    ["sha256:aa", 'CMD ["sh"]', 0, ""],
    ["<missing>", "RUN make", 250, "buildkit"],
    ["<missing>", "ENV A=1", 0, ""],
    ["<missing>", "ADD rootfs /", 1000, ""],
  ]);
});

Deno.test("layers without history get rows of their own", () => {
  const rows = imageHistory(image({ created: "2024-05-05T00:00:00Z" }, [10, 20]));
  assertEquals(rows.map((r) => [r.id.slice(0, 9), r.size, r.created]), [
    ["sha256:aa", 20, "2024-05-05T00:00:00Z"],
    ["<missing>", 10, "2024-05-05T00:00:00Z"],
  ]);
});
