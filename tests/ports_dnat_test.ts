/**
 * Published ports of a bridged container through the kernel (root): DNAT rules in tsbox's
 * nftables table, not the userspace proxy. Traffic goes only to 127.0.0.1 and to the default
 * bridge tsbox made (its gateway, and containers on it).
 *
 * What shows the proxy is not on the path: nginx logs each request's peer address. The proxy
 * connects from inside the container's namespace, so nginx would see 127.0.0.1; a DNAT'ed
 * connection arrives from the bridge's gateway (masqueraded from 127.0.0.1, or made from the
 * gateway address itself).
 */
import { fixtureRegistry, NGINX_MARKER } from "./fixtures/images.ts";
import { assertEquals, assertOk, assertStringIncludes } from "./assert.ts";
import { rootTest, tempRoot, tsbox } from "./cli.ts";
import { readAll, writeAll } from "./conn.ts";

interface Env {
  refs: { busybox: string; nginx: string };
  t: (args: string[]) => ReturnType<typeof tsbox>;
  ok: (args: string[]) => Promise<string>;
}

let shared: Promise<Env> | undefined;
function env(): Promise<Env> {
  shared ??= (async () => {
    const fx = await fixtureRegistry();
    const { root } = await tempRoot();
    const t = (args: string[]) => tsbox(args, { root });
    const ok = async (args: string[]) => {
      const r = await t(args);
      assertEquals(r.code, 0, `tsbox ${args.join(" ")}: ${r.stdout}\n${r.stderr}`);
      return r.stdout;
    };
    for (const name of ["busybox", "nginx"] as const) await ok(["pull", "-q", fx.refs[name]]);
    return { refs: fx.refs, t, ok };
  })();
  return shared;
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** One HTTP/1.0 GET of `/` at host:port; the whole response. */
async function httpGet(hostname: string, port: number): Promise<string> {
  const conn = await Deno.connect({ hostname, port });
  try {
    await writeAll(conn, new TextEncoder().encode(`GET / HTTP/1.0\r\nHost: x\r\n\r\n`));
    return new TextDecoder().decode(await readAll(conn));
  } finally {
    conn.close();
  }
}

function marker(hostname: string, port: number): Promise<string> {
  return until(`nginx at ${hostname}:${port}`, async () => {
    const text = await httpGet(hostname, port);
    return text.includes(NGINX_MARKER) ? text : undefined;
  });
}

async function refused(hostname: string, port: number): Promise<boolean> {
  try {
    const c = await Deno.connect({ hostname, port });
    c.close();
    return false;
  } catch (err) {
    return err instanceof Deno.errors.ConnectionRefused;
  }
}

/** tsbox's DNAT rules for container `id`, as the `nft` program lists them. */
function dnatRules(id: string): string[] {
  const out = new Deno.Command("nft", { args: ["list", "ruleset"], stdout: "piped" }).outputSync();
  return new TextDecoder().decode(out.stdout).split("\n")
    .filter((l) => l.includes(`comment "tsbox ${id}"`)).map((l) => l.trim());
}

function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(")") + 2));
  } catch {
    return false;
  }
}

function parentOf(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
}

