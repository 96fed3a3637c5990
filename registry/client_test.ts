/**
 * Integration tests against a real registry (Debian's docker-registry on 127.0.0.1) with images
 * pushed by skopeo. Needs the docker-registry, skopeo, htpasswd and tar programs.
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import { assertEquals, assertOk, assertRejects, assertStringIncludes } from "../tests/assert.ts";
import { saveCredentials } from "./auth.ts";
import { RegistryClient } from "./client.ts";
import { DigestMismatchError, NotFoundError, RegistryError, UnauthorizedError } from "./errors.ts";
import { MediaType, parseManifest } from "./manifest.ts";
import { parsePlatform, selectManifest } from "./platform.ts";
import { parseReference } from "./reference.ts";
import { pushTestImage, startRegistry } from "./testing/registry_server.ts";

const sha256 = (b: Uint8Array) => "sha256:" + createHash("sha256").update(b).digest("hex");

async function readAll(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/**
 * Changes one byte of a stored blob in place (same length, so sizes still match). For a
 * manifest the byte is a digit of the last `"size"`, keeping JSON the registry still serves.
 */
async function corruptBlob(storage: string, digest: string, manifest: boolean): Promise<void> {
  const hex = digest.slice(7);
  const path = join(storage, "docker/registry/v2/blobs/sha256", hex.slice(0, 2), hex, "data");
  const bytes = await Deno.readFile(path);
  const i = manifest
    ? new TextDecoder().decode(bytes).lastIndexOf('"size":') + 7
    : Math.floor(bytes.length / 2);
  bytes[i] = bytes[i] === 0x39 ? 0x31 : bytes[i] + 1;
  await Deno.writeFile(path, bytes);
}

