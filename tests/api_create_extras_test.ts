/**
 * `POST /containers/create` fields beyond the everyday ones, through Debian's docker client at
 * tsbox's socket (root): `--memory-swappiness` reaches the container's memory cgroup (v1; docker
 * discards it with a warning where the kernel has no such file), `--blkio-weight-device` and
 * `--blkio-weight` are applied where the kernel has the weight files and otherwise discarded
 * with docker's warnings, which create answers in `Warnings` (the client prints them); and
 * legacy `--link NAME:ALIAS` makes the linked container's alias and name resolve from the new
 * container, on the default bridge and on a user network, refused as dockerd refuses it for a
 * stopped container or with host networking.
 */
import { assertEquals, assertStringIncludes } from "./assert.ts";
import { ok, rawRequest, rootTest, setup } from "./api_helpers.ts";
import { hostResources } from "../src/container/extra_limits.ts";
import { hostLayout } from "../src/runtime/cgroups.ts";
import { blkioWeightFile } from "../src/runtime/cgroup_extra.ts";

/** A block device of the host, for the weight flags. */
function blockDevice(): string {
  for (const e of Deno.readDirSync("/dev")) {
    const path = `/dev/${e.name}`;
    try {
      if (Deno.statSync(path).isBlockDevice) return path;
    } catch { /* gone */ }
  }
  throw new Error("no block device in /dev");
}

/** The major:minor of a device node. */
function majorMinor(path: string): string {
  const rdev = Deno.statSync(path).rdev ?? 0;
  return `${(rdev >>> 8) & 0xfff}:${(rdev & 0xff) | ((rdev >>> 12) & 0xfff00)}`;
}

rootTest(
  "api create: memory swappiness and blkio weights applied or discarded with docker's warnings",
  async () => {
    const t = await setup();
    const host = hostResources();
    const layout = hostLayout();
    const dev = blockDevice();
    try {
      const ref = t.fx.refs.busybox;
      await ok(t.d("pull", "-q", ref));
      const run = await t.d(
        "run",
        "-d",
        "--name",
        "t-api-swap",
        "--memory-swappiness",
        "17",
        "--blkio-weight",
        "300",
        "--blkio-weight-device",
        `${dev}:400`,
        ref,
        "sleep",
        "600",
      );
      assertEquals(run.code, 0, run.stderr);
      const id = run.stdout.trim();
      const fmt = "{{.HostConfig.MemorySwappiness}} {{.HostConfig.BlkioWeight}} " +
        "{{range .HostConfig.BlkioWeightDevice}}{{.Path}}={{.Weight}}{{end}}";
      const seen = (await ok(t.d("inspect", "-f", fmt, "t-api-swap"))).trim();
      const [swappiness, weight, weights] = seen.split(" ");
      if (host.memorySwappiness) {
        assertEquals(swappiness, "17");
        const file = `${layout.v1.get("memory")}/tsbox/${id}/memory.swappiness`;
        assertEquals(Deno.readTextFileSync(file).trim(), "17");
      } else {
        assertEquals(swappiness, "<nil>");
        assertStringIncludes(run.stderr, "WARNING: Your kernel does not support memory swappiness");
      }
      const blkio = layout.v1.get("blkio");
      const weightFile = blkioWeightFile(blkio);
      if (host.blkioWeight) {
        assertEquals(weight, "300");
        if (weightFile) {
          const text = Deno.readTextFileSync(`${blkio}/tsbox/${id}/${weightFile}`);
          assertStringIncludes(text, "300");
        }
      } else {
        assertEquals(weight, "0");
        assertStringIncludes(
          run.stderr,
          "WARNING: Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.",
        );
      }
      if (host.blkioWeightDevice) {
        assertEquals(weights, `${dev}=400`);
        if (weightFile) {
          const text = Deno.readTextFileSync(`${blkio}/tsbox/${id}/${weightFile}_device`);
          assertStringIncludes(text, `${majorMinor(dev)} 400`);
        }
      } else {
        assertEquals(weights ?? "", "");
        assertStringIncludes(
          run.stderr,
          "WARNING: Your kernel does not support Block I/O weight_device or the cgroup is not mounted. Weight-device discarded.",
        );
      }

      // The create answer itself (raw HTTP): Warnings as docker's, [] when there are none;
      // values the daemon refuses (docker's client checks some itself) are 400 with its text.
      const post = async (hostConfig: unknown) => {
        const b = JSON.stringify({ Image: ref, HostConfig: hostConfig });
        const res = await rawRequest(
          t.socket,
          `POST /v1.41/containers/create HTTP/1.1\r\nHost: d\r\n` +
            `Content-Type: application/json\r\nContent-Length: ${b.length}\r\n` +
            `Connection: close\r\n\r\n${b}`,
        );
        return {
          status: Number(res.split(" ")[1]),
          body: JSON.parse(res.slice(res.indexOf("\r\n\r\n") + 4)),
        };
      };
      const plain = await post({ MemorySwappiness: -1 });
      assertEquals([plain.status, plain.body.Warnings], [201, []]);
      const kmem = await post({ KernelMemory: 8 << 20 });
      assertEquals([kmem.status, kmem.body.Warnings], [201, [
        "Specifying a kernel memory limit is deprecated and will be removed in a future release.",
      ]]);
      const tooMuch = await post({ MemorySwappiness: 101 });
      assertEquals(tooMuch.status, host.memorySwappiness ? 400 : 201);
      if (host.memorySwappiness) {
        assertEquals(
          tooMuch.body.message,
          "Invalid value: 101, valid memory swappiness range is 0-100",
        );
      }
      const light = await post({ BlkioWeightDevice: [{ Path: dev, Weight: 5 }] });
      assertEquals([light.status, light.body.message], [
        400,
        `invalid weight for device: ${dev}:5`,
      ]);
      assertEquals((await ok(t.d("ps", "-aq"))).trim().split("\n").length, 3);
      await ok(t.d("rm", "-f", plain.body.Id, kmem.body.Id));
    } finally {
      await t.d("rm", "-f", "t-api-swap");
      await t.cleanup();
    }
  },
);

