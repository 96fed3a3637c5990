/**
 * The client against a hostile registry (in this process, on 127.0.0.1): manifests are capped at
 * 4 MiB while they are read, blobs are cut at their descriptor's size whatever the registry
 * announces or sends.
 */
import { assertEquals, assertOk, assertRejects, assertStringIncludes } from "../tests/assert.ts";
import { RegistryClient } from "./client.ts";
import { RegistryError } from "./errors.ts";
import { parseReference } from "./reference.ts";
import { imageRepo, smallLayer, startHostileRegistry } from "./testing/hostile_registry.ts";

const MiB = 1024 * 1024;

function client(): RegistryClient {
  return new RegistryClient({ credentials: () => undefined, retries: 0 });
}

async function readAll(stream: ReadableStream<Uint8Array>): Promise<number> {
  let n = 0;
  for await (const chunk of stream) n += chunk.byteLength;
  return n;
}

Deno.test("an endless manifest is refused at 4 MiB, naming the limit and the reference", async () => {
  const reg = startHostileRegistry({ "evil/manifest": { manifest: "endless" } });
  try {
    const ref = parseReference(`${reg.host}/evil/manifest:latest`);
    const err = await assertRejects(() => client().getManifest(ref), RegistryError);
    assertEquals(err.code, "MANIFEST_INVALID");
    assertStringIncludes(err.message, "4 MiB limit");
    assertStringIncludes(err.message, `${reg.host}/evil/manifest:latest`);
    // The client stopped reading: the server sent little more than the cap, not gigabytes.
    assertOk(reg.sentBytes() < 16 * MiB, `server sent ${reg.sentBytes()} bytes`);
  } finally {
    await reg.stop();
  }
});

Deno.test("blobs are cut at the descriptor's size", async (t) => {
  const layer = await smallLayer();
  const good = imageRepo([layer]);
  const endless = imageRepo([layer], {
    layerBlob: { endless: true },
    configBlob: { endless: true },
  });
  const longer = imageRepo([layer], { layerBlob: { extra: 3 * MiB } });
  const shorter = imageRepo([layer], { layerBlob: { truncate: 10 } });
  const reg = startHostileRegistry({
    "ok/img": good.repo,
    "evil/endless": endless.repo,
    "evil/longer": longer.repo,
    "evil/shorter": shorter.repo,
  });
  const c = client();
  const ref = (repo: string) => parseReference(`${reg.host}/${repo}:latest`);
  try {
    await t.step("an honest blob of the declared size passes", async () => {
      const { size, body } = await c.fetchBlob(
        ref("ok/img"),
        good.layers[0].digest,
        good.layers[0].size,
      );
      assertEquals(size, good.layers[0].size);
      assertEquals(await readAll(body), good.layers[0].size);
      const config = await c.fetchSmallBlob(ref("ok/img"), good.config, "config");
      assertEquals(config, good.config.bytes);
    });

    await t.step("an endless blob errors right after its declared size", async () => {
      const { digest, size } = endless.layers[0];
      const { body } = await c.fetchBlob(ref("evil/endless"), digest, size);
      let passed = 0;
      const err = await assertRejects(async () => {
        for await (const chunk of body) passed += chunk.byteLength;
      }, RegistryError);
      assertEquals(err.code, "SIZE_INVALID");
      assertStringIncludes(
        err.message,
        `blob ${digest}: the registry sent more than the ${size} bytes its descriptor declares`,
      );
      assertOk(passed <= size, `${passed} bytes passed on, declared ${size}`);
      assertOk(reg.sentBytes() < 16 * MiB, `server sent ${reg.sentBytes()} bytes`);
    });

    await t.step("an endless config errors, however small its descriptor", async () => {
      const err = await assertRejects(
        () => c.fetchSmallBlob(ref("evil/endless"), endless.config, "config"),
        RegistryError,
      );
      assertStringIncludes(err.message, `the ${endless.config.size} bytes its descriptor declares`);
    });

    await t.step(
      "a Content-Length beyond the descriptor fails before the body is read",
      async () => {
        const { digest, size } = longer.layers[0];
        const err = await assertRejects(
          () => c.fetchBlob(ref("evil/longer"), digest, size),
          RegistryError,
        );
        assertStringIncludes(
          err.message,
          `announces ${size + 3 * MiB} bytes, more than the ${size} bytes its descriptor declares`,
        );
      },
    );

    await t.step("a blob shorter than its descriptor fails at its end", async () => {
      const { digest, size } = shorter.layers[0];
      const { body } = await c.fetchBlob(ref("evil/shorter"), digest, size);
      const err = await assertRejects(() => readAll(body), RegistryError);
      assertStringIncludes(err.message, `sent 10 bytes, its descriptor declares ${size}`);
    });

    await t.step("a config declared over 4 MiB is refused without a request", async () => {
      const before = reg.requests.length;
      const err = await assertRejects(
        () =>
          c.fetchSmallBlob(ref("ok/img"), { digest: good.config.digest, size: 5 * MiB }, "config"),
        RegistryError,
      );
      assertStringIncludes(err.message, "4 MiB limit for configs");
      assertEquals(reg.requests.length, before);
    });
  } finally {
    await reg.stop();
  }
});

Deno.test("an endless tag list is refused, not buffered", async () => {
  const reg = startHostileRegistry({
    "evil/tags": { manifest: new Uint8Array(), tags: "endless" },
    "ok/tags": { manifest: new Uint8Array(), tags: ["v1", "v2"] },
  });
  try {
    const c = client();
    assertEquals(await c.listTags(parseReference(`${reg.host}/ok/tags`)), ["v1", "v2"]);
    const err = await assertRejects(
      () => c.listTags(parseReference(`${reg.host}/evil/tags`)),
      RegistryError,
    );
    assertStringIncludes(
      err.message,
      `tag list page of ${reg.host}/evil/tags is larger than 16 MiB`,
    );
    assertOk(reg.sentBytes() < 64 * MiB, `server sent ${reg.sentBytes()} bytes`);
  } finally {
    await reg.stop();
  }
});
