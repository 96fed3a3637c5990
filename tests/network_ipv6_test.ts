/**
 * IPv6 on a user network (root), with tsbox itself running in a network namespace the test
 * makes (`nsenter --net`), so that its bridge, its nftables table and the IPv6 forwarding switch
 * are that namespace's, never the host's. The namespace's "outside" is another namespace of the
 * test's own behind a veth pair, 2001:db8:6::1 (a documentation prefix), the route to it checked
 * before the first packet. Shows: `network create --ipv6 --subnet`, each container's address and
 * default route, names resolving to AAAA records and reaching the container, and NAT66 (the
 * upstream sees the namespace's own address, and has no route back to the containers' subnet).
 * Nothing here records the default network (`network ls` would): its bridge would be `tsbox0`
 * in the namespace, a name the host's cleanup must never be handed.
 */
import { DatabaseSync } from "node:sqlite";
import { fixtureRegistry } from "./fixtures/images.ts";
import { assertEquals, assertMatch, assertStringIncludes } from "./assert.ts";
import { tempRoot, tsbox } from "./cli.ts";
import { sh } from "./upstream_ns.ts";

const isRoot = Deno.uid() === 0;
const MAIN = new URL("../main.ts", import.meta.url).pathname;
const tag = `${Deno.pid % 100000}`;
/** One IPv6 group of this process's own (the subnet's third). */
const g6 = (Deno.pid % 0xffff).toString(16);
const UP6 = "2001:db8:6::1";
const HOST6 = "2001:db8:6::fe";

