import { assertEquals, assertStringIncludes, assertThrows } from "../tests/assert.ts";
import { InvalidManifestError, UnsupportedMediaTypeError } from "./errors.ts";
import {
  imageLayers,
  layerCompression,
  layersMatchSchema,
  MediaType,
  ociLayerMediaType,
  parseImageConfig,
  parseManifest,
} from "./manifest.ts";

const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
const dg = (c: string) => "sha256:" + c.repeat(64);

const ociManifest = {
  schemaVersion: 2,
  mediaType: MediaType.OciManifest,
  config: { mediaType: MediaType.OciConfig, digest: dg("a"), size: 10 },
  layers: [
    { mediaType: MediaType.OciLayerGzip, digest: dg("b"), size: 20 },
    { mediaType: MediaType.OciLayerZstd, digest: dg("c"), size: 30 },
  ],
};

Deno.test("parseManifest reads an OCI image manifest", () => {
  const p = parseManifest(enc(ociManifest), MediaType.OciManifest);
  assertEquals(p.kind, "image");
  if (p.kind !== "image") return;
  assertEquals(p.mediaType, MediaType.OciManifest);
  assertEquals(p.manifest.layers.map((l) => l.digest), [dg("b"), dg("c")]);
  assertEquals(imageLayers(p.manifest).map((l) => l.compression), ["gzip", "zstd"]);
});

Deno.test("parseManifest reads a Docker manifest list and infers OCI types without mediaType", () => {
  const list = {
    schemaVersion: 2,
    mediaType: MediaType.DockerManifestList,
    manifests: [{
      mediaType: MediaType.DockerManifest,
      digest: dg("d"),
      size: 5,
      platform: { os: "linux", architecture: "arm", variant: "v7" },
    }],
  };
  const p = parseManifest(enc(list), "application/json");
  assertEquals(p.kind, "index");
  if (p.kind === "index") assertEquals(p.index.manifests[0].platform?.variant, "v7");

  const { mediaType: _, ...bare } = ociManifest;
  assertEquals(parseManifest(enc(bare)).mediaType, MediaType.OciManifest);
  assertEquals(parseManifest(enc({ schemaVersion: 2, manifests: [] })).kind, "index");
  // The header alone decides when the document does not say.
  assertEquals(
    parseManifest(enc(bare), MediaType.DockerManifest).mediaType,
    MediaType.DockerManifest,
  );
});

Deno.test("parseManifest rejects malformed and unsupported documents", () => {
  const cases: [unknown, string | undefined, string][] = [
    ["not json", undefined, "JSON object"],
    [{ ...ociManifest, schemaVersion: 3 }, undefined, "schemaVersion"],
    [{ ...ociManifest, layers: "x" }, undefined, "layers must be an array"],
    [
      { ...ociManifest, config: { ...ociManifest.config, digest: "sha256:abc" } },
      undefined,
      "config.digest",
    ],
    [{ ...ociManifest, config: { ...ociManifest.config, size: -1 } }, undefined, "config.size"],
    [{ ...ociManifest, layers: [{ digest: dg("b"), size: 1 }] }, undefined, "layers[0].mediaType"],
    [ociManifest, MediaType.DockerManifest, "disagrees"],
    [{ schemaVersion: 2 }, undefined, "no mediaType"],
  ];
  for (const [doc, header, msg] of cases) {
    const err = assertThrows(() => parseManifest(enc(doc), header), InvalidManifestError);
    assertStringIncludes(err.message, msg);
  }
  assertThrows(() => parseManifest(new Uint8Array([0x7b, 0xff])), InvalidManifestError, "JSON");
  assertThrows(
    () => parseManifest(enc({ schemaVersion: 1, name: "x", fsLayers: [] })),
    UnsupportedMediaTypeError,
    "schema 1",
  );
  assertThrows(
    () => parseManifest(enc({ ...ociManifest, mediaType: "application/vnd.cncf.helm.config" })),
    UnsupportedMediaTypeError,
  );
});

Deno.test("layerCompression maps layer media types and rejects foreign ones", () => {
  assertEquals(layerCompression(MediaType.DockerLayerGzip), "gzip");
  assertEquals(layerCompression(MediaType.OciLayer), "none");
  assertEquals(layerCompression(MediaType.OciLayerZstd), "zstd");
  assertThrows(
    () => layerCompression(MediaType.DockerForeignLayerGzip),
    UnsupportedMediaTypeError,
    "foreign layer",
  );
  assertThrows(
    () => layerCompression("application/vnd.in-toto+json"),
    UnsupportedMediaTypeError,
    "unknown layer media type",
  );
});

Deno.test("imageLayers refuses artifacts that are not container images", () => {
  const artifact = {
    ...ociManifest,
    config: { ...ociManifest.config, mediaType: "application/vnd.cncf.helm.config.v1+json" },
  };
  assertThrows(
    () => imageLayers(artifact as never),
    UnsupportedMediaTypeError,
    "not a container image",
  );
});

Deno.test("parseImageConfig validates the fields tsbox uses", () => {
  const config = {
    architecture: "amd64",
    os: "linux",
    created: "2024-01-01T00:00:00Z",
    config: {
      Env: ["PATH=/bin"],
      Entrypoint: null,
      Cmd: ["sh"],
      ExposedPorts: { "80/tcp": {} },
      Labels: { a: "b" },
      StopSignal: "SIGQUIT",
    },
    rootfs: { type: "layers", diff_ids: [dg("e")] },
    history: [{ created_by: "x" }],
  };
  const c = parseImageConfig(enc(config));
  assertEquals(c.config?.Cmd, ["sh"]);
  assertEquals(c.rootfs.diff_ids, [dg("e")]);
  assertEquals(parseImageConfig(enc({ ...config, config: null })).config, undefined);
  assertThrows(() => parseImageConfig(enc({ ...config, os: 1 })), InvalidManifestError, "os");
  assertThrows(
    () => parseImageConfig(enc({ ...config, rootfs: { type: "layers", diff_ids: ["x"] } })),
    InvalidManifestError,
    "diff_ids[0]",
  );
  assertThrows(
    () => parseImageConfig(enc({ ...config, config: { Cmd: "sh" } })),
    InvalidManifestError,
    "Cmd",
  );
});

Deno.test("ociLayerMediaType renames Docker layer types; layersMatchSchema refuses a mix", () => {
  assertEquals(ociLayerMediaType(MediaType.DockerLayerGzip), MediaType.OciLayerGzip);
  assertEquals(ociLayerMediaType(MediaType.DockerLayer), MediaType.OciLayer);
  assertEquals(ociLayerMediaType(MediaType.OciLayerZstd), MediaType.OciLayerZstd);
  const layer = (mediaType: string) => ({ mediaType, digest: dg("a"), size: 1 });
  const config = { mediaType: MediaType.OciConfig, digest: dg("c"), size: 1 };
  const oci = (...types: string[]) => ({
    schemaVersion: 2 as const,
    mediaType: MediaType.OciManifest,
    config,
    layers: types.map(layer),
  });
  assertEquals(layersMatchSchema(oci(MediaType.OciLayerGzip, MediaType.OciLayer)), true);
  assertEquals(layersMatchSchema(oci(MediaType.DockerLayerGzip, MediaType.OciLayerGzip)), false);
  assertEquals(
    layersMatchSchema({ ...oci(MediaType.DockerLayerGzip), mediaType: MediaType.DockerManifest }),
    true,
  );
  assertEquals(
    layersMatchSchema({ ...oci(MediaType.OciLayerGzip), mediaType: MediaType.DockerManifest }),
    false,
  );
});
