/**
 * The bridge-network substrate end to end, without tsbox containers (root): network namespaces
 * made by the test stand for containers, attached with attachContainer; an "upstream" host
 * (198.51.100.1/24, a documentation range) lives in a namespace of the test's own behind its own
 * veth pair, with a route for that /24 only, checked before the first packet. Nothing is sent to
 * any other address. Checks: the upstream is reached and sees the host's address (masquerade);
 * containers on one network reach each other, a container on another network does not; an
 * internal network reaches nothing outside; afterwards no link, namespace or nftables rule of the
 * test or of tsbox remains.
 */
import { assertEquals, assertNotEquals, assertOk } from "./assert.ts";
import { closeNamespaceFd, openNamespaceFile } from "../ffi/namespace.ts";
import { Store } from "../src/store/mod.ts";
import {
  attachContainer,
  createNetwork,
  detachContainer,
  ipForwarding,
  type NetworkRecord,
  removeNetwork,
} from "../src/network/mod.ts";
import { vethName } from "../src/network/ipam.ts";
import {
  canaryTable,
  makeUpstream,
  UPSTREAM,
  type Upstream,
  UPSTREAM_HOST_SIDE,
} from "./upstream_ns.ts";

const isRoot = Deno.uid() === 0;
const tag = `${Deno.pid % 100000}`;

function run(cmd: string, ...args: string[]): { code: number; out: string; err: string } {
  const r = new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).outputSync();
  const dec = new TextDecoder();
  return { code: r.code, out: dec.decode(r.stdout), err: dec.decode(r.stderr) };
}
function ip(...args: string[]) {
  return run("ip", ...args);
}
function must(r: { code: number; out: string; err: string }, what: string): string {
  assertEquals(r.code, 0, `${what}: ${r.err}`);
  return r.out;
}

function linkNames(): string[] {
  return (JSON.parse(ip("-j", "link", "show").out) as { ifname: string }[])
    .map((l) => l.ifname).sort();
}
/** tsbox's table as text (empty without it). */
function tsboxText(): string {
  return run("nft", "list", "table", "inet", "tsbox").out;
}

/** curl from inside a namespace; the body, or undefined when the fetch failed. */
async function fetchIn(ns: string, url: string): Promise<string | undefined> {
  const out = await new Deno.Command("ip", {
    args: ["netns", "exec", ns, "curl", "-s", "--max-time", "4", url],
    stdout: "piped",
    stderr: "null",
  }).output();
  return out.code === 0 ? new TextDecoder().decode(out.stdout) : undefined;
}

/** A python http.server in a namespace, serving `dir`; its stderr (the access log) kept. */
function serve(ns: string, dir: string, port: number) {
  const child = new Deno.Command("ip", {
    args: ["netns", "exec", ns, "/usr/bin/python3", "-m", "http.server", "-d", dir, String(port)],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let log = "";
  const reading = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) log += chunk;
  })();
  return {
    log: () => log,
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch { /* gone */ }
      await child.status;
      await reading;
    },
  };
}