function must(r: { code: number; out: string; err: string }, what: string): string {
  assertEquals(r.code, 0, `${what}: ${r.err}`);
  return r.out;
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

Deno.test({
  name: "IPv6 network: addresses, routes, AAAA names, NAT66, inside a namespace of the test's",
  ignore: !isRoot,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const fx = await fixtureRegistry();
    const { root, cleanup } = await tempRoot();
    const ns = `tsbox-v6-${tag}`, up = `tsbox-v6u-${tag}`;
    const vt = `tsb6t${tag}`, vu = `tsb6u${tag}`;
    const dnsDir = `/run/tsbox/aardvark-dns-test-${Deno.pid}-v6`;
    const www = await Deno.makeTempDir({ prefix: "tsbox-v6-www-" });
    await Deno.writeTextFile(`${www}/marker`, `upstream6 ${tag}\n`);
    let server: Deno.ChildProcess | undefined;
    let log = "";
    let reading: Promise<void> | undefined;
    /** tsbox inside the test's namespace. */
    const t = async (args: string[]) => {
      const out = await new Deno.Command("nsenter", {
        args: [`--net=/run/netns/${ns}`, "--", Deno.execPath(), "run", "-A", "--quiet", MAIN]
          .concat(["--root", root, ...args]),
        env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1", TSBOX_DNS_DIR: dnsDir },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
      const dec = new TextDecoder();
      return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
    };
    const ok = async (args: string[]) => {
      const r = await t(args);
      assertEquals(r.code, 0, `tsbox ${args.join(" ")}: ${r.stdout}\n${r.stderr}`);
      return r.stdout;
    };
    const quiet = ["--dns", "127.0.0.1", "--dns-search", "."];
    try {
      must(sh("ip", "netns", "add", ns), "netns add");
      must(sh("ip", "netns", "add", up), "netns add upstream");
      must(sh("ip", "-n", ns, "link", "set", "lo", "up"), "lo");
      must(sh("ip", "-n", up, "link", "set", "lo", "up"), "lo upstream");
      must(sh("ip", "-n", ns, "link", "add", vt, "type", "veth", "peer", "name", vu), "veth");
      must(sh("ip", "-n", ns, "link", "set", vu, "netns", up), "move");
      must(sh("ip", "-n", ns, "addr", "add", `${HOST6}/64`, "dev", vt, "nodad"), "addr");
      must(sh("ip", "-n", up, "addr", "add", `${UP6}/64`, "dev", vu, "nodad"), "addr up");
      must(sh("ip", "-n", ns, "link", "set", vt, "up"), "up");
      must(sh("ip", "-n", up, "link", "set", vu, "up"), "up upstream");
      // Before any packet: in the test's namespace the upstream is reached through its veth.
      const route = JSON.parse(must(sh("ip", "-n", ns, "-j", "route", "get", UP6), "route"));
      assertEquals(route[0]?.dev, vt, `route to ${UP6} in ${ns} does not leave through ${vt}`);
      server = new Deno.Command("ip", {
        args: ["netns", "exec", up, "/usr/bin/python3", "-m", "http.server", "-d", www]
          .concat(["--bind", UP6, "8000"]),
        stdout: "null",
        stderr: "piped",
      }).spawn();
      const s = server;
      reading = (async () => {
        for await (const chunk of s.stderr.pipeThrough(new TextDecoderStream())) log += chunk;
      })();
      await until("the upstream's server", () => {
        const r = sh(
          "ip",
          "netns",
          "exec",
          up,
          "curl",
          "-s",
          "-o",
          "/dev/null",
          "-m",
          "2",
          `http://[${UP6}]:8000/`,
        );
        return Promise.resolve(r.code === 0 ? true : undefined);
      });

      const pulled = await tsbox(["pull", "-q", fx.refs.busybox], { root });
      assertEquals(pulled.code, 0, pulled.stderr);
      // A subnet the namespace already routes (the upstream's) is refused, naming the route.
      const clash = await t(["network", "create", "--subnet", "2001:db8:6::/64", "t-clash"]);
      assertEquals(clash.code, 125, clash.stderr);
      assertStringIncludes(clash.stderr, `overlaps the host's route 2001:db8:6::/64 dev ${vt}`);
      const subnet6 = `fd42:7b:${g6}::/64`;
      await ok(["network", "create", "--ipv6", "--subnet", subnet6, "t-v6"]);
      const net = JSON.parse(await ok(["network", "inspect", "t-v6"]))[0];
      assertEquals(net.EnableIPv6, true);
      assertEquals(net.IPAM.Config[1], { Subnet: subnet6, Gateway: `fd42:7b:${g6}::1` });

      await ok([
        "run",
        "-d",
        "--network",
        "t-v6",
        ...quiet,
        "--name",
        "t-s6",
        fx.refs.busybox,
        "sleep",
        "300",
      ]);
      const ep = JSON.parse(await ok(["inspect", "t-s6"]))[0].NetworkSettings.Networks["t-v6"];
      assertEquals(ep.GlobalIPv6Address, `fd42:7b:${g6}::2`);
      assertEquals(ep.GlobalIPv6PrefixLen, 64);
      assertEquals(ep.IPv6Gateway, `fd42:7b:${g6}::1`);
      const inspected = JSON.parse(await ok(["network", "inspect", "t-v6"]))[0];
      assertEquals(
        Object.values(inspected.Containers).map((c) =>
          (c as { IPv6Address: string })
            .IPv6Address
        ),
        [`fd42:7b:${g6}::2/64`],
      );

      // From another container: its own address and route, the name as AAAA, and a ping.
      const out = await ok([
        "run",
        "--rm",
        "--network",
        "t-v6",
        ...quiet,
        fx.refs.busybox,
        "sh",
        "-c",
        "ip -6 addr show dev eth0 scope global; ip -6 route show default; tail -1 /etc/hosts; " +
        "nslookup -type=aaaa t-s6; ping -6 -c 1 -W 3 t-s6",
      ]);
      assertStringIncludes(out, `inet6 fd42:7b:${g6}::3/64`);
      assertStringIncludes(out, `default via fd42:7b:${g6}::1 dev eth0`);
      assertMatch(out, new RegExp(`^fd42:7b:${g6}::3\t[0-9a-f]{12}$`, "m"));
      assertMatch(out, new RegExp(`Address: fd42:7b:${g6}::2`));
      assertStringIncludes(out, "1 packets received");

      // NAT66: the upstream has no route to fd42:7b:…, and sees the namespace's own address.
      const page = await ok([
        "run",
        "--rm",
        "--network",
        "t-v6",
        ...quiet,
        fx.refs.busybox,
        "wget",
        "-q",
        "-O",
        "-",
        `http://[${UP6}]:8000/marker`,
      ]);
      assertEquals(page, `upstream6 ${tag}\n`);
      const seen = log.split("\n").filter((l) => l.includes("GET /marker")).map((l) =>
        l.split(" ")[0]
      );
      assertEquals(seen, [HOST6], `the upstream saw ${seen.join(", ")}`);

      // --ip6: an address of the container's choosing, served by name, reachable.
      const mine6 = `fd42:7b:${g6}::99`;
      const sleeper = (name: string, net: string, more: string[] = []) =>
        t(["run", "-d", "--network", net, ...more, ...quiet, "--name", name, fx.refs.busybox]
          .concat(["sleep", "300"]));
      assertEquals((await sleeper("t-e6", "t-v6", ["--ip6", mine6])).code, 0);
      const e6 = JSON.parse(await ok(["inspect", "t-e6"]))[0].NetworkSettings.Networks["t-v6"];
      assertEquals(e6.GlobalIPv6Address, mine6);
      assertEquals(e6.IPAMConfig, { IPv6Address: mine6 });
      assertStringIncludes(
        await ok(["exec", "t-e6", "ip", "-6", "addr", "show", "dev", "eth0"]),
        `inet6 ${mine6}/64`,
      );
      const seen6 = await ok([
        "exec",
        "t-s6",
        "sh",
        "-c",
        "nslookup -type=aaaa t-e6; ping -6 -c 1 -W 3 t-e6",
      ]);
      assertMatch(seen6, new RegExp(`Address: ${mine6}`));
      assertStringIncludes(seen6, "1 packets received");
      // Taken, outside the subnet, or on a network without IPv6: refused, saying why.
      const taken = await sleeper("t-f6", "t-v6", ["--ip6", mine6]);
      assertEquals(taken.code, 125, taken.stderr);
      assertStringIncludes(taken.stderr, `address ${mine6} is already in use on network t-v6`);
      await t(["rm", "-f", "t-f6"]);
      const outside = await sleeper("t-f6", "t-v6", ["--ip6", "fd99::5"]);
      assertEquals(outside.code, 125, outside.stderr);
      assertStringIncludes(outside.stderr, `is not in network t-v6's subnet ${subnet6}`);
      await ok(["network", "create", "t-v4only"]);
      const v4only = await sleeper("t-f6", "t-v4only", ["--ip6", mine6]);
      assertEquals(v4only.code, 125, v4only.stderr);
      assertStringIncludes(v4only.stderr, "network t-v4only has no IPv6 subnet");
      // network connect --ip6 of a running container on another network.
      assertEquals((await sleeper("t-c6", "t-v4only")).code, 0);
      const joined6 = `fd42:7b:${g6}::77`;
      await ok(["network", "connect", "--ip6", joined6, "t-v6", "t-c6"]);
      const c6 = JSON.parse(await ok(["inspect", "t-c6"]))[0].NetworkSettings.Networks["t-v6"];
      assertEquals(c6.GlobalIPv6Address, joined6);
      assertStringIncludes(await ok(["exec", "t-c6", "ip", "-6", "addr"]), `inet6 ${joined6}/64`);
      assertStringIncludes(
        await ok(["exec", "t-s6", "ping", "-6", "-c", "1", "-W", "3", joined6]),
        "1 packets received",
      );
      await ok(["rm", "-f", "t-e6", "t-c6"]);
      await ok(["network", "rm", "t-v4only"]);

      await ok(["rm", "-f", "t-s6"]);
      await ok(["network", "rm", "t-v6"]);
      const left = must(sh("ip", "-n", ns, "-br", "link"), "links").split("\n")
        .filter((l) => l.startsWith("tsb") && !l.startsWith(vt));
      assertEquals(left, [], "tsbox links left in the namespace");
      assertEquals(sh("ip", "netns", "exec", ns, "nft", "list", "table", "inet", "tsbox").code, 1);
    } finally {
      if (server) {
        try {
          server.kill("SIGTERM");
        } catch { /* ended */ }
        await server.status;
        await reading;
      }
      await t(["rm", "-f", "t-s6", "t-e6", "t-f6", "t-c6"]).catch(() => {});
      await t(["network", "rm", "t-v6", "t-v4only"]).catch(() => {});
      sh("ip", "netns", "del", up);
      sh("ip", "netns", "del", ns);
      // Whatever networks a failure left recorded lived in the namespace, gone now: the store's
      // cleanup must not look for their bridges on the host (one could be named tsbox0).
      try {
        const db = new DatabaseSync(`${root}/tsbox.db`);
        db.exec("DELETE FROM network_leases; DELETE FROM networks;");
        db.close();
      } catch { /* no database */ }
      await cleanup();
      await Deno.remove(www, { recursive: true });
      try {
        const pid = Number(Deno.readTextFileSync(`${dnsDir}/aardvark.pid`).trim());
        if (Deno.readTextFileSync(`/proc/${pid}/comm`).trim() === "aardvark-dns") {
          Deno.kill(pid, "SIGKILL"); // this test's own, if a failure left it
        }
      } catch { /* ended by itself */ }
      await Deno.remove(dnsDir, { recursive: true }).catch(() => {});
    }
  },
});
