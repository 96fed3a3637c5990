/**
 * `POST /build` with the docker client's classic builder at tsbox's socket (root): a base image
 * from a registry that needs credentials (the client's login reaches the build through
 * `X-Registry-Config`), `--pull`, `--target`, `--label`, a Dockerfile outside the context, `-q`,
 * and BuildKit's API version refused with a message that says what to do.
 */
import { assertEquals, assertMatch, assertStringIncludes } from "./assert.ts";
import { authRegistry } from "./fixtures/images.ts";
import { ok, rawRequest, rootTest, setup } from "./api_helpers.ts";

rootTest("api build: credentials for FROM, --pull, --target, --label, -f outside, -q", async () => {
  const t = await setup();
  const dir = await Deno.makeTempDir({ prefix: "tsbox-api-build2-" });
  try {
    const reg = await authRegistry();
    const { host, username, password } = reg.registry;
    const base = reg.refs.busybox;
    await Deno.mkdir(`${dir}/ctx`);
    await Deno.writeTextFile(`${dir}/ctx/note.txt`, "from the context\n");
    // The Dockerfile lives outside the context: the client sends it inside the tar.
    await Deno.writeTextFile(
      `${dir}/Build.dockerfile`,
      [
        `FROM ${base} AS first`,
        "COPY note.txt /note.txt",
        "FROM first AS second",
        'RUN echo "second: $(cat /note.txt)" > /out',
        'CMD ["cat", "/out"]',
        "FROM first AS third",
        "RUN exit 9",
        "",
      ].join("\n"),
    );
    const args = [
      "build",
      "--pull",
      "--target",
      "second",
      "--label",
      "made.by=api-test",
      "-f",
      `${dir}/Build.dockerfile`,
      "-t",
      "t-api/b2:1",
      `${dir}/ctx`,
    ];
    // Without a login the registry refuses the base image.
    const denied = await t.d(...args);
    assertEquals(denied.code, 1, denied.stdout);
    assertMatch(denied.stdout + denied.stderr, /unauthorized|401|authentication/i);
    const login = await t.withInput(
      `${password}\n`,
      "login",
      "-u",
      username!,
      "--password-stdin",
      host,
    );
    assertEquals(login.code, 0, login.stderr);
    const built = await ok(t.d(...args));
    assertStringIncludes(built, "Successfully tagged t-api/b2:1");
    assertEquals(built.includes("exit 9"), false, built);
    assertEquals(await ok(t.d("run", "--rm", "t-api/b2:1")), "second: from the context\n");
    const label = await ok(
      t.d("image", "inspect", "--format", '{{index .Config.Labels "made.by"}}', "t-api/b2:1"),
    );
    assertEquals(label.trim(), "api-test");
    // --pull again: the base is up to date, the steps come from the cache.
    const again = await ok(t.d(...args));
    assertStringIncludes(again, "Using cache");

    // -q prints the image id alone.
    const quiet = await ok(
      t.d("build", "-q", "--target", "second", "-f", `${dir}/Build.dockerfile`, `${dir}/ctx`),
    );
    assertMatch(quiet.trim(), /^sha256:[0-9a-f]{64}$/);

    const buildkit = await rawRequest(
      t.socket,
      "POST /v1.41/build?version=2 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    );
    assertMatch(buildkit, /^HTTP\/1\.1 400 /);
    assertStringIncludes(buildkit, "DOCKER_BUILDKIT=0");
  } finally {
    await t.cleanup();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
