/**
 * Containers on bridge networks end to end (root): `run` on the default `bridge` and on user
 * networks, names through aardvark-dns, isolation, concurrent leases (30 at once), a killed
 * supervisor, `-p`, and nothing of tsbox left on the host afterwards. Traffic goes only to 127.0.0.1, to addresses
 * of tsbox's bridges and containers, and to the test's own upstream namespace (198.51.100.1,
 * route checked before the first packet, tests/upstream_ns.ts). Containers on user networks get
 * `--dns 198.51.100.1`, so names aardvark-dns does not know are forwarded there, not to the
 * host's resolvers.
 */
import { fixtureRegistry, NGINX_MARKER } from "./fixtures/images.ts";
import { assertEquals, assertMatch, assertOk, assertStringIncludes } from "./assert.ts";
import { tempRoot, tsbox } from "./cli.ts";
import { canaryTable, makeUpstream, sh, UPSTREAM, UPSTREAM_HOST_SIDE } from "./upstream_ns.ts";
import { readAll, writeAll } from "./conn.ts";
import { DNS_DIR } from "../src/network/dns.ts";
import { ipForwarding } from "../src/network/bridge.ts";

const isRoot = Deno.uid() === 0;
const tag = `${Deno.pid % 100000}`;

/** tsbox's links on the host (bridges `tsbox*`, veths `tsbv*`), with their bridge. */
function tsbLinks(): { ifname: string; master?: string }[] {
  return (JSON.parse(sh("ip", "-j", "link", "show").out) as { ifname: string; master?: string }[])
    .filter((l) => l.ifname.startsWith("tsb")).sort((a, b) => a.ifname < b.ifname ? -1 : 1);
}

/** tsbox table's set elements as text (empty without the table). */
function tsboxElements(): string {
  const r = sh("nft", "list", "table", "inet", "tsbox");
  return r.code === 0 ? r.out.split("\n").filter((l) => l.includes("elements")).join("\n") : "";
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function httpGet(port: number): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await writeAll(conn, new TextEncoder().encode("GET / HTTP/1.0\r\nHost: x\r\n\r\n"));
    return new TextDecoder().decode(await readAll(conn));
  } finally {
    conn.close();
  }
}