rootTest(
  "api create: --link NAME:ALIAS resolves on the default bridge and on a user network",
  async () => {
    const t = await setup();
    const net = `t-api-links-${Deno.pid}`;
    try {
      const ref = t.fx.refs.busybox;
      await ok(t.d("pull", "-q", ref));
      // The default bridge: the alias, the name and the host name in /etc/hosts, reachable.
      await ok(
        t.d("run", "-d", "--name", "t-api-linked", "--hostname", "dbhost", ref, "sleep", "600"),
      );
      const ip = (await ok(t.d(
        "inspect",
        "-f",
        "{{.NetworkSettings.IPAddress}}",
        "t-api-linked",
      ))).trim();
      const seen = await t.d(
        "run",
        "--rm",
        "--link",
        "t-api-linked:database",
        ref,
        "sh",
        "-c",
        "cat /etc/hosts; ping -c 1 -W 5 database; ping -c 1 -W 5 t-api-linked",
      );
      assertEquals(seen.code, 0, seen.stdout + seen.stderr);
      const hosts = seen.stdout.split("\n").map((l) => l.trim().split(/\s+/));
      for (const n of ["database", "dbhost", "t-api-linked"]) {
        assertEquals(hosts.some((h) => h[0] === ip && h.includes(n)), true, seen.stdout);
      }
      assertStringIncludes(seen.stdout, `PING database (${ip})`);
      assertStringIncludes(seen.stdout, `PING t-api-linked (${ip})`);

      // A stopped container cannot be linked on the bridge; host networking takes no links.
      await ok(t.d("create", "--name", "t-api-stopped", ref, "true"));
      const stopped = await t.d("run", "--rm", "--link", "t-api-stopped:x", ref, "true");
      assertEquals(stopped.code, 125, stopped.stderr);
      assertStringIncludes(
        stopped.stderr,
        "Cannot link to a non running container: /t-api-stopped",
      );
      const hostNet = await t.d(
        "run",
        "--rm",
        "--network",
        "host",
        "--link",
        "t-api-linked:x",
        ref,
        "true",
      );
      assertEquals(hostNet.code !== 0, true, hostNet.stderr);
      assertStringIncludes(hostNet.stderr.toLowerCase(), "links");
      const missing = await t.d("run", "--rm", "--link", "t-api-nosuch:x", ref, "true");
      assertEquals(missing.code, 125, missing.stderr);
      assertStringIncludes(missing.stderr, "t-api-nosuch");

      // A user network: the link's alias resolves there too.
      await ok(t.d("network", "create", net));
      await ok(t.d("run", "-d", "--name", "t-api-linked2", "--network", net, ref, "sleep", "600"));
      const ip2 = (await ok(t.d(
        "inspect",
        "-f",
        `{{(index .NetworkSettings.Networks "${net}").IPAddress}}`,
        "t-api-linked2",
      ))).trim();
      const user = await t.d(
        "run",
        "--rm",
        "--network",
        net,
        "--link",
        "t-api-linked2:store",
        ref,
        "ping",
        "-c",
        "1",
        "-W",
        "5",
        "store",
      );
      assertEquals(user.code, 0, user.stdout + user.stderr);
      assertStringIncludes(user.stdout, `PING store (${ip2})`);
    } finally {
      await t.d("rm", "-f", "t-api-linked", "t-api-linked2", "t-api-stopped");
      await t.d("network", "rm", net);
      await t.cleanup();
    }
  },
);
