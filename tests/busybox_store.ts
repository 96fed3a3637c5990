/**
 * A store holding a `busybox` image made by hand from Debian's busybox-static (binary, applet
 * links, passwd, group), recorded through the Store's own API. Used by run tests and benches
 * that must not depend on a registry.
 *
 * @module
 */
import { join } from "node:path";
import { Store } from "../src/store/mod.ts";
import { purgeRootSync } from "./cleanup.ts";

/** sha256 of a string as `sha256:<hex>`. */
export async function sha(text: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return `sha256:${Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/** Lays out busybox (binary, applet links, passwd, group) in `dir`. */
async function busyboxTree(dir: string): Promise<void> {
  for (const d of ["bin", "etc", "tmp", "root", "home/app"]) {
    await Deno.mkdir(join(dir, d), { recursive: true });
  }
  await Deno.copyFile("/bin/busybox", join(dir, "bin/busybox"));
  await Deno.chmod(join(dir, "bin/busybox"), 0o755);
  const list = await new Deno.Command("/bin/busybox", { args: ["--list"] }).output();
  for (const applet of new TextDecoder().decode(list.stdout).split("\n").filter(Boolean)) {
    if (applet !== "busybox") await Deno.symlink("busybox", join(dir, "bin", applet));
  }
  await Deno.writeTextFile(
    join(dir, "etc/passwd"),
    "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n",
  );
  await Deno.writeTextFile(join(dir, "etc/group"), "root:x:0:\napp:x:1000:\nextra:x:2000:app\n");
  await Deno.chmod(join(dir, "tmp"), 0o1777);
}

/** A store at `root` with image `busybox` (one hand-made layer), recorded through Store's API. */
export async function seedStore(root: string): Promise<{ layerDir: string }> {
  const store = await Store.open(root);
  try {
    const diffId = await sha(`busybox-test-layer ${await Deno.readLink("/proc/self/exe")}`);
    const pending = await store.layers.begin(diffId);
    await busyboxTree(pending.dir);
    const shortId = store.shortIdFor(diffId);
    await pending.publish(shortId);
    const configJson = JSON.stringify({
      architecture: "amd64",
      os: "linux",
      config: { Env: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], Cmd: ["sh"] },
      rootfs: { type: "layers", diff_ids: [diffId] },
    });
    store.addImage({
      id: await sha(configJson),
      configJson,
      manifestDigest: await sha(`manifest ${configJson}`),
      manifestMediaType: "application/vnd.oci.image.manifest.v1+json",
      layers: [{
        diffId,
        shortId,
        size: 0,
        blobDigest: diffId,
        mediaType: "application/vnd.oci.image.layer.v1.tar",
        blobSize: 0,
      }],
      tag: "docker.io/library/busybox:latest",
    });
    return { layerDir: store.layers.dir(diffId) };
  } finally {
    store.close();
  }
}

let shared: Promise<string> | undefined;

/**
 * One seeded store root per test process (made on first use, removed when the process ends),
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