async function until(what: string, cond: () => Promise<boolean>): Promise<void> {
  const end = Date.now() + 20_000;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

Deno.test({
  name: "bridge networks: upstream through masquerade, isolation between networks, internal " +
    "networks closed, nothing left after removal",
  ignore: !isRoot,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const linksBefore = linkNames();
    const canary = canaryTable();
    const forwardBefore = ipForwarding();
    const up = `tsbox-up-${tag}`;
    const [c1, c2, c3, c4] = ["c1", "c2", "c3", "c4"].map((c) => `tsbox-${c}-${tag}`);
    let upstream: Upstream | undefined;
    const root = await Deno.makeTempDir({ prefix: "tsbox-net-test-" });
    const www = await Deno.makeTempDir({ prefix: "tsbox-net-www-" });
    await Deno.writeTextFile(`${www}/marker`, `marker ${tag}\n`);
    const store = await Store.open(root);
    const nets: NetworkRecord[] = [];
    const holders: [NetworkRecord, string][] = [];
    const servers: { stop(): Promise<void> }[] = [];
    const fds: number[] = [];
    let sleeper: Deno.ChildProcess | undefined;
    try {
      // The upstream host: its own namespace behind the test's own veth pair, the route to it
      // checked before any packet (upstream_ns.ts).
      upstream = await makeUpstream(up, `tsbu${tag}`, www, 8000);
      for (const ns of [c1, c2, c3, c4]) must(ip("netns", "add", ns), `netns add ${ns}`);

      const a = createNetwork(store, { name: `a${tag}` });
      const b = createNetwork(store, { name: `b${tag}` });
      const c = createNetwork(store, { name: `c${tag}`, internal: true });
      nets.push(a, b, c);
      assertEquals(new Set([a.subnet, b.subnet, c.subnet]).size, 3);

      const fdOf = (ns: string) => {
        const fd = openNamespaceFile(`/run/netns/${ns}`);
        fds.push(fd);
        return fd;
      };
      const at1 = attachContainer(store, { netnsFd: fdOf(c1) }, a, { holder: "h1" });
      holders.push([a, "h1"]);
      // c2 by the pid of a process inside it.
      sleeper = new Deno.Command("ip", {
        args: ["netns", "exec", c2, "sleep", "300"],
        stdout: "null",
        stderr: "null",
      }).spawn();
      await until("sleep in c2", () =>
        Promise.resolve(
          Deno.readLinkSync(`/proc/${sleeper!.pid}/ns/net`) !==
            Deno.readLinkSync("/proc/self/ns/net"),
        ));
      const at2 = attachContainer(store, { pid: sleeper.pid }, a, { holder: "h2" });
      holders.push([a, "h2"]);
      const at3 = attachContainer(store, { netnsFd: fdOf(c3) }, b, { holder: "h3" });
      holders.push([b, "h3"]);
      const at4 = attachContainer(store, { netnsFd: fdOf(c4) }, c, { holder: "h4" });
      holders.push([c, "h4"]);

      // What the kernel has: eth0 with the leased address and MAC, default route via gateway.
      const eth0 = JSON.parse(must(ip("-n", c1, "-j", "addr", "show", "eth0"), "addr c1")) as {
        address: string;
        addr_info: { family: string; local: string; prefixlen: number }[];
      }[];
      assertEquals(eth0[0].address, at1.mac);
      assertEquals(
        eth0[0].addr_info.filter((i) => i.family === "inet").map((i) =>
          `${i.local}/${i.prefixlen}`
        ),
        [`${at1.ip}/24`],
      );
      assertOk(
        must(ip("-n", c1, "route", "show", "default"), "route").includes(`via ${a.gateway}`),
      );
      assertEquals(ip("-n", c4, "route", "show", "default").out.trim(), "", "internal: no default");
      assertEquals(at1.gateway, a.gateway);
      assertNotEquals(at1.ip, at2.ip);
      const master = JSON.parse(must(ip("-j", "link", "show", at1.vethHost), "veth")) as {
        master: string;
      }[];
      assertEquals(master[0].master, a.bridge);

      // Upstream reached; it sees the host's address, not the container's.
      await until(
        "upstream server",
        async () => (await fetchIn(up, `http://${UPSTREAM}:8000/marker`)) !== undefined,
      );
      assertEquals(await fetchIn(c1, `http://${UPSTREAM}:8000/marker`), `marker ${tag}\n`);
      const seen = upstream.log().split("\n").filter((l) => l.includes("GET /marker")).map((l) =>
        l.split(" ")[0]
      );
      assertOk(seen.includes(UPSTREAM_HOST_SIDE), `upstream saw ${seen.join(", ")}`);
      assertOk(!seen.includes(at1.ip), "the container's own address reached the upstream");

      // Same network: c1 reaches c2; another network (c3) does not, by address.
      servers.push(serve(c2, www, 8080));
      await until(
        "server in c2",
        async () => (await fetchIn(c2, `http://127.0.0.1:8080/marker`)) !== undefined,
      );
      assertEquals(await fetchIn(c1, `http://${at2.ip}:8080/marker`), `marker ${tag}\n`);
      assertEquals(await fetchIn(c3, `http://${UPSTREAM}:8000/marker`), `marker ${tag}\n`);
      assertEquals(await fetchIn(c3, `http://${at2.ip}:8080/marker`), undefined, "b reached a");

      // Internal: no route out, and with one added by hand the firewall still drops it.
      assertEquals(await fetchIn(c4, `http://${UPSTREAM}:8000/marker`), undefined);
      must(ip("-n", c4, "route", "add", "default", "via", c.gateway), "route c4");
      assertEquals(
        await fetchIn(c4, `http://${UPSTREAM}:8000/marker`),
        undefined,
        "internal got out",
      );
      assertEquals(await fetchIn(c4, `http://${at2.ip}:8080/marker`), undefined, "c reached a");
      assertOk(at4.ip.startsWith(c.subnet.split(".").slice(0, 3).join(".")));

      // Detach: the veth pairs go, the address comes back.
      for (const [n, h] of holders.splice(0)) assertOk(detachContainer(store, n, h));
      assertEquals(detachContainer(store, a, "h1"), false);
      assertEquals(ip("-n", c1, "-j", "link", "show", "eth0").code === 0, false);
      assertEquals(at3.ifname, "eth0");
    } finally {
      for (const [n, h] of holders) {
        try {
          detachContainer(store, n, h);
        } catch (err) {
          console.error(`cleanup: detach ${h}: ${err}`);
        }
      }
      for (const n of nets) {
        try {
          removeNetwork(store, n.id);
        } catch (err) {
          console.error(`cleanup: network rm ${n.name}: ${err}`);
        }
      }
      for (const s of servers) await s.stop();
      if (sleeper) {
        try {
          sleeper.kill("SIGKILL");
        } catch { /* gone */ }
        await sleeper.status;
      }
      for (const fd of fds) closeNamespaceFd(fd);
      await upstream?.remove();
      for (const ns of [c1, c2, c3, c4]) ip("netns", "del", ns);
      if (!forwardBefore) Deno.writeTextFileSync("/proc/sys/net/ipv4/ip_forward", "0\n");
      store.close();
      await Deno.remove(root, { recursive: true });
      await Deno.remove(www, { recursive: true });
    }
    // Links this test made and left: its bridges and veths (other processes' links, of tests
    // running at the same time, come and go meanwhile).
    const mine = new Set([
      ...nets.map((n) => n.bridge),
      ...holders.map(([n, h]) => vethName(n.id, h)),
      `tsbu${tag}h`,
    ]);
    assertEquals(
      linkNames().filter((n) => !linksBefore.includes(n) && mine.has(n)),
      [],
      "links left behind",
    );
    assertOk(canary.unchanged(), `another table changed: ${canary.text()}`);
    canary.remove();
    // By bridge name: a subnet freed here may be another store's a moment later.
    const table = tsboxText();
    for (const n of nets) {
      assertOk(!table.includes(`"${n.bridge}"`), `${n.bridge} left in table inet tsbox`);
    }
  },
});
