/**
 * Names on bridge networks when things around them fail (root): aardvark-dns killed while
 * containers run (their supervisors, which wait on a pidfd of it rather than checking now and
 * then, start it again, and names resolve again without any tsbox command), and a host whose /etc/resolv.conf names only a loopback resolver (systemd-resolved's
 * 127.0.0.53 style), where containers on the default bridge and on a user network still resolve
 * other names, through aardvark-dns forwarding to that resolver from the host's namespace.
 *
 * Each test has an aardvark-dns of its own (TSBOX_DNS_DIR): the one it kills is one its own
 * containers started, serving only its networks. DNS traffic goes only to tsbox's bridges and to
 * loopback: containers get `--dns 127.0.0.1` where no upstream is meant to be asked (nothing
 * listens there), and the loopback "host resolver" is a tiny responder of the test's own on
 * 127.0.0.153; the host's real resolvers are never asked.
 */
import { fixtureRegistry } from "./fixtures/images.ts";
import { assertEquals, assertMatch, assertOk, assertStringIncludes } from "./assert.ts";
import { tempRoot, tsbox } from "./cli.ts";
import { dnsResponder } from "./upstream_ns.ts";

const isRoot = Deno.uid() === 0;
const MAIN = new URL("../main.ts", import.meta.url).pathname;

