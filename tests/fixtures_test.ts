/**
 * Checks that the fixtures are what they claim, with independent tools: skopeo reads what the
 * registry serves, umoci unpacks the layouts, and the unpacked nginx and busybox run under
 * chroot. Needs root (chroot, mount namespace) and the Debian packages of install_deps.sh.
 *
 * These run no tsbox code, so they are one test of the suite ("fixture self-checks"), each
 * check a step, rather than counting as tsbox tests. The one tsbox test here pulls from the
 * auth registry.
 */
import { assertEquals, assertMatch, assertOk, assertStringIncludes } from "./assert.ts";
import {
  authRegistry,
  type FixtureName,
  fixtureRegistry,
  NGINX_MARKER,
  startRegistry,
} from "./fixtures/images.ts";
import { MediaType } from "./fixtures/oci.ts";
import { tempRoot, tsbox } from "./cli.ts";

const checks: [string, () => Promise<void>][] = [];

/** Registers a check of the fixtures, run as a step of the one "fixture self-checks" test. */
function fixtureCheck(name: string, fn: () => Promise<void>): void {
  checks.push([name, fn]);
}

interface Manifest {
  mediaType: string;
  layers?: { mediaType: string; digest: string }[];
  manifests?: {
    mediaType: string;
    digest: string;
    platform: { architecture: string; os: string; variant?: string };
    annotations?: Record<string, string>;
  }[];
}

