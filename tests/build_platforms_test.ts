/**
 * Multi-platform builds and foreign containers (issue 23), as root, through the host's
 * binfmt_misc handler for aarch64 from Debian's qemu-user-static (tests/install_deps.sh
 * registers it with the F flag). The arm64 image is Debian's busybox-static for arm64
 * (tests/fixtures/arm64.ts), pulled from the fixture registry on 127.0.0.1.
 *
 * - `build --platform linux/amd64,linux/arm64 -t NAME` runs the RUN step once per platform, the
 *   arm64 one under emulation, and records NAME as an image index: `run NAME` starts the host's
 *   variant, `run --platform linux/arm64 NAME` the arm64 one (`uname -m` prints aarch64);
 * - `push NAME` sends one OCI index, which skopeo reads and Debian's podman pulls and runs
 *   (`podman run --platform linux/arm64 ... uname -m`);
 * - `pull --platform` picks the variant of a registry's index;
 * - where binfmt_misc is not mounted (a mount namespace where the test hides it), a foreign RUN
 *   step and `run --platform` fail with one line naming what is missing.
 */
import { join } from "node:path";
import { assertEquals, assertStringIncludes } from "./assert.ts";
import { dirWith, rootTest, tempRoot, tsbox } from "./cli.ts";
import { platformFixtures } from "./fixtures/arm64.ts";
import { fixtureRegistry } from "./fixtures/images.ts";
import { podmanConfText } from "./podman_conf.ts";

const dec = new TextDecoder();

async function run(cmd: string, args: string[], env?: Record<string, string>) {
  const out = await new Deno.Command(cmd, {
    args,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

async function ok(root: string, args: string[]): Promise<string> {
  const r = await tsbox(args, { root });
  assertEquals(r.code, 0, `tsbox ${args.join(" ")}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** Runs `podman ARGS` with a store of its own under `dir` (vfs, cgroupfs, its own conf). */
async function podman(dir: string, args: string[]) {
  const conf = join(dir, "containers.conf");
  await Deno.writeTextFile(conf, `${podmanConfText(dir)}cgroup_manager = "cgroupfs"\n`);
  return await run("podman", [
    "--root",
    join(dir, "root"),
    "--runroot",
    join(dir, "run"),
    "--storage-driver",
    "vfs",
    ...args,
  ], { ...Deno.env.toObject(), CONTAINERS_CONF: conf });
}

const DOCKERFILE = (base: string) =>
  `FROM ${base}\nARG TARGETARCH\nRUN echo "$TARGETARCH $(uname -m)" > /built-on && cat /built-on\n`;

rootTest(
  "build --platform linux/amd64,linux/arm64: an arm64 RUN step, one index run per platform, pushed and run by podman",
  async () => {
    const p = await platformFixtures();
    const fx = await fixtureRegistry();
    const { root, cleanup } = await tempRoot();
    const ctx = await dirWith({ Dockerfile: DOCKERFILE(p.multi) });
    // podman refuses a --runroot longer than 50 characters: keep the dir short.
    const pmDir = await Deno.makeTempDir({ dir: "/tmp", prefix: "t-pmplat-" });
    const name = `${fx.registry.host}/platforms/app:${crypto.randomUUID().slice(0, 8)}`;
    try {
      const built = await tsbox(
        ["build", "--platform", "linux/amd64,linux/arm64", "-t", name, ctx],
        { root },
      );
      assertEquals(built.code, 0, built.stderr + built.stdout);
      // Each platform's RUN step ran and printed where it ran.
      assertStringIncludes(built.stdout, "Building for linux/arm64");
      assertStringIncludes(built.stdout, "arm64 aarch64\n");
      assertStringIncludes(built.stdout, "amd64 x86_64\n");

      // The base's name stays on the host's variant (the arm64 one was pulled without it).
      assertEquals(
        await ok(root, ["image", "inspect", "--format", "{{.Architecture}}", p.multi]),
        "amd64\n",
      );
      // The tag starts the host's variant; --platform picks the other from the index.
      assertEquals(await ok(root, ["run", "--rm", name, "cat", "/built-on"]), "amd64 x86_64\n");
      assertEquals(
        await ok(root, ["run", "--rm", "--platform", "linux/arm64", name, "uname", "-m"]),
        "aarch64\n",
      );
      assertEquals(
        await ok(root, ["run", "--rm", "--platform", "linux/arm64", name, "cat", "/built-on"]),
        "arm64 aarch64\n",
      );
      // The variants are kept by the index: a prune of dangling images leaves them.
      await ok(root, ["image", "prune", "-f"]);
      assertEquals(
        await ok(root, ["run", "--rm", "--platform", "linux/arm64", name, "cat", "/built-on"]),
        "arm64 aarch64\n",
      );

      // Pushed as one OCI index of both platforms.
      await ok(root, ["push", name]);
      const raw = await run("skopeo", [
        "inspect",
        "--raw",
        "--tls-verify=false",
        `docker://${name}`,
      ]);
      assertEquals(raw.code, 0, raw.stderr);
      const index = JSON.parse(raw.stdout);
      assertEquals(index.mediaType, "application/vnd.oci.image.index.v1+json");
      assertEquals(
        index.manifests.map((m: { platform: { architecture: string } }) => m.platform.architecture),
        ["amd64", "arm64"],
      );

      // Debian's podman pulls the index and runs its arm64 image through the same handler.
      const pulled = await podman(pmDir, [
        "pull",
        "-q",
        "--tls-verify=false",
        "--platform",
        "linux/arm64",
        name,
      ]);
      assertEquals(pulled.code, 0, pulled.stderr);
      const ran = await podman(pmDir, [
        "run",
        "--rm",
        "--network",
        "none",
        "--platform",
        "linux/arm64",
        name,
        "sh",
        "-c",
        "uname -m; cat /built-on",
      ]);
      assertEquals(ran.code, 0, ran.stderr);
      assertEquals(ran.stdout, "aarch64\narm64 aarch64\n");

      // A fresh store pulls the index's arm64 variant by --platform.
      const fresh = await tempRoot();
      try {
        await ok(fresh.root, ["pull", "-q", "--platform", "linux/arm64", name]);
        assertEquals(
          await ok(fresh.root, ["run", "--rm", name, "cat", "/built-on"]),
          "arm64 aarch64\n",
        );
      } finally {
        await fresh.cleanup();
      }
    } finally {
      await podman(pmDir, ["system", "reset", "-f"]);
      await Deno.remove(pmDir, { recursive: true }).catch(() => {});
      await Deno.remove(ctx, { recursive: true });
      await cleanup();
    }
  },
);