function rootTest(name: string, fn: () => Promise<void>) {
  Deno.test({ name, ignore: !isRoot, sanitizeResources: false, sanitizeOps: false, fn });
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

/** The live aardvark-dns of config directory `dir` (from its pid file), or undefined. */
function aardvarkOf(dir: string): number | undefined {
  try {
    const pid = Number(Deno.readTextFileSync(`${dir}/aardvark.pid`).trim());
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    const comm = Deno.readTextFileSync(`/proc/${pid}/comm`).trim();
    return comm === "aardvark-dns" && state !== "Z" ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** The PID of the supervisor of container `id` in store `root` (its command line names both). */
function supervisorOf(root: string, name: string, id: string): number {
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const args = Deno.readTextFileSync(`/proc/${entry.name}/cmdline`).split("\0");
      // The sources' entry, or their bundle (src/container/supervisor_bundle.ts).
      const at = args.findIndex((a) =>
        a.endsWith("supervisor_main.ts") || a.endsWith(".supervisor_bundle.js")
      );
      if (at >= 0 && args[at + 1] === root && id.trim().startsWith(args[at + 2])) {
        return Number(entry.name);
      }
    } catch { /* ended */ }
  }
  throw new Error(`no supervisor of ${name} found`);
}

/** The processes whose pidfds process `pid` holds (fdinfo's `Pid:` of each pidfd). */
function pidfdTargets(pid: number): number[] {
  const out: number[] = [];
  for (const fd of Deno.readDirSync(`/proc/${pid}/fd`)) {
    try {
      if (Deno.readLinkSync(`/proc/${pid}/fd/${fd.name}`) !== "anon_inode:[pidfd]") continue;
      const m = /^Pid:\s+(-?\d+)/m.exec(Deno.readTextFileSync(`/proc/${pid}/fdinfo/${fd.name}`));
      if (m) out.push(Number(m[1]));
    } catch { /* closed meanwhile */ }
  }
  return out;
}

/** Ends this test's own aardvark-dns (if a failure left it) and removes its directory. */
async function removeDnsDir(dir: string): Promise<void> {
  const pid = aardvarkOf(dir);
  if (pid !== undefined) Deno.kill(pid, "SIGKILL");
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}

rootTest("aardvark-dns killed: the supervisors start it again and names resolve", async () => {
  const fx = await fixtureRegistry();
  const { root, cleanup } = await tempRoot();
  const dnsDir = `/run/tsbox/aardvark-dns-test-${Deno.pid}`;
  const env = { TSBOX_DNS_DIR: dnsDir };
  const ok = async (args: string[]) => {
    const r = await tsbox(args, { root, env });
    assertEquals(r.code, 0, `tsbox ${args.join(" ")}: ${r.stdout}\n${r.stderr}`);
    return r.stdout;
  };
  const quiet = ["--dns", "127.0.0.1", "--dns-search", "."];
  try {
    await ok(["pull", "-q", fx.refs.busybox]);
    await ok(["network", "create", "t-dnsw"]);
    for (const name of ["t-a", "t-b"]) {
      await ok([
        "run",
        "-d",
        "--network",
        "t-dnsw",
        ...quiet,
        "--name",
        name,
        fx.refs.busybox,
        "sleep",
        "300",
      ]);
    }
    const ipOfA = (await ok([
      "inspect",
      "-f",
      "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
      "t-a",
    ])).trim();
    const lookup = async () => {
      const r = await tsbox(["exec", "t-b", "nslookup", "t-a"], { root, env });
      return r.code === 0 && r.stdout.includes(`Address: ${ipOfA}`) ? r.stdout : undefined;
    };
    await until("t-a by name", lookup);
    const first = aardvarkOf(dnsDir);
    assertOk(first, "no aardvark-dns runs for the test's network");
    // The supervisors wait on a pidfd of it (no periodic checks): t-a's holds one of `first`.
    const supervisor = supervisorOf(root, "t-a", await ok(["inspect", "-f", "{{.Id}}", "t-a"]));
    await until(
      "t-a's supervisor to hold a pidfd of aardvark-dns",
      () => Promise.resolve(pidfdTargets(supervisor).includes(first!) ? true : undefined),
    );
    Deno.kill(first!, "SIGKILL");
    // No tsbox command in between: the running containers' supervisors notice and start it.
    const second = await until("a new aardvark-dns", () => {
      const pid = aardvarkOf(dnsDir);
      return Promise.resolve(pid !== undefined && pid !== first ? pid : undefined);
    });
    assertOk(second !== first);
    assertMatch(await until("t-a by name after the restart", lookup), /Name:\s+t-a/);
    await until(
      "t-a's supervisor to wait on the new aardvark-dns",
      () => Promise.resolve(pidfdTargets(supervisor).includes(second) ? true : undefined),
    );
    await ok(["rm", "-f", "t-a", "t-b"]);
    await ok(["network", "rm", "t-dnsw"]);
    // With its last network gone aardvark-dns ends by itself, and is not started again.
    await until("aardvark-dns to end", () => {
      return Promise.resolve(aardvarkOf(dnsDir) === undefined ? true : undefined);
    });
  } finally {
    await cleanup();
    await removeDnsDir(dnsDir);
  }
});

rootTest(
  "a host with only a loopback resolver: containers resolve through aardvark-dns",
  async () => {
    const fx = await fixtureRegistry();
    const { root, cleanup } = await tempRoot();
    const dnsDir = `/run/tsbox/aardvark-dns-test-${Deno.pid}-lo`;
    const env = { TSBOX_DNS_DIR: dnsDir };
    const work = await Deno.makeTempDir({ prefix: "tsbox-dns-lo-" });
    const resolvConf = `${work}/resolv.conf`;
    // The host as systemd-resolved leaves it: one nameserver, on loopback.
    await Deno.writeTextFile(resolvConf, "nameserver 127.0.0.153\noptions edns0\n");
    const responder = new Deno.Command("/usr/bin/python3", {
      args: ["-c", dnsResponder("127.0.0.153"), JSON.stringify({ "outside.test": "198.51.100.7" })],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let asked = "";
    const reading = (async () => {
      for await (const chunk of responder.stdout.pipeThrough(new TextDecoderStream())) {
        asked += chunk;
      }
    })();
    /**
     * tsbox in a mount namespace of its own where /etc/resolv.conf is the file above (and so are
     * the supervisors and the aardvark-dns it starts); the host's file is untouched.
     */
    const onLoopbackHost = async (args: string[]) => {
      const out = await new Deno.Command("unshare", {
        args: [
          "-m",
          "--propagation",
          "private",
          "sh",
          "-c",
          `mount --bind "$0" /etc/resolv.conf && exec "$@"`,
          resolvConf,
          Deno.execPath(),
          "run",
          "-A",
          "--quiet",
          MAIN,
          "--root",
          root,
          ...args,
        ],
        env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1", ...env },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
      const dec = new TextDecoder();
      const r = { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
      assertEquals(r.code, 0, `tsbox ${args.join(" ")}: ${r.stdout}\n${r.stderr}`);
      return r.stdout;
    };
    try {
      const pulled = await tsbox(["pull", "-q", fx.refs.busybox], { root, env });
      assertEquals(pulled.code, 0, pulled.stderr);
      const gatewayOf = async (net: string) =>
        JSON.parse(await onLoopbackHost(["network", "inspect", net]))[0].IPAM.Config[0].Gateway;
      await onLoopbackHost(["network", "create", "t-lo"]);
      for (const net of ["bridge", "t-lo"]) {
        const out = await onLoopbackHost([
          "run",
          "--rm",
          "--network",
          net,
          fx.refs.busybox,
          "sh",
          "-c",
          "cat /etc/resolv.conf; echo ---; nslookup outside.test",
        ]);
        const [resolv, answer] = out.split("---\n");
        // Not the loopback address (unreachable from the container): the bridge's gateway.
        assertEquals(resolv.split("\n")[0], `nameserver ${await gatewayOf(net)}`, net);
        assertStringIncludes(resolv, "options edns0");
        assertMatch(answer, /Address:\s+198\.51\.100\.7/, `${net}: ${answer}`);
      }
      assertStringIncludes(asked, "outside.test");
      // --dns on the default bridge: the container asks that server itself, as docker's.
      const own = await onLoopbackHost([
        "run",
        "--rm",
        "--dns",
        "127.0.0.1",
        fx.refs.busybox,
        "head",
        "-1",
        "/etc/resolv.conf",
      ]);
      assertEquals(own, "nameserver 127.0.0.1\n");
      await onLoopbackHost(["network", "rm", "t-lo"]);
    } finally {
      try {
        responder.kill("SIGKILL");
      } catch { /* ended */ }
      await responder.status;
      await reading;
      await responder.stderr.cancel().catch(() => {});
      await cleanup();
      await removeDnsDir(dnsDir);
      await Deno.remove(work, { recursive: true });
    }
  },
);
