/**
 * `tsbox network create|ls|inspect|rm|prune` through the CLI (root), on a store of the test's
 * own. A "container" holding an address is a network namespace the test makes, attached with the
 * library (run's wiring comes later); `network rm` must refuse while it holds one, and remove the
 * bridge and tsbox's nftables table after.
 */
import { assertEquals, assertMatch, assertOk, assertStringIncludes } from "./assert.ts";
import { tempRoot, tsbox } from "./cli.ts";
import { canaryTable } from "./upstream_ns.ts";
import { closeNamespaceFd, openNamespaceFile } from "../ffi/namespace.ts";
import { Store } from "../src/store/mod.ts";
import {
  attachContainer,
  detachContainer,
  ipForwarding,
  requireNetwork,
} from "../src/network/mod.ts";

const isRoot = Deno.uid() === 0;

function rootTest(name: string, fn: () => Promise<void>) {
  Deno.test({ name, ignore: !isRoot, sanitizeResources: false, sanitizeOps: false, fn });
}

function run(cmd: string, ...args: string[]): { code: number; out: string } {
  const r = new Deno.Command(cmd, { args, stdout: "piped", stderr: "null" }).outputSync();
  return { code: r.code, out: new TextDecoder().decode(r.stdout) };
}

/** tsbox's table as text (empty without it). */
function tsboxText(): string {
  return run("nft", "list", "table", "inet", "tsbox").out;
}

function linkNames(): string[] {
  return (JSON.parse(run("ip", "-j", "link", "show").out) as { ifname: string }[])
    .map((l) => l.ifname).sort();
}

interface NetworkInspect {
  Name: string;
  Id: string;
  Driver: string;
  Internal: boolean;
  IPAM: { Config: { Subnet: string; Gateway: string }[] };
  Containers: Record<string, { Name: string; IPv4Address: string; MacAddress: string }>;
  Options: Record<string, string>;
  Labels: Record<string, string>;
}

rootTest("network create, ls, inspect, rm and prune, as docker's", async () => {
  const { root, cleanup } = await tempRoot();
  const t = (args: string[], stdin?: string) => tsbox(["network", ...args], { root, stdin });
  try {
    const created = await t([
      "create",
      "--subnet",
      "10.91.250.0/24",
      "--gateway",
      "10.91.250.254",
      "--label",
      "team=web",
      "app",
    ]);
    assertEquals(created.code, 0, created.stderr);
    const id = created.stdout.trim();
    assertMatch(id, /^[0-9a-f]{64}$/);
    assertEquals((await t(["create", "--internal", "back"])).code, 0);

    // Refusals name the thing.
    const again = await t(["create", "app"]);
    assertEquals(again.code, 125);
    assertStringIncludes(again.stderr, "network with name app already exists");
    const overlap = await t(["create", "--subnet", "10.91.0.0/16", "other"]);
    assertEquals(overlap.code, 125);
    assertStringIncludes(overlap.stderr, "overlaps network app's subnet 10.91.250.0/24");
    const bad = await t(["create", "--subnet", "10.91.1.0/33", "other"]);
    assertStringIncludes(bad.stderr, "invalid subnet");
    assertStringIncludes((await t(["create", "host"])).stderr, "pre-defined network");
    assertStringIncludes((await t(["create", "-d", "macvlan", "x"])).stderr, "only bridge");

    // ls: docker's table, -q, --format json.
    const ls = await t(["ls"]);
    assertEquals(ls.code, 0, ls.stderr);
    const lines = ls.stdout.trim().split("\n");
    assertMatch(lines[0], /^NETWORK ID\s+NAME\s+DRIVER\s+SCOPE$/);
    assertEquals(lines.slice(1).map((l) => l.split(/\s+/)[1]), ["app", "back", "bridge"]);
    assertOk(lines.some((l) => l.startsWith(id.slice(0, 12))));
    assertEquals((await t(["ls", "-q"])).stdout.trim().split("\n").length, 3);
    assertOk((await t(["ls", "-q", "--no-trunc"])).stdout.includes(id));
    const json = (await t(["ls", "--format", "json"])).stdout.trim().split("\n")
      .map((l) => JSON.parse(l) as Record<string, string>);
    assertEquals(json.find((n) => n.Name === "back")?.Internal, "true");
    assertEquals(json.find((n) => n.Name === "app")?.Labels, "team=web");
    assertEquals((await t(["ls", "--format", "{{.Name}}"])).stdout, "app\nback\nbridge\n");

    // inspect: docker's shape; a missing one is an error, the others still printed.
    const insp = await t(["inspect", "app", "back", "nosuch"]);
    assertEquals(insp.code, 1);
    assertStringIncludes(insp.stderr, "No such network: nosuch");
    const [app, back] = JSON.parse(insp.stdout) as NetworkInspect[];
    assertEquals([app.Name, app.Id, app.Driver, app.Internal], ["app", id, "bridge", false]);
    assertEquals(app.IPAM.Config, [{ Subnet: "10.91.250.0/24", Gateway: "10.91.250.254" }]);
    assertEquals(app.Labels, { team: "web" });
    assertEquals(app.Options["com.docker.network.bridge.name"], `tsbox-${id.slice(0, 8)}`);
    assertEquals(back.Internal, true);
    assertEquals(
      (await t(["inspect", "-f", "{{.Name}} {{.Internal}}", "back"])).stdout,
      "back true\n",
    );
    assertEquals((await t(["inspect", id.slice(0, 6)])).code, 0, "by id prefix");

    // prune without -f asks; "n" keeps everything.
    const asked = await t(["prune"], "n\n");
    assertEquals(asked.code, 1);
    assertStringIncludes(asked.stdout, "Are you sure you want to continue?");
    assertEquals((await t(["ls", "-q"])).stdout.trim().split("\n").length, 3);
    const pruned = await t(["prune", "-f"]);
    assertEquals(pruned.stdout, "Deleted Networks:\napp\nback\n\n");
    assertEquals((await t(["ls", "--format", "{{.Name}}"])).stdout, "bridge\n");

    // rm: predefined refused; missing reported; exit 1 when one failed.
    assertEquals((await t(["create", "gone"])).code, 0);
    const rm = await t(["rm", "bridge", "gone", "nosuch"]);
    assertEquals(rm.code, 1);
    assertEquals(rm.stdout, "gone\n");
    assertStringIncludes(rm.stderr, "bridge is a pre-defined network and cannot be removed");
    assertStringIncludes(rm.stderr, "No such network: nosuch");
  } finally {
    await cleanup();
  }
});