Deno.test("RegistryClient pulls from a real registry", async (t) => {
  const reg = await startRegistry();
  try {
    const pushed = await pushTestImage(reg.host, "test/app:v1", {
      platforms: ["linux/amd64", "linux/arm64/v8"],
    });
    const client = new RegistryClient({ credentials: () => undefined });
    const ref = parseReference(`${reg.host}/test/app:v1`);

    await t.step("ping and plain HTTP for 127.0.0.1", async () => {
      assertEquals(client.baseUrl(reg.host), `http://${reg.host}`);
      await client.ping(reg.host);
    });

    await t.step("getManifest by tag returns the index skopeo pushed, byte for byte", async () => {
      const m = await client.getManifest(ref);
      assertEquals(m.digest, pushed.digest);
      assertEquals(m.bytes, pushed.bytes);
      assertEquals(m.mediaType, MediaType.OciIndex);
    });

    await t.step("selecting a platform and fetching its manifest by digest", async () => {
      const index = parseManifest((await client.getManifest(ref)).bytes);
      assertEquals(index.kind, "index");
      if (index.kind !== "index") return;
      const chosen = selectManifest(index.index, parsePlatform("linux/arm64"));
      assertEquals(chosen.digest, pushed.images[1].digest);
      const m = await client.getManifest(ref.withDigest(chosen.digest));
      assertEquals(m.digest, chosen.digest);
      const image = parseManifest(m.bytes, m.mediaType);
      assertEquals(image.kind, "image");
      if (image.kind === "image") {
        assertEquals(image.manifest.layers[0].digest, pushed.layer.digest);
      }
    });

    await t.step("headManifest", async () => {
      assertEquals(await client.headManifest(ref), pushed.digest);
      assertEquals(await client.headManifest(ref.withTag("nope")), undefined);
    });

    await t.step("fetchBlob streams the layer and headBlob reports its size", async () => {
      const blob = await client.fetchBlob(ref, pushed.layer.digest);
      assertEquals(blob.size, pushed.layer.size);
      assertEquals(await readAll(blob.body), pushed.layer.bytes);
      assertEquals(await client.headBlob(ref, pushed.layer.digest), pushed.layer.size);
      assertEquals(await client.headBlob(ref, "sha256:" + "a".repeat(64)), undefined);
    });

    await t.step("unknown manifests, blobs and repositories are typed errors", async () => {
      const err = await assertRejects(
        () => client.getManifest(ref.withTag("missing")),
        NotFoundError,
        `manifest unknown: ${reg.host}/test/app:missing`,
      );
      assertEquals(err.code, "MANIFEST_UNKNOWN");
      const blobErr = await assertRejects(
        () => client.fetchBlob(ref, "sha256:" + "b".repeat(64)),
        NotFoundError,
        "blob unknown",
      );
      assertEquals(blobErr.code, "BLOB_UNKNOWN");
      const nameErr = await assertRejects(
        () => client.listTags(parseReference(`${reg.host}/nothere/app`)),
        NotFoundError,
        "name unknown",
      );
      assertEquals(nameErr.code, "NAME_UNKNOWN");
      assertEquals(nameErr.details[0].message, "repository name not known to registry");
      assertEquals(await client.listTags(ref), ["v1"]);
    });

    await t.step("corrupted content fails digest verification", async () => {
      const bad = await pushTestImage(reg.host, "test/corrupt:v1", { content: "to be damaged\n" });
      const badRef = parseReference(`${reg.host}/test/corrupt:v1`);
      await corruptBlob(reg.storage, bad.digest, true);
      // By digest the reference is the expectation; by tag the registry's announced digest is.
      const e1 = await assertRejects(
        () => client.getManifest(badRef.withDigest(bad.digest)),
        DigestMismatchError,
      );
      assertEquals(e1.expected, bad.digest);
      await assertRejects(() => client.getManifest(badRef), DigestMismatchError);
      await corruptBlob(reg.storage, bad.layer.digest, false);
      const blob = await client.fetchBlob(badRef, bad.layer.digest);
      await assertRejects(() => readAll(blob.body), DigestMismatchError, bad.layer.digest);
    });

    await t.step(
      "uploadBlob (mount and monolithic) and putManifest, read back by skopeo",
      async () => {
        const dest = parseReference(`${reg.host}/pushed/copy:v2`);
        // Cross-repository mount of the layer skopeo pushed to test/app.
        await client.uploadBlob(
          dest,
          pushed.layer.digest,
          pushed.layer.size,
          pushed.layer.bytes,
          ref,
        );
        assertEquals(await client.headBlob(dest, pushed.layer.digest), pushed.layer.size);
        // A new config blob, streamed.
        const config = new TextEncoder().encode(JSON.stringify({
          architecture: "amd64",
          os: "linux",
          rootfs: { type: "layers", diff_ids: [pushed.layer.diffId] },
        }));
        const cd = sha256(config);
        assertEquals(
          await client.uploadBlob(dest, cd, config.length, new Blob([config]).stream()),
          "uploaded",
        );
        assertEquals(await client.headBlob(dest, cd), config.length);
        // A mount from a repository without the blob falls back to a real upload.
        const other = parseReference(`${reg.host}/pushed/other`);
        const nowhere = parseReference(`${reg.host}/nothere/app`);
        assertEquals(
          await client.uploadBlob(other, cd, config.length, config, nowhere),
          "uploaded",
        );
        assertEquals(await client.headBlob(other, cd), config.length);
        const manifest = new TextEncoder().encode(JSON.stringify({
          schemaVersion: 2,
          mediaType: MediaType.OciManifest,
          config: { mediaType: MediaType.OciConfig, digest: cd, size: config.length },
          layers: [{
            mediaType: MediaType.OciLayerGzip,
            digest: pushed.layer.digest,
            size: pushed.layer.size,
          }],
        }));
        const digest = await client.putManifest(dest, MediaType.OciManifest, manifest);
        assertEquals(digest, sha256(manifest));
        const out = await new Deno.Command("skopeo", {
          args: ["inspect", "--raw", "--tls-verify=false", `docker://${dest}`],
          stdout: "piped",
          stderr: "piped",
        }).output();
        assertOk(out.success, new TextDecoder().decode(out.stderr));
        assertEquals(sha256(out.stdout), digest);
        // A manifest naming a blob the repository lacks is refused with the registry's words.
        const broken = new TextEncoder().encode(JSON.stringify({
          schemaVersion: 2,
          mediaType: MediaType.OciManifest,
          config: { mediaType: MediaType.OciConfig, digest: "sha256:" + "c".repeat(64), size: 2 },
          layers: [],
        }));
        const err = await assertRejects(
          () => client.putManifest(dest.withTag("broken"), MediaType.OciManifest, broken),
          RegistryError,
        );
        assertEquals(err.status, 400);
        assertOk(err.details.length > 0);
      },
    );

    await t.step("TLS to a plain-HTTP registry fails with a hint", async () => {
      const tls = new RegistryClient({ secureLoopback: true, retries: 0 });
      assertEquals(tls.baseUrl(reg.host), `https://${reg.host}`);
      const err = await assertRejects(
        () => tls.ping(reg.host),
        RegistryError,
        "TLS handshake with",
      );
      assertEquals(err.code, "TLS");
      assertStringIncludes(err.message, "--insecure-registry");
    });
  } finally {
    await reg.stop();
  }
});