rootTest(
  "-p of a bridged nginx is DNAT: loopback and gateway serve it, no proxy, rules gone after stop/rm/kill -9",
  async () => {
    const e = await env();
    const local = freePort();
    const any = freePort();
    const id = (await e.ok([
      "run",
      "-d",
      "--name",
      "t-dnat",
      "-p",
      `127.0.0.1:${local}:80`,
      "-p",
      `${any}:80`,
      e.refs.nginx,
    ])).trim();
    try {
      const info = JSON.parse(await e.ok(["inspect", id]))[0];
      const ip = info.NetworkSettings.IPAddress as string;
      const gateway = info.NetworkSettings.Gateway as string;
      assertOk(/^\d+\.\d+\.\d+\.\d+$/.test(ip) && gateway !== "", JSON.stringify(info));

      const rules = dnatRules(id);
      assertEquals(rules.length, 2, rules.join("\n"));
      assertOk(
        rules.some((r) => r.includes(`ip daddr 127.0.0.1 tcp dport ${local} dnat ip to ${ip}:80`)),
        rules.join("\n"),
      );
      assertOk(
        rules.some((r) =>
          !r.includes("daddr") && r.includes(`tcp dport ${any} dnat ip to ${ip}:80`)
        ),
        rules.join("\n"),
      );

      await marker("127.0.0.1", local);
      await marker("127.0.0.1", any);
      await marker(gateway, any);
      // 127.0.0.1:local is published on loopback only: the gateway's address does not reach it.
      assertOk(await refused(gateway, local), "a 127.0.0.1 port answered on the gateway");
      // A container on the same bridge reaches the host's published port (hairpin).
      const hairpin = await e.ok([
        "run",
        "--rm",
        e.refs.busybox,
        "wget",
        "-q",
        "-O",
        "-",
        `http://${gateway}:${any}/`,
      ]);
      assertStringIncludes(hairpin, NGINX_MARKER);

      // nginx saw every request come from the gateway (masqueraded or made there), never from
      // 127.0.0.1 inside its namespace, where the userspace proxy would connect from.
      const logs = await until("nginx's access log", async () => {
        const r = await e.t(["logs", id]);
        const lines = r.stdout.split("\n").filter((l) => l.includes('"GET / HTTP/1.0"'));
        return lines.length >= 3 ? lines : undefined;
      });
      assertOk(logs.every((l) => l.startsWith(`${gateway} `)), logs.join("\n"));

      // The port is held: another container cannot publish it.
      const clash = await e.t(["run", "-d", "-p", `127.0.0.1:${local}:80`, e.refs.nginx]);
      assertEquals(clash.code, 125, clash.stderr);
      assertStringIncludes(clash.stderr, "port is already allocated");
      // So is the wildcard one, against a host program.
      let bound = false;
      try {
        Deno.listen({ hostname: "0.0.0.0", port: any }).close();
        bound = true;
      } catch (err) {
        assertOk(err instanceof Deno.errors.AddrInUse, String(err));
      }
      assertOk(!bound, `port ${any} could be bound while published`);

      await e.ok(["stop", "-t", "1", id]);
      assertEquals(dnatRules(id), [], "rules left after stop");
      assertOk(await refused("127.0.0.1", local), "the port answers after stop");

      await e.ok(["start", id]);
      assertEquals(dnatRules(id).length, 2);
      await marker("127.0.0.1", local);

      // A supervisor killed outright removes nothing; the next command does.
      const pid1 = JSON.parse(await e.ok(["inspect", id]))[0].State.Pid as number;
      const supervisor = parentOf(pid1);
      assertOk(supervisor > 1 && alive(supervisor));
      Deno.kill(supervisor, "SIGKILL");
      await until(
        "PID 1 to die with its supervisor",
        () => Promise.resolve(alive(pid1) ? undefined : true),
      );
      await e.ok(["ps", "-a"]);
      assertEquals(dnatRules(id), [], "rules left after kill -9 and ps -a");

      await e.ok(["start", id]);
      assertEquals(dnatRules(id).length, 2);
      await marker("127.0.0.1", any);
    } finally {
      await e.t(["rm", "-f", id]);
    }
    assertEquals(dnatRules(id), [], "rules left after rm -f");
    assertOk(await refused("127.0.0.1", local), "the port answers after rm -f");
  },
);

