/**
 * Names for a container on two user networks (root), as docker's embedded DNS gives them: a
 * container on net1 and net2 resolves names on both; one on a single network resolves only its
 * own network's names; `network connect` of a running container adds the names of the network
 * it joins, and `network disconnect` takes them away again.
 *
 * The test has an aardvark-dns of its own (TSBOX_DNS_DIR) serving only its networks; containers
 * get `--dns 127.0.0.1` (nothing listens there) so that no name ever goes to the host's resolvers.
 */
import { fixtureRegistry } from "./fixtures/images.ts";
import { assertEquals, assertOk } from "./assert.ts";
import { tempRoot, tsbox } from "./cli.ts";

const isRoot = Deno.uid() === 0;

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

/** Ends this test's own aardvark-dns (if a failure left it) and removes its directory. */
async function removeDnsDir(dir: string): Promise<void> {
  try {
    const pid = Number(Deno.readTextFileSync(`${dir}/aardvark.pid`).trim());
    if (Deno.readTextFileSync(`/proc/${pid}/comm`).trim() === "aardvark-dns") {
      Deno.kill(pid, "SIGKILL");
    }
  } catch { /* none runs */ }
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}

rootTest("a container on two user networks resolves names on both", async () => {
  const fx = await fixtureRegistry();
  const { root, cleanup } = await tempRoot();
  const dnsDir = `/run/tsbox/aardvark-dns-multi-${Deno.pid}`;
  const env = { TSBOX_DNS_DIR: dnsDir };
  const ok = async (args: string[]) => {
    const r = await tsbox(args, { root, env });
    assertEquals(r.code, 0, `tsbox ${args.join(" ")}: ${r.stdout}\n${r.stderr}`);
    return r.stdout;
  };
  const quiet = ["--dns", "127.0.0.1", "--dns-search", "."];
  const sleeper = (name: string, net: string) =>
    ok(["run", "-d", "--network", net, ...quiet, "--name", name, fx.refs.busybox, "sleep", "300"]);
  const ipOn = async (name: string, net: string) =>
    (await ok(["inspect", "-f", `{{(index .NetworkSettings.Networks "${net}").IPAddress}}`, name]))
      .trim();
  /** What `from` gets for `name`: its address, or undefined when the name does not resolve. */
  const resolve = async (from: string, name: string) => {
    const r = await tsbox(["exec", from, "nslookup", name], { root, env });
    const m = r.code === 0 ? /Name:\s+\S+\s+Address(?: 1)?:\s+(\S+)/.exec(r.stdout) : null;
    return m?.[1];
  };
  try {
    await ok(["pull", "-q", fx.refs.busybox]);
    await ok(["network", "create", "t-mdns1"]);
    await ok(["network", "create", "t-mdns2"]);
    await sleeper("t-mb", "t-mdns1");
    await sleeper("t-mc", "t-mdns2");
    // A: on both networks from its start.
    await ok([
      "create",
      "--network",
      "t-mdns1",
      ...quiet,
      "--name",
      "t-ma",
      fx.refs.busybox,
      "sleep",
      "300",
    ]);
    await ok(["network", "connect", "t-mdns2", "t-ma"]);
    await ok(["start", "t-ma"]);
    const b = await ipOn("t-mb", "t-mdns1");
    const c = await ipOn("t-mc", "t-mdns2");
    assertEquals(await until("t-mb from t-ma", () => resolve("t-ma", "t-mb")), b);
    assertEquals(await until("t-mc from t-ma", () => resolve("t-ma", "t-mc")), c);
    // Each name is A's address on the network the asker shares with it.
    assertEquals(
      await until("t-ma from t-mb", () => resolve("t-mb", "t-ma")),
      await ipOn("t-ma", "t-mdns1"),
    );
    assertEquals(
      await until("t-ma from t-mc", () => resolve("t-mc", "t-ma")),
      await ipOn("t-ma", "t-mdns2"),
    );
    // B and C share no network: neither finds the other.
    assertEquals(await resolve("t-mb", "t-mc"), undefined);
    assertEquals(await resolve("t-mc", "t-mb"), undefined);

    // D starts on net1 only; connected to net2 while it runs, it finds C too.
    await sleeper("t-md", "t-mdns1");
    assertEquals(await until("t-mb from t-md", () => resolve("t-md", "t-mb")), b);
    assertEquals(await resolve("t-md", "t-mc"), undefined);
    await ok(["network", "connect", "t-mdns2", "t-md"]);
    assertEquals(await until("t-mc from t-md after connect", () => resolve("t-md", "t-mc")), c);
    assertEquals(await resolve("t-md", "t-mb"), b, "its first network's names stay");
    const resolvConf = await ok(["exec", "t-md", "cat", "/etc/resolv.conf"]);
    assertOk(
      resolvConf.split("\n").filter((l) => l.startsWith("nameserver")).length === 2,
      `one nameserver per user network: ${resolvConf}`,
    );
    // Disconnected from net1 again: net1's names go, net2's stay (its other server answers).
    await ok(["network", "disconnect", "t-mdns1", "t-md"]);
    assertEquals(
      await until("t-mb gone from t-md", async () => {
        return (await resolve("t-md", "t-mb")) === undefined ? true : undefined;
      }),
      true,
    );
    assertEquals(await resolve("t-md", "t-mc"), c);

    await ok(["rm", "-f", "t-ma", "t-mb", "t-mc", "t-md"]);
    await ok(["network", "rm", "t-mdns1", "t-mdns2"]);
  } finally {
    await cleanup();
    await removeDnsDir(dnsDir);
  }
});
