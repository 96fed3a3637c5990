/**
 * README audit (issue 19), ports on real containers of the runtime busybox (pulled by tsbox from
 * the fixture registry), with busybox httpd serving inside: `-p HOST-RANGE:CTR-RANGE`, `-p PORT`
 * (an ephemeral host port on 0.0.0.0 and [::]), `--expose` (inspect's NetworkSettings.Ports,
 * `ps --filter expose=`), `-P` publishing the `--expose`d ports, `port C PORT/PROTO`, the PORTS
 * column of `ps`, a range whose lengths differ, and `--network none`.
 */
import { assertEquals, assertMatch, assertOk, assertStringIncludes } from "./assert.ts";
import { sharedBusyboxRoot } from "./busybox_store.ts";
import { type Cli, cliFor, rootTest, uniqueName, until } from "./readme_audit.ts";

async function env(): Promise<Cli> {
  return cliFor(await sharedBusyboxRoot());
}

/** A shell script serving `page-PORT` with busybox httpd on each port, then sleeping. */
function servers(ports: number[]): string {
  return `for p in ${ports.join(" ")}; do mkdir -p /w$p; echo page-$p > /w$p/index.html; ` +
    `httpd -p 127.0.0.1:$p -h /w$p; done; echo serving; exec sleep 300`;
}