rootTest(
  "pull --platform picks the variant of an index; run --platform linux/arm64 prints aarch64",
  async () => {
    const p = await platformFixtures();
    const { root, cleanup } = await tempRoot();
    try {
      await ok(root, ["pull", "-q", "--platform", "linux/arm64", p.multi]);
      const config = JSON.parse(await ok(root, ["image", "inspect", p.multi]))[0];
      assertEquals([config.Os, config.Architecture], ["linux", "arm64"]);
      assertEquals(await ok(root, ["run", "--rm", p.multi, "cat", "/arch"]), "arm64\n");
      assertEquals(await ok(root, ["run", "--rm", p.multi, "uname", "-m"]), "aarch64\n");
      await ok(root, ["pull", "-q", "--platform", "linux/amd64", p.multi]);
      assertEquals(await ok(root, ["run", "--rm", p.multi, "uname", "-m"]), "x86_64\n");
      // run --platform pulls the arm64 one again and runs it.
      assertEquals(
        await ok(root, ["run", "--rm", "--platform", "linux/arm64", p.multi, "uname", "-m"]),
        "aarch64\n",
      );
      assertEquals(await ok(root, ["run", "--rm", p.arm64, "uname", "-m"]), "aarch64\n");
    } finally {
      await cleanup();
    }
  },
);

rootTest(
  "without a binfmt_misc handler: one line names what is missing, for a RUN step and run --platform",
  async () => {
    const p = await platformFixtures();
    const { root, cleanup } = await tempRoot();
    const ctx = await dirWith({ Dockerfile: DOCKERFILE(p.arm64) });
    try {
      // The base is pulled first, with the handler visible.
      await ok(root, ["pull", "-q", p.arm64]);
      // binfmt_misc hidden by an empty tmpfs in a mount namespace of the commands' own, as on a
      // host where it is not mounted; the host's mount stays as it is.
      const main = new URL("../main.ts", import.meta.url).pathname;
      const hidden = async (args: string[]) =>
        await run("unshare", [
          "--mount",
          "--propagation",
          "private",
          "sh",
          "-c",
          'mount -t tmpfs tsbox-test /proc/sys/fs/binfmt_misc && exec "$@"',
          "sh",
          Deno.execPath(),
          "run",
          "-A",
          "--quiet",
          main,
          "--root",
          root,
          ...args,
        ], { ...Deno.env.toObject(), NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" });
      const expected =
        "linux/arm64 programs cannot run on this host: binfmt_misc is not mounted at " +
        "/proc/sys/fs/binfmt_misc";
      const b = await hidden(["build", "--platform", "linux/arm64", "-t", "t-noemu", ctx]);
      assertEquals(b.code, 125, b.stdout);
      assertStringIncludes(b.stderr + b.stdout, expected);
      assertStringIncludes(b.stderr + b.stdout, "qemu-user-static");
      const r = await hidden(["run", "--rm", "--platform", "linux/arm64", p.arm64, "uname", "-m"]);
      assertEquals(r.code, 125, r.stdout);
      const lines = r.stderr.trim().split("\n");
      assertEquals(lines.length, 1, r.stderr);
      assertStringIncludes(lines[0], expected);
      assertStringIncludes(lines[0], "qemu-user-static");
      // The same line for a foreign-only image run without --platform, not an exec error.
      const plain = await hidden(["run", "--rm", p.arm64, "uname", "-m"]);
      assertEquals(plain.code, 125, plain.stdout);
      assertEquals(plain.stderr.trim().split("\n").length, 1, plain.stderr);
      assertStringIncludes(plain.stderr, expected);
      assertEquals(await ok(root, ["ps", "-aq"]), "");
    } finally {
      await Deno.remove(ctx, { recursive: true });
      await cleanup();
    }
  },
);
