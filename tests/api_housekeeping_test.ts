/**
 * The Engine API's housekeeping with the docker client at tsbox's socket (root): `system df`
 * (summary and -v), `container prune` with a label filter, `image prune` of a dangling image (a
 * tag moved by a rebuild) and `-a` of unused ones, and `system prune`, which calls every prune
 * endpoint (containers, networks, images, build cache).
 */
import { assertEquals, assertMatch, assertStringIncludes } from "./assert.ts";
import { ok, rootTest, setup } from "./api_helpers.ts";

rootTest("api housekeeping: system df, container/image/system prune with filters", async () => {
  const t = await setup();
  const dir = await Deno.makeTempDir({ prefix: "tsbox-api-hk-" });
  try {
    const ref = t.fx.refs.busybox;
    await ok(t.d("pull", "-q", ref));
    // Two stopped containers, one labelled; a running one.
    await ok(t.d("run", "--name", "t-api-hk1", "--label", "keep=no", ref, "true"));
    await ok(t.d("run", "--name", "t-api-hk2", ref, "sh", "-c", "echo x > /written"));
    await ok(t.d("run", "-d", "--name", "t-api-hk3", ref, "sleep", "600"));
    await ok(t.d("volume", "create", "t-api-hkvol"));

    const df = await ok(
      t.d("system", "df", "--format", "{{.Type}} {{.TotalCount}} {{.Active}}"),
    );
    assertEquals(df.trim().split("\n"), [
      "Images 1 1",
      "Containers 3 1",
      "Local Volumes 1 0",
      "Build Cache 0 0",
    ]);
    const verbose = await ok(t.d("system", "df", "-v"));
    assertStringIncludes(verbose, "t-api-hk2");
    assertStringIncludes(verbose, "t-api-hkvol");
    assertStringIncludes(verbose, ref.split(":").slice(0, -1).join(":"));

    // The label filter picks one of the two stopped containers.
    const pruned = await ok(t.d("container", "prune", "-f", "--filter", "label=keep=no"));
    assertStringIncludes(pruned, "Deleted Containers:");
    const left = await ok(t.d("ps", "-a", "--format", "{{.Names}}"));
    assertEquals(left.trim().split("\n").sort(), ["t-api-hk2", "t-api-hk3"]);

    // A rebuild moves the tag: the first image is dangling and `image prune` removes it.
    const build = async (text: string) => {
      await Deno.writeTextFile(`${dir}/Dockerfile`, `FROM ${ref}\nRUN echo ${text} > /x\n`);
      return (await ok(t.d("build", "-q", "-t", "t-api/hk:1", dir))).trim();
    };
    const first = await build("one");
    const second = await build("two");
    assertMatch(first, /^sha256:[0-9a-f]{64}$/);
    const dangling = await ok(t.d("images", "-q", "--no-trunc", "--filter", "dangling=true"));
    assertEquals(dangling.trim(), first);
    const imagePrune = await ok(t.d("image", "prune", "-f"));
    assertStringIncludes(imagePrune, `deleted: ${first}`);
    assertMatch(imagePrune, /Total reclaimed space: \S+/);
    assertEquals((await ok(t.d("images", "-q", "--filter", "dangling=true"))).trim(), "");
    // -a with a label nothing has removes nothing; without it every unused image goes.
    const none = await ok(t.d("image", "prune", "-a", "-f", "--filter", "label=nothing"));
    assertEquals(none.includes("deleted:"), false, none);
    const everything = await ok(t.d("image", "prune", "-a", "-f"));
    assertStringIncludes(everything, `deleted: ${second}`);
    // busybox stays: t-api-hk2 and t-api-hk3 use it.
    const images = await ok(t.d("images", "--format", "{{.Repository}}:{{.Tag}}"));
    assertEquals(images.trim(), ref);

    // system prune: the stopped container and the unused network go; the running one stays.
    await ok(t.d("network", "create", "t-api-hknet"));
    const system = await ok(t.d("system", "prune", "-f"));
    assertStringIncludes(system, "Deleted Networks:");
    assertStringIncludes(system, "t-api-hknet");
    assertEquals((await ok(t.d("ps", "-a", "--format", "{{.Names}}"))).trim(), "t-api-hk3");
    await ok(t.d("rm", "-f", "t-api-hk3"));
    await ok(t.d("volume", "rm", "t-api-hkvol"));
  } finally {
    await t.cleanup();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
