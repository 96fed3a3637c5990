/**
 * `tsbox run` of the real fixture images (root): an image missing from the store is pulled from
 * the fixture registry on 127.0.0.1 first, and nginx serves its page on the host network with its
 * worker running as www-data.
 */
import { join } from "node:path";
import { fixtureRegistry, NGINX_MARKER } from "./fixtures/images.ts";
import { assertEquals, assertMatch, assertOk, assertStringIncludes } from "./assert.ts";
import { tempRoot, tsbox } from "./cli.ts";

const isRoot = Deno.uid() === 0;

function rootTest(name: string, fn: () => Promise<void>) {
  Deno.test({ name, ignore: !isRoot, sanitizeResources: false, sanitizeOps: false, fn });
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 20_000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const task of Deno.readDirSync(`/proc/${pid}/task`)) {
    const text = Deno.readTextFileSync(`/proc/${pid}/task/${task.name}/children`).trim();
    if (text) out.push(...text.split(/\s+/).map(Number));
  }
  return out;
}

function statusField(pid: number, field: string): string {
  const line = Deno.readTextFileSync(`/proc/${pid}/status`).split("\n")
    .find((l) => l.startsWith(`${field}:`));
  return line?.slice(field.length + 1).trim() ?? "";
}

rootTest("run of an image not in the store pulls it first, then runs it", async () => {
  const fx = await fixtureRegistry();
  const { root, cleanup } = await tempRoot();
  try {
    const first = await tsbox(["run", "--rm", fx.refs.busybox, "cat", "/etc/group"], { root });
    assertEquals(first.code, 0, first.stderr);
    const lines = first.stderr.trim().split("\n");
    assertEquals(lines[0], `Unable to find image '${fx.refs.busybox}' locally`);
    assertEquals(lines[1], `latest: Pulling from ${fx.registry.host}/busybox`);
    const digest = lines.find((l) => l.startsWith("Digest: "));
    assertMatch(digest ?? "", /^Digest: sha256:[0-9a-f]{64}$/);
    assertEquals(lines.at(-1), `Status: Downloaded newer image for ${fx.refs.busybox}`);
    // The container ran the pulled image: its /etc/group is the fixture's.
    assertStringIncludes(first.stdout, "www-data:x:33:");

    const images = await tsbox(["images", "--format", "json"], { root });
    assertEquals(images.code, 0, images.stderr);
    assertStringIncludes(images.stdout, `${fx.refs.busybox.split(":latest")[0]}`);
    // Now the image is local: no pull.
    const second = await tsbox(["run", "--rm", fx.refs.busybox, "true"], { root });
    assertEquals(second.code, 0, second.stderr);
    assertEquals(second.stderr, "");
  } finally {
    await cleanup();
  }
});

rootTest("run of an image the registry does not have fails after the lookup", async () => {
  const fx = await fixtureRegistry();
  const { root, cleanup } = await tempRoot();
  try {
    const ref = `${fx.registry.host}/no-such-image:latest`;
    const r = await tsbox(["run", "--rm", ref, "true"], { root });
    assertEquals(r.code, 125);
    assertStringIncludes(r.stderr, `Unable to find image '${ref}' locally`);
    const ps = await tsbox(["ps", "-a", "-q"], { root });
    assertEquals(ps.stdout.trim(), "", "no container is left behind");
  } finally {
    await cleanup();
  }
});

rootTest("nginx on the host network serves its page; its worker runs as www-data", async () => {
  const fx = await fixtureRegistry();
  const { root, cleanup } = await tempRoot();
  const confDir = await Deno.makeTempDir({ prefix: "tsbox-nginx-conf-" });
  let id = "";
  try {
    const port = freePort();
    // The image's own config, but on 127.0.0.1:PORT: the host network has no free port 80.
    const conf = `user www-data;
worker_processes 1;
pid /run/nginx.pid;
error_log /dev/stderr notice;
events { worker_connections 64; }
http {
    include /etc/nginx/mime.types;
    access_log /dev/stdout;
    server {
        listen 127.0.0.1:${port};
        root /usr/share/nginx/html;
        index index.html;
    }
}
`;
    await Deno.writeTextFile(join(confDir, "nginx.conf"), conf);
    const run = await tsbox([
      "run",
      "-d",
      "--network",
      "host",
      "-v",
      `${confDir}/nginx.conf:/etc/nginx/nginx.conf:ro`,
      fx.refs.nginx,
    ], { root });
    assertEquals(run.code, 0, run.stderr);
    id = run.stdout.trim().split("\n").at(-1)!;
    assertMatch(id, /^[0-9a-f]{64}$/);

    const body = await until("nginx to answer", async () => {
      const res = await fetch(`http://127.0.0.1:${port}/`);
      return res.ok ? await res.text() : (await res.body?.cancel(), undefined);
    });
    assertEquals(body, `${NGINX_MARKER}\n`);

    const inspect = await tsbox(["inspect", id], { root });
    const [info] = JSON.parse(inspect.stdout) as [{ State: { Pid: number } }];
    const master = info.State.Pid;
    assertEquals(Deno.readTextFileSync(`/proc/${master}/comm`).trim(), "nginx");
    // The master keeps root; the worker switched to www-data (uid and gid 33).
    assertEquals(statusField(master, "Uid").split(/\s+/)[0], "0");
    const workers = await until("the nginx worker", () => {
      const found = childrenOf(master);
      return Promise.resolve(found.length > 0 ? found : undefined);
    });
    assertEquals(workers.length, 1, "worker_processes 1");
    assertEquals(statusField(workers[0], "Uid").split(/\s+/), ["33", "33", "33", "33"]);
    assertEquals(statusField(workers[0], "Gid").split(/\s+/), ["33", "33", "33", "33"]);
    // Host network: the container's net namespace is the host's.
    assertEquals(
      Deno.readLinkSync(`/proc/${master}/ns/net`),
      Deno.readLinkSync("/proc/self/ns/net"),
    );

    const logs = await until("the access line", async () => {
      const r = await tsbox(["logs", id], { root });
      return r.stdout.includes('"GET / HTTP/1.1" 200') ? r : undefined;
    });
    assertOk(logs.stdout.includes("127.0.0.1"));
  } finally {
    if (id) await tsbox(["rm", "-f", id], { root });
    await Deno.remove(confDir, { recursive: true });
    await cleanup();
  }
});
