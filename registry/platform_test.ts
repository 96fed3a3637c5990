import { assertEquals, assertStringIncludes, assertThrows } from "../tests/assert.ts";
import type { Descriptor, ImageIndex } from "./manifest.ts";
import { MediaType } from "./manifest.ts";
import {
  formatPlatform,
  hostPlatform,
  InvalidPlatformError,
  NoMatchingPlatformError,
  parsePlatform,
  selectManifest,
} from "./platform.ts";

let n = 0;
function entry(platform: string, annotations?: Record<string, string>): Descriptor {
  const [os, architecture, variant] = platform.split("/");
  n++;
  return {
    mediaType: MediaType.OciManifest,
    digest: "sha256:" + n.toString(16).padStart(64, "0"),
    size: 100,
    platform: { os, architecture, ...(variant ? { variant } : {}) },
    ...(annotations ? { annotations } : {}),
  };
}

function index(...manifests: Descriptor[]): ImageIndex {
  return { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests };
}

Deno.test("hostPlatform maps Deno's architecture names", () => {
  const names: Record<string, string> = { x86_64: "amd64", aarch64: "arm64" };
  assertEquals(hostPlatform(), { os: "linux", architecture: names[Deno.build.arch] });
});

Deno.test("parsePlatform normalises like docker --platform", () => {
  assertEquals(parsePlatform("linux/arm64/v8"), { os: "linux", architecture: "arm64" });
  assertEquals(parsePlatform("linux/amd64"), { os: "linux", architecture: "amd64" });
  assertEquals(parsePlatform("linux/x86_64"), { os: "linux", architecture: "amd64" });
  assertEquals(parsePlatform("linux/arm"), { os: "linux", architecture: "arm", variant: "v7" });
  assertEquals(parsePlatform("linux/arm/6"), { os: "linux", architecture: "arm", variant: "v6" });
  assertEquals(parsePlatform("Linux/AArch64"), { os: "linux", architecture: "arm64" });
  assertEquals(parsePlatform("s390x"), { os: "linux", architecture: "s390x" });
  assertEquals(parsePlatform("linux").os, "linux");
  assertThrows(() => parsePlatform("linux/amd64/v2/x"), InvalidPlatformError);
  assertThrows(() => parsePlatform("linux//"), InvalidPlatformError);
  assertEquals(formatPlatform({ os: "linux", architecture: "arm", variant: "v7" }), "linux/arm/v7");
});

Deno.test("selectManifest picks the exact platform and skips attestations", () => {
  const att = entry("unknown/unknown", {
    "vnd.docker.reference.type": "attestation-manifest",
    "vnd.docker.reference.digest": "sha256:" + "1".repeat(64),
  });
  const amd = entry("linux/amd64");
  const arm64 = entry("linux/arm64/v8");
  const idx = index(att, entry("linux/arm/v7"), arm64, amd);
  assertEquals(selectManifest(idx, parsePlatform("linux/amd64")), amd);
  assertEquals(selectManifest(idx, parsePlatform("linux/arm64")), arm64);
  assertEquals(selectManifest(index(att, amd)).digest, amd.digest);
});

Deno.test("selectManifest falls back to compatible variants, best first", () => {
  const v5 = entry("linux/arm/v5");
  const v6 = entry("linux/arm/v6");
  const idx = index(v5, v6, entry("linux/386"));
  assertEquals(selectManifest(idx, parsePlatform("linux/arm/v7")), v6);
  assertEquals(selectManifest(idx, parsePlatform("linux/arm64")), v6);
  assertEquals(selectManifest(idx, parsePlatform("linux/amd64")).platform?.architecture, "386");
  // An arm entry without variant is arm/v7; a newer variant is not used on an older CPU.
  const bare = entry("linux/arm");
  assertEquals(selectManifest(index(bare), parsePlatform("linux/arm/v7")), bare);
  assertThrows(
    () => selectManifest(index(entry("linux/arm/v7")), parsePlatform("linux/arm/v6")),
    NoMatchingPlatformError,
  );
});

Deno.test("selectManifest lists the available platforms when none fits", () => {
  const idx = index(
    entry("linux/arm64/v8"),
    entry("linux/s390x"),
    entry("unknown/unknown", { "vnd.docker.reference.type": "attestation-manifest" }),
  );
  const err = assertThrows(
    () => selectManifest(idx, parsePlatform("linux/amd64")),
    NoMatchingPlatformError,
  );
  assertStringIncludes(err.message, "no matching manifest for linux/amd64");
  assertStringIncludes(err.message, "available: linux/arm64/v8, linux/s390x");
  assertEquals(err.available.length, 2);
});
