/**
 * Checks that the fixtures are what they claim, with independent tools: skopeo reads what the
 * registry serves, umoci unpacks the layouts, and the unpacked nginx and busybox run under
 * chroot. Needs root (chroot, mount namespace) and the Debian packages of install_deps.sh.
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

Deno.test("fixtures: every ref has the manifest type and layer compression it claims", async () => {
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

Deno.test("fixtures: OCI pushes keep the layout's digests; digests match the registry", async () => {
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

Deno.test("fixtures: the module-level memo and the process-wide session share one registry", async () => {
  const [a, b] = await Promise.all([fixtureRegistry(), fixtureRegistry()]);
  assertEquals(a.registry.host, b.registry.host);
  assertOk(Deno.readTextFileSync(`/proc/${a.registry.pid}/cmdline`).includes("docker-registry"));
});

Deno.test("fixtures: multi-platform index and list select amd64 and arm64 images", async () => {
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

Deno.test("fixtures: busybox layout has its applets and runs sh under chroot", async () => {
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

Deno.test("fixtures: nginx rootfs passes nginx -t under chroot and serves the marker", async () => {
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

Deno.test("fixtures: layered image unpacks with whiteouts, links, owners and xattr", async () => {
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

Deno.test("fixtures: auth registry refuses anonymous access and serves busybox to tsbox", async () => {
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
});

Deno.test("fixtures: startRegistry stop() kills the registry and removes its directory", async () => {
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
