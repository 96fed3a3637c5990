/**
 * A redis image for the Engine API tests (compose, testcontainers), made as the fixtures make
 * nginx: Debian's redis-server and redis-cli with exactly the libraries ldd lists, busybox for a
 * shell, built into an OCI layout (tests/fixtures/oci.ts) and pushed with skopeo into the
 * shared fixture registry as `redis:7`. Built once per test process.
 *
 * @module
 */
import { buildLayout, type TarEntry } from "./fixtures/oci.ts";
import { FixturePushError, fixtureRegistry, pushLayout } from "./fixtures/images.ts";

const PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

async function output(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    throw new FixturePushError(
      `${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr).trim()}`,
    );
  }
  return new TextDecoder().decode(out.stdout);
}

/** The shared libraries `ldd` lists for each binary, the loader included, once each. */
async function libraries(binaries: string[]): Promise<string[]> {
  const libs = new Set<string>();
  for (const b of binaries) {
    for (const line of (await output("ldd", [b])).split("\n")) {
      const m = line.match(/=>\s*(\/\S+)/) ?? line.match(/^\s*(\/\S+)\s+\(/);
      if (m) libs.add(m[1]);
    }
  }
  return [...libs].sort();
}

async function redisEntries(): Promise<TarEntry[]> {
  for (const tool of ["/usr/bin/redis-server", "/usr/bin/redis-cli", "/bin/busybox"]) {
    try {
      await Deno.stat(tool);
    } catch {
      throw new FixturePushError(`${tool} is missing: run tests/install_deps.sh`);
    }
  }
  const applets = (await output("/bin/busybox", ["--list-full"])).split("\n").map((l) => l.trim())
    .filter((l) => l && l !== "bin/busybox" && !l.startsWith("usr/bin/redis"));
  const libs = await libraries(["/usr/bin/redis-server", "/usr/bin/redis-cli"]);
  return [
    { path: "bin/busybox", type: "file", src: "/bin/busybox", mode: 0o755 },
    ...applets.map((a) => ({ path: a, type: "symlink" as const, target: "/bin/busybox" })),
    // redis-server is a link to redis-check-rdb in Debian: the binary picks its part by name.
    {
      path: "usr/bin/redis-server",
      type: "file",
      src: await Deno.realPath("/usr/bin/redis-server"),
      mode: 0o755,
    },
    { path: "usr/bin/redis-cli", type: "file", src: "/usr/bin/redis-cli", mode: 0o755 },
    ...await Promise.all(libs.map(async (l) => ({
      path: l.slice(1),
      type: "file" as const,
      src: await Deno.realPath(l),
      mode: 0o755,
    }))),
    { path: "etc/passwd", type: "file", text: "root:x:0:0:root:/root:/bin/sh\n" },
    { path: "etc/group", type: "file", text: "root:x:0:\n" },
    { path: "tmp", type: "dir", mode: 0o1777 },
    { path: "data", type: "dir" },
  ];
}

let pushed: Promise<string> | undefined;

/** `HOST/redis:7` in the shared fixture registry (pushed on first use). */
export function redisImage(): Promise<string> {
  pushed ??= (async () => {
    const fx = await fixtureRegistry();
    const layout = await buildLayout("api-redis", {
      "7": {
        architecture: "amd64",
        os: "linux",
        layers: [{
          createdBy: "tsbox api test: Debian's redis-server and redis-cli, busybox",
          entries: await redisEntries(),
        }],
        config: {
          Env: [PATH_ENV],
          // No config file: protected mode would refuse every client but loopback's.
          Cmd: ["redis-server", "--protected-mode", "no", "--save", "", "--dir", "/data"],
          WorkingDir: "/data",
          ExposedPorts: { "6379/tcp": {} },
        },
      },
    });
    const ref = `${fx.registry.host}/redis:7`;
    await pushLayout({ image: `${layout.dir}:7` }, ref, { format: "v2s2" });
    return ref;
  })();
  pushed.catch(() => pushed = undefined);
  return pushed;
}
