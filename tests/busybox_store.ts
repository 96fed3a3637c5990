/**
 * The `busybox` image of the runtime tests (run, exec, tty, attach, security) and of the benches,
 * taken the way a user's image comes: built as an OCI layout by the fixture writer from Debian's
 * busybox-static, pushed by skopeo to the fixture registry on 127.0.0.1, and pulled into each
 * store by tsbox's own pull, so those tests run an image with real digests, blobs and links.
 *
 * One layer: the binary with its applet links in /bin, an /etc/passwd and /etc/group with a user
 * `app` (1000, in group `extra` 2000), /home/app, /root and a sticky /tmp.
 *
 * @module
 */
import { pullImage } from "../src/image/pull.ts";
import { Store } from "../src/store/mod.ts";
import { purgeRootSync } from "./cleanup.ts";
import { fetchManifest, fixtureRegistry, pushLayout } from "./fixtures/images.ts";
import { buildLayout, type LayerDef } from "./fixtures/oci.ts";

/** sha256 of a string as `sha256:<hex>`. */
export async function sha(text: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return `sha256:${Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/** The name the runtime tests run it by. */
const TAG = "docker.io/library/busybox:latest";

/** busybox (binary, applet links), passwd, group and the dirs the runtime tests use. */
async function busyboxLayer(): Promise<LayerDef> {
  const list = await new Deno.Command("/bin/busybox", { args: ["--list"] }).output();
  if (!list.success) throw new Error("/bin/busybox --list failed: is busybox-static installed?");
  const applets = new TextDecoder().decode(list.stdout).split("\n")
    .filter((a) => a && a !== "busybox").sort();
  return {
    createdBy: "tsbox runtime tests: busybox-static, applet links, users root and app",
    entries: [
      { path: "bin", type: "dir" },
      { path: "bin/busybox", type: "file", src: "/bin/busybox", mode: 0o755 },
      ...applets.map((a) => ({ path: `bin/${a}`, type: "symlink" as const, target: "busybox" })),
      { path: "etc", type: "dir" },
      {
        path: "etc/passwd",
        type: "file",
        text: "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n",
      },
      { path: "etc/group", type: "file", text: "root:x:0:\napp:x:1000:\nextra:x:2000:app\n" },
      { path: "tmp", type: "dir", mode: 0o1777 },
      { path: "root", type: "dir" },
      { path: "home", type: "dir" },
      { path: "home/app", type: "dir" },
    ],
  };
}

let pushed: Promise<string> | undefined;

/**
 * The image's reference in the fixture registry, pushed on first use. Every test module of the
 * process shares the registry; a module that finds the tag there already skips the push (two
 * modules pushing the same bytes at once is harmless).
 */
function runtimeImage(): Promise<string> {
  pushed ??= (async () => {
    const fx = await fixtureRegistry();
    const layout = await buildLayout("runtime-busybox", {
      latest: {
        architecture: "amd64",
        os: "linux",
        layers: [await busyboxLayer()],
        config: { Env: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], Cmd: ["sh"] },
      },
    });
    const ref = `${fx.registry.host}/runtime/busybox:latest`;
    const present = await fetchManifest(fx.registry, "runtime/busybox", "latest")
      .then((m) => m.digest === layout.tags.latest.digest, () => false);
    if (!present) await pushLayout({ image: `${layout.dir}:latest` }, ref, { format: "oci" });
    return ref;
  })();
  pushed.catch(() => pushed = undefined);
  return pushed;
}

/** The runtime busybox's reference in the fixture registry (pushed on first use). */
export function busyboxRegistryRef(): Promise<string> {
  return runtimeImage();
}

/**
 * Makes `root` a store holding `busybox` (its only name: tests count images and tags), pulled
 * by tsbox from the fixture registry. Returns the directory of its only layer.
 */
export async function seedStore(root: string): Promise<{ layerDir: string }> {
  const ref = await runtimeImage();
  const store = await Store.open(root);
  try {
    const { image } = await pullImage(store, ref);
    store.tag(image.id, TAG);
    store.untag(ref);
    return { layerDir: image.layers[0].dir };
  } finally {
    store.close();
  }
}

let shared: Promise<string> | undefined;

/**
 * One seeded store root per test module (made on first use, removed when the process ends),
 * for tests that only need busybox.
 */
export function sharedBusyboxRoot(): Promise<string> {
  shared ??= (async () => {
    const root = await Deno.makeTempDir({ prefix: "tsbox-test-" });
    await seedStore(root);
    globalThis.addEventListener("unload", () => purgeRootSync(root));
    return root;
  })();
  return shared;
}