async function run(
  cmd: string,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(cmd, { args, stdin: "null", stdout: "piped", stderr: "piped" })
    .output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

async function ok(cmd: string, args: string[]): Promise<string> {
  const r = await run(cmd, args);
  assertEquals(r.code, 0, `${cmd} ${args.join(" ")} failed: ${r.stderr}`);
  return r.stdout;
}

async function inspectRaw(ref: string, extra: string[] = []): Promise<Manifest> {
  return JSON.parse(
    await ok("skopeo", ["inspect", "--raw", "--tls-verify=false", ...extra, `docker://${ref}`]),
  );
}

/** Unpacks a layout image with umoci into a fresh directory; returns the rootfs path. */
async function unpack(image: string): Promise<{ rootfs: string; cleanup: () => Promise<void> }> {
  const tmp = await Deno.makeTempDir({ prefix: "tsbox-fixture-unpack-" });
  await ok("umoci", ["unpack", "--image", image, `${tmp}/bundle`]);
  return {
    rootfs: `${tmp}/bundle/rootfs`,
    cleanup: () => Deno.remove(tmp, { recursive: true }),
  };
}

const MAGIC = { gzip: [0x1f, 0x8b], zstd: [0x28, 0xb5, 0x2f, 0xfd] };

async function blobStartsWith(url: string, repo: string, digest: string, magic: number[]) {
  const res = await fetch(`${url}/v2/${repo}/blobs/${digest}`);
  const head = new Uint8Array(await res.arrayBuffer()).slice(0, magic.length);
  assertEquals(res.status, 200);
  assertEquals([...head], magic, `${repo}@${digest} magic`);
}

fixtureCheck("every ref has the manifest type and layer compression it claims", async () => {
  const fx = await fixtureRegistry();
  const expected: Record<FixtureName, [string, string | undefined, number]> = {
    busybox: [MediaType.dockerManifest, MediaType.dockerLayerGzip, 1],
    busyboxOci: [MediaType.ociManifest, MediaType.ociLayerGzip, 1],
    busyboxZstd: [MediaType.ociManifest, MediaType.ociLayerZstd, 1],
    nginx: [MediaType.ociManifest, MediaType.ociLayerGzip, 2],
    layered: [MediaType.ociManifest, MediaType.ociLayerGzip, 4],
    multiOci: [MediaType.ociIndex, undefined, 3],
    multiDocker: [MediaType.dockerList, undefined, 2],
  };
  for (const [name, [mediaType, layerType, count]] of Object.entries(expected)) {
    const ref = fx.refs[name as FixtureName];
    const m = await inspectRaw(ref);
    assertEquals(m.mediaType, mediaType, ref);
    if (layerType) {
      assertEquals(m.layers?.map((l) => l.mediaType), Array(count).fill(layerType), ref);
      const repo = ref.slice(fx.registry.host.length + 1).split(":")[0];
      const magic = layerType === MediaType.ociLayerZstd ? MAGIC.zstd : MAGIC.gzip;
      for (const l of m.layers!) await blobStartsWith(fx.registry.url, repo, l.digest, magic);
    } else {
      assertEquals(m.manifests?.length, count, ref);
    }
  }
});

fixtureCheck("OCI pushes keep the layout's digests; digests match the registry", async () => {
  const fx = await fixtureRegistry();
  assertEquals(fx.digests.busyboxOci, fx.layouts.busybox.digest);
  assertEquals(fx.digests.layered, fx.layouts.layered.digest);
  assertEquals(fx.digests.nginx, fx.layouts.nginx.digest);
  assertEquals(fx.digests.multiOci, fx.layouts.multi.digest);
  const out = await ok("skopeo", [
    "inspect",
    "--tls-verify=false",
    "--format",
    "{{.Digest}}",
    `docker://${fx.refs.busybox}`,
  ]);
  assertEquals(out.trim(), fx.digests.busybox);
});

fixtureCheck("the module-level memo and the process-wide session share one registry", async () => {
  const [a, b] = await Promise.all([fixtureRegistry(), fixtureRegistry()]);
  assertEquals(a.registry.host, b.registry.host);
  assertOk(Deno.readTextFileSync(`/proc/${a.registry.pid}/cmdline`).includes("docker-registry"));
});

fixtureCheck("multi-platform index and list select amd64 and arm64 images", async () => {
  const fx = await fixtureRegistry();
  const index = await inspectRaw(fx.refs.multiOci);
  const platforms = index.manifests!.map((m) => `${m.platform.os}/${m.platform.architecture}`);
  assertEquals(platforms, ["linux/amd64", "linux/arm64", "unknown/unknown"]);
  const att = index.manifests![2];
  assertEquals(att.annotations?.["vnd.docker.reference.type"], "attestation-manifest");
  assertEquals(att.annotations?.["vnd.docker.reference.digest"], index.manifests![0].digest);
  for (const ref of [fx.refs.multiOci, fx.refs.multiDocker]) {
    for (const arch of ["amd64", "arm64"]) {
      const cfg = JSON.parse(
        await ok("skopeo", [
          "inspect",
          "--config",
          "--tls-verify=false",
          "--override-os",
          "linux",
          "--override-arch",
          arch,
          `docker://${ref}`,
        ]),
      );
      assertEquals(cfg.architecture, arch, ref);
    }
  }
});

fixtureCheck("busybox layout has its applets and runs sh under chroot", async () => {
  const fx = await fixtureRegistry();
  const { rootfs, cleanup } = await unpack(fx.layouts.busybox.image);
  try {
    const applets = (await ok("/bin/busybox", ["--list-full"])).trim().split("\n");
    for (const a of applets.filter((a) => a !== "bin/busybox")) {
      assertEquals(Deno.readLinkSync(`${rootfs}/${a}`), "/bin/busybox", a);
    }
    assertEquals((Deno.statSync(`${rootfs}/tmp`).mode! & 0o7777).toString(8), "1777");
    assertMatch(Deno.readTextFileSync(`${rootfs}/etc/passwd`), /^www-data:x:33:33:/m);
    const out = await ok("chroot", [rootfs, "/bin/sh", "-c", "echo $((6*7)) $(id -u www-data)"]);
    assertEquals(out.trim(), "42 33");
  } finally {
    await cleanup();
  }
});

fixtureCheck("nginx rootfs passes nginx -t under chroot and serves the marker", async () => {
  const fx = await fixtureRegistry();
  const { rootfs, cleanup } = await unpack(fx.layouts.nginx.image);
  try {
    assertStringIncludes(
      Deno.readTextFileSync(`${rootfs}/usr/share/nginx/html/index.html`),
      NGINX_MARKER,
    );
    await Deno.mkdir(`${rootfs}/dev`, { recursive: true });
    await Deno.mkdir(`${rootfs}/proc`, { recursive: true });
    // nginx -t opens its logs (/dev/stderr -> /proc/self/fd/2), so /dev and /proc are bound
    // in a private mount namespace that disappears with the command.
    const r = await run("unshare", [
      "--mount",
      "--propagation",
      "private",
      "sh",
      "-c",
      `mount --rbind /dev "$1/dev" && mount --rbind /proc "$1/proc" && chroot "$1" nginx -t`,
      "sh",
      rootfs,
    ]);
    assertEquals(r.code, 0, r.stderr);
    assertStringIncludes(r.stderr, "test is successful");
  } finally {
    await cleanup();
  }
});

fixtureCheck("layered image unpacks with whiteouts, links, owners and xattr", async () => {
  const fx = await fixtureRegistry();
  const { rootfs, cleanup } = await unpack(fx.layouts.layered.image);
  try {
    const exists = (p: string) => {
      try {
        Deno.lstatSync(`${rootfs}/${p}`);
        return true;
      } catch {
        return false;
      }
    };
    assertEquals(
      ["data/gone.txt", "data/gonedir", "opq/old.txt", "opq/sub", "bin/vi"].filter(exists),
      [],
    );
    assertEquals(Deno.readTextFileSync(`${rootfs}/opq/new.txt`), "after opaque\n");
    assertEquals(Deno.readLinkSync(`${rootfs}/data/link`), "keep.txt");
    assertEquals(
      Deno.statSync(`${rootfs}/data/hard`).ino,
      Deno.statSync(`${rootfs}/data/keep.txt`).ino,
    );
    assertEquals(Deno.statSync(`${rootfs}/data/suid`).mode! & 0o4000, 0o4000);
    const owned = Deno.statSync(`${rootfs}/data/owned`);
    assertEquals([owned.uid, owned.gid], [1000, 1000]);
    const xattr = await ok("python3", [
      "-c",
      "import os,sys; print(os.getxattr(sys.argv[1], 'user.tsbox').decode())",
      `${rootfs}/data/xattr`,
    ]);
    assertEquals(xattr.trim(), "1");
  } finally {
    await cleanup();
  }
});

fixtureCheck(
  "auth registry refuses anonymous access and serves busybox with credentials",
  async () => {
    const { registry, refs } = await authRegistry();
    const anon = await fetch(`${registry.url}/v2/`);
    await anon.body?.cancel();
    assertEquals(anon.status, 401);
    assertMatch(anon.headers.get("www-authenticate") ?? "", /^Basic /);
    const denied = await run("skopeo", [
      "inspect",
      "--raw",
      "--tls-verify=false",
      `docker://${refs.busybox}`,
    ]);
    assertOk(denied.code !== 0, "anonymous skopeo inspect must fail");
    const m = await inspectRaw(refs.busybox, [
      "--creds",
      `${registry.username}:${registry.password}`,
    ]);
    assertEquals(m.mediaType, MediaType.dockerManifest);
  },
);

Deno.test("tsbox pull from the auth registry: refused anonymously, runs with credentials", async () => {
  const { registry, refs } = await authRegistry();
  const { username, password } = registry;
  assertOk(username && password, "the auth registry has credentials");
  const { root, cleanup } = await tempRoot();
  const config = await Deno.makeTempDir({ prefix: "tsbox-docker-config-" });
  try {
    const env = { DOCKER_CONFIG: config };
    const denied = await tsbox(["pull", "-q", refs.busybox], { root, env });
    assertOk(denied.code !== 0, "an anonymous pull must fail");
    assertMatch(denied.stderr, /401|unauthorized|authentication/i);
    const login = await tsbox(
      ["login", "-u", username, "--password-stdin", registry.host],
      { root, env, stdin: `${password}\n` },
    );
    assertEquals(login.code, 0, login.stderr);
    const pulled = await tsbox(["pull", "-q", refs.busybox], { root, env });
    assertEquals(pulled.code, 0, pulled.stderr);
    assertEquals(pulled.stdout.trim(), refs.busybox);
    if (Deno.uid() === 0) {
      const ran = await tsbox(["run", "--rm", refs.busybox, "echo", "pulled"], { root, env });
      assertEquals([ran.code, ran.stdout], [0, "pulled\n"], ran.stderr);
    }
  } finally {
    await Deno.remove(config, { recursive: true });
    await cleanup();
  }
});

fixtureCheck("startRegistry stop() kills the registry and removes its directory", async () => {
  const reg = await startRegistry();
  const res = await fetch(`${reg.url}/v2/`);
  await res.body?.cancel();
  assertEquals(res.status, 200);
  await reg.stop();
  let gone = false;
  try {
    const stat = Deno.readTextFileSync(`/proc/${reg.pid}/stat`);
    gone = stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
  } catch {
    gone = true;
  }
  assertOk(gone, `registry ${reg.pid} still running`);
  let dirGone = false;
  try {
    Deno.statSync(reg.dir);
  } catch {
    dirGone = true;
  }
  assertOk(dirGone, `${reg.dir} still exists`);
});

Deno.test("fixture self-checks (skopeo, umoci, chroot; no tsbox code)", async (t) => {
  for (const [name, fn] of checks) await t.step(name, fn);
});