Deno.test({
  name: "bridge networks: default bridge with a route out, names on user networks, isolation, " +
    "leases (30 at once), a killed supervisor, -p, nothing left",
  ignore: !isRoot,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const linksBefore = tsbLinks().map((l) => l.ifname);
    const canary = canaryTable();
    /** Bridges and subnets of this test's networks, for the checks after cleanup. */
    const mine: { bridge: string; subnet: string }[] = [];
    const noteNetwork = async (name: string) => {
      const n = JSON.parse(await ok(["network", "inspect", name]))[0];
      mine.push({
        bridge: n.Options["com.docker.network.bridge.name"],
        subnet: n.IPAM.Config[0].Subnet,
      });
    };
    const forwardBefore = ipForwarding();
    const fx = await fixtureRegistry();
    const { root, cleanup } = await tempRoot();
    const www = await Deno.makeTempDir({ prefix: "tsbox-net-www-" });
    await Deno.writeTextFile(`${www}/marker`, `upstream ${tag}\n`);
    const upstream = await makeUpstream(`tsbox-up-${tag}`, `tsbn${tag}`, www, 8000, {
      "upstream.test": UPSTREAM,
    });
    const run = (args: string[]) => tsbox(args, { root });
    const ok = async (args: string[]) => {
      const r = await run(args);
      assertEquals(r.code, 0, `tsbox ${args.join(" ")}: ${r.stdout}\n${r.stderr}`);
      return r.stdout;
    };
    const busybox = fx.refs.busybox, nginx = fx.refs.nginx;
    const dns = ["--dns", UPSTREAM];
    /** An HTTP/1.0 GET with busybox nc from a new container; the response, or "" on failure. */
    const ncGet = async (net: string, host: string, port = 80, path = "/", withDns = false) => {
      const r = await run([
        "run",
        "--rm",
        "--network",
        net,
        ...(net === "bridge" && !withDns ? [] : dns),
        busybox,
        "sh",
        "-c",
        `printf 'GET ${path} HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n' | nc -w 3 ${host} ${port}`,
      ]);
      return r.code === 0 ? r.stdout : `exit ${r.code}: ${r.stderr}`;
    };
    try {
      await ok(["pull", "-q", busybox]);
      await ok(["pull", "-q", nginx]);

      await t.step("default bridge: eth0 in the subnet, upstream sees the host", async () => {
        const bridge = JSON.parse(await ok(["network", "inspect", "bridge"]))[0];
        await noteNetwork("bridge");
        const subnet: string = bridge.IPAM.Config[0].Subnet;
        const out = await ok(["run", "--rm", busybox, "ip", "-4", "-o", "addr", "show", "eth0"]);
        const m = /inet (\d+\.\d+\.\d+)\.(\d+)\/24/.exec(out);
        assertOk(m, `no address on eth0: ${out}`);
        assertEquals(`${m![1]}.0/24`, subnet);
        const page = await ncGet("bridge", UPSTREAM, 8000, "/marker");
        assertStringIncludes(page, `upstream ${tag}`);
        const seen = upstream.log().split("\n").filter((l) => l.includes("GET /marker"))
          .map((l) => l.split(" ")[0]);
        assertOk(seen.includes(UPSTREAM_HOST_SIDE), `upstream saw ${seen.join(", ")}`);
        assertOk(seen.every((a) => a === UPSTREAM_HOST_SIDE), `not masqueraded: ${seen}`);
      });

      await t.step(
        "--dns: a name from the upstream's resolver, directly and via aardvark",
        async () => {
          await until("upstream.test from the default bridge", async () => {
            const page = await ncGet("bridge", "upstream.test", 8000, "/marker", true);
            return page.includes(`upstream ${tag}`) ? page : undefined;
          });
          await ok(["network", "create", "t-fwd"]);
          await noteNetwork("t-fwd");
          // On a user network aardvark-dns answers, forwarding what it does not know to --dns.
          const page = await ncGet("t-fwd", "upstream.test", 8000, "/marker");
          assertStringIncludes(page, `upstream ${tag}`);
          const missing = await ncGet("t-fwd", "nothing.test", 8000, "/marker");
          assertStringIncludes(missing, "bad address");
          await ok(["network", "rm", "t-fwd"]);
        },
      );

      await t.step("user network: names, aliases, short ids; gone after rm", async () => {
        await ok(["network", "create", "t-app"]);
        await ok(["network", "create", "t-other"]);
        await noteNetwork("t-app");
        await noteNetwork("t-other");
        const id = (await ok([
          "run",
          "-d",
          "--network",
          "t-app",
          ...dns,
          "--network-alias",
          "t-alias",
          "--name",
          "t-web",
          nginx,
        ])).trim();
        const inspect = JSON.parse(await ok(["inspect", "t-web"]))[0];
        const ep = inspect.NetworkSettings.Networks["t-app"];
        assertMatch(ep.IPAddress, /^\d+\.\d+\.\d+\.\d+$/);
        assertEquals(ep.IPPrefixLen, 24);
        assertMatch(ep.MacAddress, /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
        assertOk(ep.Aliases.includes("t-alias"));
        assertEquals(inspect.HostConfig.NetworkMode, "t-app");
        const app = JSON.parse(await ok(["network", "inspect", "t-app"]))[0];
        assertEquals(ep.NetworkID, app.Id);
        assertEquals(ep.Gateway, app.IPAM.Config[0].Gateway);
        assertEquals(app.Containers[id].Name, "t-web");
        assertEquals(
          await ok(["ps", "-f", "network=t-app", "--format", "{{.Networks}}"]),
          "t-app\n",
        );
        const rm = await run(["network", "rm", "t-app"]);
        assertEquals(rm.code, 1, "network rm of a used network");
        assertStringIncludes(rm.stderr, "active endpoints");

        for (const name of ["t-web", "t-alias", id.slice(0, 12)]) {
          await until(`${name} from t-app`, async () => {
            const page = await ncGet("t-app", name);
            return page.includes(NGINX_MARKER) ? page : undefined;
          });
        }
        // Another network reaches it neither by name nor by address.
        assertOk(!(await ncGet("t-other", "t-web")).includes(NGINX_MARKER), "t-other by name");
        assertOk(!(await ncGet("t-other", ep.IPAddress)).includes(NGINX_MARKER), "by address");
        // -p on a user network.
        await ok(["rm", "-f", "t-web"]);
        const gone = await ncGet("t-app", "t-web");
        assertOk(!gone.includes(NGINX_MARKER), "t-web still answers");
        assertStringIncludes(gone, "bad address");
      });

      await t.step("stop gives the address back, start attaches again", async () => {
        await ok(["run", "-d", "--network", "t-app", ...dns, "--name", "t-stop", nginx]);
        await until("t-stop by name", async () => {
          const page = await ncGet("t-app", "t-stop");
          return page.includes(NGINX_MARKER) ? page : undefined;
        });
        await ok(["stop", "-t", "1", "t-stop"]);
        const stopped = JSON.parse(await ok(["inspect", "t-stop"]))[0].NetworkSettings;
        assertEquals(stopped.Networks["t-app"].IPAddress, "");
        assertEquals(JSON.parse(await ok(["network", "inspect", "t-app"]))[0].Containers, {});
        await ok(["start", "t-stop"]);
        await until("t-stop by name after start", async () => {
          const page = await ncGet("t-app", "t-stop");
          return page.includes(NGINX_MARKER) ? page : undefined;
        });
        await ok(["rm", "-f", "t-stop"]);
      });

      await t.step("network connect and disconnect of a running container", async () => {
        await ok(["run", "-d", "--network", "t-other", ...dns, "--name", "t-web2", nginx]);
        const before = await ncGet("t-app", "t-web2");
        assertOk(!before.includes(NGINX_MARKER), "reached before connect");
        await ok(["network", "connect", "--alias", "t-web2-alias", "t-app", "t-web2"]);
        await until("t-web2-alias from t-app after connect", async () => {
          const page = await ncGet("t-app", "t-web2-alias");
          return page.includes(NGINX_MARKER) ? page : undefined;
        });
        const nets = JSON.parse(await ok(["inspect", "t-web2"]))[0].NetworkSettings.Networks;
        assertEquals(Object.keys(nets).sort(), ["t-app", "t-other"]);
        assertMatch(nets["t-app"].IPAddress, /^\d+\.\d+\.\d+\.\d+$/);
        const again = await run(["network", "connect", "t-app", "t-web2"]);
        assertOk(again.code !== 0, "connected twice");
        await ok(["network", "disconnect", "t-app", "t-web2"]);
        const after = await ncGet("t-app", "t-web2");
        assertOk(!after.includes(NGINX_MARKER), "reached after disconnect");
        const app = JSON.parse(await ok(["network", "inspect", "t-app"]))[0];
        assertEquals(app.Containers, {});
        await ok(["rm", "-f", "t-web2"]);
      });

      await t.step("--internal: no way out; --dns, --add-host, hosts and resolv.conf", async () => {
        await ok(["network", "create", "--internal", "t-int"]);
        await noteNetwork("t-int");
        const out = await ncGet("t-int", UPSTREAM, 8000, "/marker");
        assertOk(!out.includes(`upstream ${tag}`), "an internal network reached the upstream");
        const files = await ok([
          "run",
          "--rm",
          "--hostname",
          "t-box",
          "--add-host",
          "t-db:192.0.2.5",
          "--add-host",
          "t-gw:host-gateway",
          "--dns",
          UPSTREAM,
          busybox,
          "sh",
          "-c",
          "cat /etc/hosts; echo ---; cat /etc/resolv.conf; echo ---; ip -4 -o addr show eth0",
        ]);
        const [hosts, resolv, addr] = files.split("---\n");
        const ip = /inet (\d+\.\d+\.\d+\.\d+)/.exec(addr)![1];
        const gateway = JSON.parse(await ok(["network", "inspect", "bridge"]))[0].IPAM.Config[0]
          .Gateway;
        assertStringIncludes(hosts, "192.0.2.5\tt-db\n");
        assertStringIncludes(hosts, `${gateway}\tt-gw\n`);
        assertStringIncludes(hosts, `${ip}\tt-box\n`);
        assertEquals(resolv.split("\n")[0], `nameserver ${UPSTREAM}`);
        // On a user network the resolver is the network's DNS server, on its gateway.
        const app = JSON.parse(await ok(["network", "inspect", "t-app"]))[0];
        const appResolv = await ok([
          "run",
          "--rm",
          "--network",
          "t-app",
          ...dns,
          busybox,
          "cat",
          "/etc/resolv.conf",
        ]);
        assertEquals(appResolv.split("\n")[0], `nameserver ${app.IPAM.Config[0].Gateway}`);
      });

      await t.step("-p 127.0.0.1:PORT:80 on the default bridge and on a user network", async () => {
        for (const net of ["bridge", "t-app"]) {
          const port = freePort();
          const id =
            (await ok(["run", "-d", "--network", net, "-p", `127.0.0.1:${port}:80`, nginx]))
              .trim();
          try {
            await until(`nginx on ${net} through -p`, async () => {
              const page = await httpGet(port);
              return page.includes(NGINX_MARKER) ? page : undefined;
            });
          } finally {
            await ok(["rm", "-f", id]);
          }
        }
      });

      await t.step(
        "30 concurrent run -d on one network: distinct addresses, each found by name",
        async () => {
          const names = Array.from({ length: 30 }, (_, i) => `t-c${i}`);
          const ids = await Promise.all(
            names.map((name) =>
              ok([
                "run",
                "-d",
                "--network",
                "t-app",
                ...dns,
                "--name",
                name,
                busybox,
                "sleep",
                "300",
              ])
            ),
          );
          const addrs = await Promise.all(names.map((name) =>
            ok([
              "inspect",
              "-f",
              "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
              name,
            ])
          ));
          const byName = new Map(names.map((n, i) => [n, addrs[i].trim()]));
          const set = new Set(byName.values());
          assertEquals(set.size, 30, `addresses: ${[...set].join(" ")}`);
          assertOk([...set].every((a) => /^\d+\.\d+\.\d+\.\d+$/.test(a)));
          // One more container on the network pings each of them by name: every name resolves
          // to that container's own address and it answers.
          const script = names.map((n) => `ping -c 1 -W 3 ${n} | head -1 || echo FAIL ${n}`)
            .join("; ");
          const pings = await ok([
            "run",
            "--rm",
            "--network",
            "t-app",
            ...dns,
            busybox,
            "sh",
            "-c",
            script,
          ]);
          for (const n of names) {
            assertStringIncludes(pings, `PING ${n} (${byName.get(n)})`);
          }
          assertOk(!pings.includes("FAIL"), pings);
          // And they reach each other: the first and the last, both ways.
          for (const [from, to] of [["t-c0", "t-c29"], ["t-c29", "t-c0"]]) {
            const r = await ok(["exec", from, "ping", "-c", "1", "-W", "3", to]);
            assertStringIncludes(r, `(${byName.get(to)})`);
            assertStringIncludes(r, "1 packets received");
          }
          await ok(["rm", "-f", ...ids.map((i) => i.trim())]);
          const app = JSON.parse(await ok(["network", "inspect", "t-app"]))[0];
          assertEquals(app.Containers, {});
        },
      );

      await t.step("kill -9 of a bridged container's supervisor: ps -a, rm -f", async () => {
        const id = (await ok(["run", "-d", "--network", "t-app", ...dns, busybox, "sleep", "300"]))
          .trim();
        const appBridge = JSON.parse(await ok(["network", "inspect", "t-app"]))[0]
          .Options["com.docker.network.bridge.name"];
        const veths = tsbLinks().filter((l) => l.master === appBridge).map((l) => l.ifname);
        assertEquals(veths.length, 1, `veths: ${veths}`);
        const supervisor = [...Deno.readDirSync("/proc")].map((e) => Number(e.name)).find((pid) => {
          try {
            const argv = Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0");
            return argv.includes(id) && argv.some((a) => a.includes("supervis"));
          } catch {
            return false;
          }
        });
        assertOk(supervisor, "no supervisor found");
        Deno.kill(supervisor!, "SIGKILL");
        await until("ps -a shows it exited", async () => {
          const out = await ok(["ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Status}}"]);
          return out.includes(`${id} Exited (137)`) ? out : undefined;
        });
        await ok(["rm", "-f", id]);
        assertEquals(
          tsbLinks().filter((l) => veths.includes(l.ifname)),
          [],
          "veth left",
        );
        const app = JSON.parse(await ok(["network", "inspect", "t-app"]))[0];
        assertEquals(app.Containers, {});
      });

      await t.step("create on a bridge names another table's dropping forward chain", async () => {
        const table = `tsbox_test_run_${Deno.pid}`;
        assertEquals(
          sh(
            "nft",
            `add table ip ${table}; add chain ip ${table} FORWARD { type filter hook forward priority 0; policy drop; }`,
          ).code,
          0,
        );
        try {
          const r = await run(["create", "--network", "t-app", busybox]);
          assertEquals(r.code, 0, r.stderr);
          const line = r.stderr.split("\n").find((l) => l.includes(`ip ${table} FORWARD`));
          assertOk(line?.startsWith("WARNING: "), r.stderr);
          await ok(["rm", r.stdout.trim()]);
          const quiet = await run([
            "create",
            "--network",
            "t-app",
            "--network",
            "private",
            busybox,
          ]);
          assertOk(!quiet.stderr.includes(table), "warned for a private namespace");
          await ok(["rm", quiet.stdout.trim()]);
        } finally {
          sh("nft", `delete table ip ${table}`);
        }
      });

      await t.step("network rm after the containers are gone", async () => {
        await ok(["network", "rm", "t-app", "t-other", "t-int"]);
      });
    } finally {
      await cleanup();
      await upstream.remove();
      if (!forwardBefore) Deno.writeTextFileSync("/proc/sys/net/ipv4/ip_forward", "0\n");
      await Deno.remove(www, { recursive: true });
    }
    // Nothing of this test's networks: no bridge, no veth without its bridge (one of ours, left),
    // no element in tsbox's table, and other tables as they were.
    const after = tsbLinks();
    assertEquals(
      after.filter((l) =>
        mine.some((m) => m.bridge === l.ifname) ||
        (!linksBefore.includes(l.ifname) && l.ifname.startsWith("tsbv") && !l.master)
      ),
      [],
      "links left behind",
    );
    const elements = tsboxElements();
    for (const m of mine) {
      assertOk(!elements.includes(`"${m.bridge}"`), `${m.bridge} left in table inet tsbox`);
    }
    assertOk(canary.unchanged(), `another table changed: ${canary.text()}`);
    canary.remove();
    const dnsFiles = [...(function* () {
      try {
        for (const e of Deno.readDirSync(DNS_DIR)) yield e.name;
      } catch { /* none */ }
    })()];
    // Other stores' networks (tests running at the same time) may come and go meanwhile.
    assertEquals(
      dnsFiles.filter((f) => mine.some((m) => m.bridge === f)),
      [],
      "aardvark-dns files left behind",
    );
  },
});
