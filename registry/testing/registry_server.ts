/**
 * Test helpers: a real registry (Debian's `docker-registry`, the CNCF distribution server) on
 * 127.0.0.1, and tiny images written as OCI layouts and pushed with skopeo, an independent
 * client. Tests only; nothing in the runtime path uses this.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { startRegistry as startFixtureRegistry } from "../../tests/fixtures/registry.ts";

/** A running registry. */
export interface TestRegistry {
  /** `127.0.0.1:<port>` */
  host: string;
  /** Storage root of the registry (its filesystem driver writes under `docker/registry/v2`). */
  storage: string;
  /** Stops the registry and removes its files. */
  stop(): Promise<void>;
}

async function run(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const dec = new TextDecoder();
  if (!out.success) {
    throw new Error(
      `${cmd} ${args.join(" ")} failed: ${dec.decode(out.stderr)}${dec.decode(out.stdout)}`,
    );
  }
  return dec.decode(out.stdout);
}

/**
 * Starts `docker-registry` on a free 127.0.0.1 port (the project's test fixture launcher).
 * With `htpasswd`, the registry demands Basic auth for that user.
 */
export async function startRegistry(
  options: { htpasswd?: { user: string; password: string } } = {},
): Promise<TestRegistry> {
  const { htpasswd } = options;
  const reg = await startFixtureRegistry({
    auth: htpasswd ? { username: htpasswd.user, password: htpasswd.password } : false,
  });
  return { host: reg.host, storage: join(reg.dir, "data"), stop: () => reg.stop() };
}

const sha256 = (b: Uint8Array) => "sha256:" + createHash("sha256").update(b).digest("hex");
const json = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

/** What {@link pushTestImage} pushed. */
export interface PushedImage {
  /** Digest and bytes of the top-level manifest (the index when several platforms). */
  digest: string;
  bytes: Uint8Array;
  /** Per-platform image manifests, in the order of `platforms`. */
  images: { platform: string; digest: string; configDigest: string }[];
  /** The single gzip layer every platform shares. */
  layer: { digest: string; size: number; bytes: Uint8Array; diffId: string };
}

/**
 * Writes an OCI layout holding a one-file image (one per platform, as an index when more than
 * one) and pushes it with `skopeo copy` to `host/repo:tag`.
 */
export async function pushTestImage(
  host: string,
  repoAndTag: string,
  options: { platforms?: string[]; creds?: string; content?: string } = {},
): Promise<PushedImage> {
  const platforms = options.platforms ?? ["linux/amd64"];
  const dir = await Deno.makeTempDir({ prefix: "tsbox-oci-" });
  try {
    const files = join(dir, "files");
    await Deno.mkdir(files);
    await Deno.writeTextFile(join(files, "hello.txt"), options.content ?? "hello from tsbox\n");
    await run("tar", [
      "-C",
      files,
      "--owner=0",
      "--group=0",
      "--mtime=@0",
      "-cf",
      join(dir, "layer.tar"),
      "hello.txt",
    ]);
    const tar = await Deno.readFile(join(dir, "layer.tar"));
    const gz = new Uint8Array(gzipSync(tar));
    const layout = join(dir, "layout");
    const blobs = join(layout, "blobs", "sha256");
    await Deno.mkdir(blobs, { recursive: true });
    const put = async (bytes: Uint8Array) => {
      const d = sha256(bytes);
      await Deno.writeFile(join(blobs, d.slice(7)), bytes);
      return { digest: d, size: bytes.byteLength };
    };
    const layer = await put(gz);
    const images = [];
    const descriptors = [];
    for (const p of platforms) {
      const [os, architecture, variant] = p.split("/");
      const config = json({
        architecture,
        os,
        ...(variant ? { variant } : {}),
        config: { Cmd: ["/hello.txt"], Env: ["PATH=/bin"] },
        rootfs: { type: "layers", diff_ids: [sha256(tar)] },
        history: [{ created_by: "tsbox test" }],
      });
      const c = await put(config);
      const manifest = json({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        config: { mediaType: "application/vnd.oci.image.config.v1+json", ...c },
        layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", ...layer }],
      });
      const m = await put(manifest);
      images.push({ platform: p, digest: m.digest, configDigest: c.digest });
      descriptors.push({
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        ...m,
        platform: { os, architecture, ...(variant ? { variant } : {}) },
      });
    }
    let top: { digest: string; size: number };
    let topBytes: Uint8Array;
    if (platforms.length === 1) {
      top = descriptors[0];
      topBytes = await Deno.readFile(join(blobs, top.digest.slice(7)));
    } else {
      topBytes = json({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.index.v1+json",
        manifests: descriptors,
      });
      top = await put(topBytes);
    }
    await Deno.writeTextFile(join(layout, "oci-layout"), '{"imageLayoutVersion":"1.0.0"}');
    await Deno.writeFile(
      join(layout, "index.json"),
      json({
        schemaVersion: 2,
        manifests: [{
          mediaType: platforms.length === 1
            ? "application/vnd.oci.image.manifest.v1+json"
            : "application/vnd.oci.image.index.v1+json",
          ...top,
          annotations: { "org.opencontainers.image.ref.name": "img" },
        }],
      }),
    );
    await run("skopeo", [
      "--insecure-policy",
      "copy",
      "--quiet",
      "--all",
      "--preserve-digests",
      "--dest-tls-verify=false",
      ...(options.creds ? ["--dest-creds", options.creds] : []),
      `oci:${layout}:img`,
      `docker://${host}/${repoAndTag}`,
    ]);
    return {
      digest: top.digest,
      bytes: topBytes,
      images,
      layer: { ...layer, bytes: gz, diffId: sha256(tar) },
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