rootTest(
  "network rm is refused while an address is leased, then removes bridge and rules",
  async () => {
    const { root, cleanup } = await tempRoot();
    const t = (args: string[]) => tsbox(["network", ...args], { root });
    const ns = `tsbox-cli-${Deno.pid}`;
    const linksBefore = linkNames();
    const canary = canaryTable();
    /** The links this test made (other tests' links may come and go meanwhile). */
    const mine: string[] = [];
    const forwardBefore = ipForwarding();
    let store: Store | undefined;
    let fd = -1;
    try {
      assertEquals((await t(["create", "--subnet", "10.91.251.0/24", "used"])).code, 0);
      assertEquals(run("ip", "netns", "add", ns).code, 0);
      fd = openNamespaceFile(`/run/netns/${ns}`);
      store = await Store.open(root);
      const net = requireNetwork(store, "used");
      const at = attachContainer(store, { netnsFd: fd }, net, { holder: "f".repeat(64) });
      assertEquals(at.ip, "10.91.251.2");
      mine.push(net.bridge, at.vethHost);
      assertOk(linkNames().includes(net.bridge), "the bridge is up");

      const insp = JSON.parse((await t(["inspect", "used"])).stdout) as NetworkInspect[];
      assertEquals(insp[0].Containers["f".repeat(64)]?.IPv4Address, "10.91.251.2/24");
      assertEquals(insp[0].Containers["f".repeat(64)]?.MacAddress, at.mac);

      const refused = await t(["rm", "used"]);
      assertEquals(refused.code, 1);
      assertStringIncludes(refused.stderr, "network used has active endpoints (ffffffffffff)");
      assertEquals((await t(["prune", "-f"])).stdout, "", "prune leaves a used network");

      assertOk(detachContainer(store, net, "f".repeat(64)));
      const rm = await t(["rm", "used"]);
      assertEquals(rm.code, 0, rm.stderr);
      assertOk(!linkNames().includes(net.bridge), "the bridge went with the network");
    } finally {
      store?.close();
      if (fd >= 0) closeNamespaceFd(fd);
      run("ip", "netns", "del", ns);
      await t(["rm", "used"]);
      if (!forwardBefore) Deno.writeTextFileSync("/proc/sys/net/ipv4/ip_forward", "0\n");
      await cleanup();
    }
    // Links this test made and left (other processes' links may come and go meanwhile).
    assertEquals(linkNames().filter((n) => !linksBefore.includes(n) && mine.includes(n)), []);
    assertOk(canary.unchanged(), `another table changed: ${canary.text()}`);
    canary.remove();
    const table = tsboxText();
    for (const b of mine) assertOk(!table.includes(`"${b}"`), `${b} left in table inet tsbox`);
  },
);

rootTest(
  "info tells IPv4 forwarding and names another table's forward chain that drops",
  async () => {
    const { root, cleanup } = await tempRoot();
    const table = `tsbox_test_info_${Deno.pid}`;
    try {
      const plain = await tsbox(["info"], { root });
      assertEquals(plain.code, 0, plain.stderr);
      assertMatch(
        plain.stdout,
        new RegExp(`^IPv4 Forwarding: ${ipForwarding() ? "on" : "off"}`, "m"),
      );
      assertOk(!plain.stdout.includes(table));
      // A table of the test's own, with docker's FORWARD policy: info names it in one line.
      assertEquals(
        run(
          "nft",
          `add table ip ${table}; add chain ip ${table} FORWARD { type filter hook forward priority 0; policy drop; }`,
        ).code,
        0,
      );
      const warned = await tsbox(["info"], { root });
      const line = warned.stdout.split("\n").find((l) => l.includes(`ip ${table} FORWARD`));
      assertOk(line?.startsWith("WARNING: "), warned.stdout);
      assertStringIncludes(line!, "drop by policy");
      const json = JSON.parse((await tsbox(["info", "--format", "json"], { root })).stdout);
      assertEquals(json.IPv4Forwarding, ipForwarding());
    } finally {
      run("nft", `delete table ip ${table}`);
      await cleanup();
    }
  },
);