/** The body of GET / on 127.0.0.1:port, once it answers. */
function page(port: number): Promise<string> {
  return until(`an answer on 127.0.0.1:${port}`, async () => {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/`);
      const text = await res.text();
      return res.ok ? text : undefined;
    } catch {
      return undefined;
    }
  });
}

function isFree(port: number): boolean {
  try {
    Deno.listen({ hostname: "0.0.0.0", port }).close();
    return true;
  } catch {
    return false;
  }
}

/** `n` consecutive host ports, free now. */
function freeRange(n: number): number {
  for (let i = 0; i < 200; i++) {
    const base = 20000 + Math.floor(Math.random() * 20000);
    if (Array.from({ length: n }, (_, k) => base + k).every(isFree)) return base;
  }
  throw new Error("no free port range");
}

async function refused(port: number): Promise<boolean> {
  try {
    (await Deno.connect({ hostname: "127.0.0.1", port })).close();
    return false;
  } catch {
    return true;
  }
}

rootTest(
  "-p H1-H2:C1-C2 forwards each port of the range; -p C gets an ephemeral port",
  async () => {
    const e = await env();
    const name = uniqueName("range");
    const base = freeRange(2);
    try {
      await e.ok([
        "run",
        "-d",
        "--name",
        name,
        "-p",
        `127.0.0.1:${base}-${base + 1}:8000-8001`,
        "-p",
        "8002",
        "busybox",
        "sh",
        "-c",
        servers([8000, 8001, 8002]),
      ]);
      assertEquals(await page(base), "page-8000\n");
      assertEquals(await page(base + 1), "page-8001\n");

      const lines = (await e.ok(["port", name])).trim().split("\n");
      assertEquals(lines.slice(0, 2), [
        `8000/tcp -> 127.0.0.1:${base}`,
        `8001/tcp -> 127.0.0.1:${base + 1}`,
      ]);
      const eph = lines.find((l) => l.startsWith("8002/tcp -> 0.0.0.0:"));
      assertOk(eph, lines.join("\n"));
      const ephemeral = Number(eph.split(":").at(-1));
      assertOk(ephemeral > 0 && ephemeral !== 8002, eph);
      assertEquals(await page(ephemeral), "page-8002\n");
      assertEquals(await e.ok(["port", name, "8001/tcp"]), `127.0.0.1:${base + 1}\n`);
      assertEquals((await e.ok(["port", name, "8002"])).split("\n")[0], `0.0.0.0:${ephemeral}`);

      const ports = await e.ok(["ps", "--filter", `name=${name}`, "--format", "{{.Ports}}"]);
      assertStringIncludes(ports, `127.0.0.1:${base}-${base + 1}->8000-8001/tcp`);
      assertStringIncludes(ports, `0.0.0.0:${ephemeral}->8002/tcp`);
      const bound = JSON.parse(
        await e.ok(["inspect", "-f", "{{json .NetworkSettings.Ports}}", name]),
      );
      assertEquals(bound["8001/tcp"], [{ HostIp: "127.0.0.1", HostPort: String(base + 1) }]);
    } finally {
      await e.t(["rm", "-f", name]);
    }
    assertOk(await refused(base), "the range is closed after rm -f");
  },
);

rootTest("a host range longer than the container range is refused, nothing created", async () => {
  const e = await env();
  const name = uniqueName("badrange");
  const base = freeRange(3);
  const r = await e.t([
    "run",
    "-d",
    "--name",
    name,
    "-p",
    `127.0.0.1:${base}-${base + 2}:8000-8001`,
    "busybox",
    "sleep",
    "300",
  ]);
  try {
    assertEquals(r.code, 125, `${r.stdout}${r.stderr}`);
    assertMatch(r.stderr, /range/i);
    assertEquals(await e.ok(["ps", "-a", "-q", "--filter", `name=${name}`]), "");
  } finally {
    if (r.code === 0) await e.t(["rm", "-f", name]);
  }
});

rootTest(
  "--expose is shown by inspect and ps filters; -P publishes every exposed port",
  async () => {
    const e = await env();
    const [exposed, published] = [uniqueName("expose"), uniqueName("pub-all")];
    try {
      // --expose alone: exposed, not published.
      await e.ok(["run", "-d", "--name", exposed, "--expose", "7000", "--expose", "7001/udp"]
        .concat(["busybox", "sleep", "300"]));
      const ports = JSON.parse(
        await e.ok(["inspect", "-f", "{{json .NetworkSettings.Ports}}", exposed]),
      );
      assertEquals(ports, { "7000/tcp": null, "7001/udp": null });
      assertEquals(await e.ok(["port", exposed]), "");
      assertEquals(
        await e.ok([
          "ps",
          "-q",
          "--no-trunc",
          "--filter",
          "expose=7001/udp",
          "--filter",
          `name=${exposed}`,
        ]),
        await e.ok(["inspect", "-f", "{{.Id}}", exposed]),
      );

      // -P: each --expose'd port gets a host port that reaches the container.
      await e.ok(["run", "-d", "--name", published, "-P", "--expose", "7000", "--expose", "7002"]
        .concat(["busybox", "sh", "-c", servers([7000, 7002])]));
      const lines = (await e.ok(["port", published])).trim().split("\n");
      for (const p of [7000, 7002]) {
        const line = lines.find((l) => l.startsWith(`${p}/tcp -> 0.0.0.0:`));
        assertOk(line, `${p} published: ${lines.join("\n")}`);
        const host = Number(line.split(":").at(-1));
        assertEquals(await page(host), `page-${p}\n`);
        assertEquals(
          (await e.ok(["port", published, `${p}/tcp`])).split("\n")[0],
          `0.0.0.0:${host}`,
        );
      }
      // A port nothing exposes: docker's error.
      const none = await e.t(["port", published, "7001/tcp"]);
      assertEquals(none.code, 1, none.stdout);
      assertStringIncludes(none.stderr, "No public port '7001/tcp' published");
    } finally {
      await e.t(["rm", "-f", exposed, published]);
    }
  },
);

rootTest("--network none: a namespace of its own with only lo; -p publishes nothing", async () => {
  const e = await env();
  const name = uniqueName("none");
  const port = freeRange(1);
  try {
    await e.ok([
      "run",
      "-d",
      "--name",
      name,
      "--network",
      "none",
      "-p",
      `127.0.0.1:${port}:80`,
      "busybox",
      "sh",
      "-c",
      "ls /sys/class/net; readlink /proc/self/ns/net; " + servers([80]),
    ]);
    const out = await until("the container's output", async () => {
      const logs = await e.ok(["logs", name]);
      return logs.includes("net:[") ? logs : undefined;
    });
    const [links, ns] = out.trim().split("\n");
    assertEquals(links, "lo");
    assertMatch(ns, /^net:\[\d+\]$/);
    assertOk(ns !== Deno.readLinkSync("/proc/self/ns/net"), "not the host's network namespace");
    assertEquals(await e.ok(["inspect", "-f", "{{.HostConfig.NetworkMode}}", name]), "none\n");
    assertEquals(await e.ok(["port", name]), "");
    // The server inside listens (exec sees it), yet nothing on the host leads to it.
    const get = ["exec", name, "wget", "-q", "-O", "-", "http://127.0.0.1:80/"];
    await until("httpd inside", async () => (await e.t(get)).stdout === "page-80\n" || undefined);
    assertOk(await refused(port), `127.0.0.1:${port} answers for a --network none container`);
  } finally {
    await e.t(["rm", "-f", name]);
  }
});