rootTest("--network none and private keep publishing as before", async () => {
  const e = await env();
  const port = freePort();
  // A private namespace without a bridge: the userspace proxy serves it (nginx sees 127.0.0.1).
  const id = (await e.ok([
    "run",
    "-d",
    "--network",
    "private",
    "-p",
    `127.0.0.1:${port}:80`,
    e.refs.nginx,
  ])).trim();
  try {
    assertEquals(dnatRules(id), []);
    await marker("127.0.0.1", port);
    const logs = await until("nginx's access log", async () => {
      const r = await e.t(["logs", id]);
      const lines = r.stdout.split("\n").filter((l) => l.includes('"GET / HTTP/1.0"'));
      return lines.length >= 1 ? lines : undefined;
    });
    assertOk(logs.every((l) => l.startsWith("127.0.0.1 ")), logs.join("\n"));
  } finally {
    await e.t(["rm", "-f", id]);
  }
});

/**
 * A shell line sending one GET to host:port with busybox nc (busybox-static's wget dies with
 * SIGSEGV in a container on a user network, whatever it fetches), printing the response.
 */
function ncGet(host: string, port: number): string {
  return `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 ${host} ${port}; true`;
}

rootTest(
  "DNAT reaches a server bound to 127.0.0.1 in the container, from other networks too; peers are not redirected",
  async () => {
    const e = await env();
    const port = freePort();
    const net = `t-dnat-${Deno.pid}`;
    await e.ok(["network", "create", net]);
    const ids: string[] = [];
    try {
      // httpd on 127.0.0.1:8000 only, as the userspace proxy has always reached it, and one on
      // the container's address only (8001), which the proxy never reached.
      const second = freePort();
      const id = (await e.ok([
        "run",
        "-d",
        "-p",
        `${port}:8000`,
        "-p",
        `127.0.0.1:${second}:8001`,
        e.refs.busybox,
        "sh",
        "-c",
        "mkdir /w /v && echo loopback-page > /w/index.html && echo address-page > /v/index.html" +
        " && httpd -p 127.0.0.1:8000 -h /w && ip=$(ip -4 -o addr show dev eth0 | " +
        "sed 's|.*inet \\([0-9.]*\\)/.*|\\1|') && exec httpd -f -p $ip:8001 -h /v",
      ])).trim();
      ids.push(id);
      assertEquals(dnatRules(id).length, 2);
      const info = JSON.parse(await e.ok(["inspect", id]))[0];
      const ip = info.NetworkSettings.IPAddress as string;
      const gateway = info.NetworkSettings.Gateway as string;
      const get = (host: string) =>
        until(`httpd at ${host}:${port}`, async () => {
          const text = await httpGet(host, port);
          return text.includes("loopback-page") ? text : undefined;
        });
      await get("127.0.0.1");
      await get(gateway);
      // A container on another network reaches the published port through the host.
      const other = await e.t([
        "run",
        "--rm",
        "--network",
        net,
        e.refs.busybox,
        "sh",
        "-c",
        ncGet(gateway, port),
      ]);
      assertEquals(other.code, 0, other.stderr);
      assertStringIncludes(other.stdout, "loopback-page");
      // A peer on the same network connecting to the container's address directly is not
      // rewritten to its loopback: the server listens on 127.0.0.1 only, so it is refused.
      const peer = await e.t(["run", "--rm", e.refs.busybox, "sh", "-c", ncGet(ip, 8000)]);
      assertEquals(peer.code, 0, peer.stderr);
      assertOk(!peer.stdout.includes("loopback-page"), peer.stdout);
      // The server on the container's address: its peers reach it there as before, and the
      // published port does not (as through the proxy, which connected to 127.0.0.1).
      const direct = await e.t(["run", "--rm", e.refs.busybox, "sh", "-c", ncGet(ip, 8001)]);
      assertStringIncludes(direct.stdout, "address-page");
      assertOk(await refused("127.0.0.1", second), "a server on the container's address answered");
      // Leaving the network takes the rules with the address (it may go to another container).
      await e.ok(["network", "disconnect", "bridge", id]);
      assertEquals(dnatRules(id), [], "rules left after network disconnect");
    } finally {
      for (const id of ids) await e.t(["rm", "-f", id]);
      await e.t(["network", "rm", net]);
    }
  },
);