Deno.test("RegistryClient with a Basic-auth (htpasswd) registry", async (t) => {
  const reg = await startRegistry({ htpasswd: { user: "user", password: "pass" } });
  const configDir = await Deno.makeTempDir();
  const oldDockerConfig = Deno.env.get("DOCKER_CONFIG");
  try {
    const pushed = await pushTestImage(reg.host, "priv/app:v1", { creds: "user:pass" });
    const ref = parseReference(`${reg.host}/priv/app:v1`);

    await t.step("no credentials: authentication required, naming the registry", async () => {
      const client = new RegistryClient({ credentials: () => undefined });
      const err = await assertRejects(() => client.getManifest(ref), UnauthorizedError);
      assertStringIncludes(err.message, "authentication required");
      assertStringIncludes(err.message, reg.host);
      assertEquals(err.code, "UNAUTHORIZED");
      assertEquals(err.status, 401);
    });

    await t.step("wrong password: incorrect username or password", async () => {
      const client = new RegistryClient({
        credentials: () => ({ username: "user", password: "wrong" }),
      });
      await assertRejects(
        () => client.getManifest(ref),
        UnauthorizedError,
        `unauthorized: incorrect username or password for ${reg.host}`,
      );
      await assertRejects(() => client.ping(reg.host), UnauthorizedError, "incorrect username");
    });

    await t.step("credentials from the docker config file", async () => {
      Deno.env.set("DOCKER_CONFIG", configDir);
      await saveCredentials(reg.host, "user", "pass");
      const client = new RegistryClient();
      await client.ping(reg.host);
      const m = await client.getManifest(ref);
      assertEquals(m.digest, pushed.digest);
      const blob = await client.fetchBlob(ref, pushed.layer.digest);
      assertEquals(await readAll(blob.body), pushed.layer.bytes);
    });
  } finally {
    if (oldDockerConfig === undefined) Deno.env.delete("DOCKER_CONFIG");
    else Deno.env.set("DOCKER_CONFIG", oldDockerConfig);
    await Deno.remove(configDir, { recursive: true });
    await reg.stop();
  }
});

Deno.test("RegistryClient reports an unreachable registry after bounded retries", async () => {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  const client = new RegistryClient({ retries: 2, backoffMs: 1, credentials: () => undefined });
  const err = await assertRejects(
    () => client.getManifest(parseReference(`127.0.0.1:${port}/a/b:c`)),
    RegistryError,
    "cannot reach the registry",
  );
  assertEquals(err.code, "NETWORK");
});
