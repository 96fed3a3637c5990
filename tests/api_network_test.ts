/**
 * The Engine API's networks (root): `docker network create/ls/inspect/connect/disconnect/rm/
 * prune` with the real docker client at tsbox's socket, and two containers on one user network
 * that reach each other by name (and by a network alias) with busybox's nc. Traffic stays on the
 * bridge tsbox made for the test's network.
 */
import { assertEquals, assertMatch, assertOk, assertStringIncludes } from "./assert.ts";
import { CLIENTS, ok, rawRequest, rootTest, setup } from "./api_helpers.ts";

/** Retries `fn` until it returns true (a server in a container needs a moment to listen). */
async function eventually(what: string, fn: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`never: ${what}`);
}

for (const client of CLIENTS.length > 0 ? CLIENTS : ["docker"]) {
  rootTest(
    `api networks (${client}): create, ls, inspect, connect by name and alias, disconnect, rm`,
    () => networks(client),
  );
}

async function networks(client: string): Promise<void> {
  const t = await setup(client);
  const net = `t-apinet-${crypto.randomUUID().slice(0, 6)}`;
  try {
    const ref = t.fx.refs.busybox;
    await ok(t.d("pull", "-q", ref));
    const id = (await ok(
      t.d("network", "create", "--label", "t=api", "--subnet", "10.97.31.0/24", net),
    )).trim();
    assertMatch(id, /^[0-9a-f]{64}$/);
    const again = await t.d("network", "create", net);
    assertEquals(again.code, 1);
    assertStringIncludes(again.stderr, "already exists");

    const ls = await ok(t.d("network", "ls", "--format", "{{.Name}} {{.Driver}} {{.Scope}}"));
    assertEquals(
      ls.trim().split("\n").sort(),
      ["bridge bridge local", "host host local", "none null local", `${net} bridge local`].sort(),
    );
    const byLabel = await ok(t.d("network", "ls", "-q", "--no-trunc", "--filter", "label=t=api"));
    assertEquals(byLabel.trim(), id);
    const custom = await ok(
      t.d("network", "ls", "--filter", "type=custom", "--format", "{{.Name}}"),
    );
    assertEquals(custom.trim(), net);
    const [inspected] = JSON.parse(await ok(t.d("network", "inspect", net)));
    assertEquals(
      [inspected.Id, inspected.Driver, inspected.IPAM.Config[0].Subnet, inspected.Labels],
      [id, "bridge", "10.97.31.0/24", { t: "api" }],
    );

    // A server on the network, reached by its name and by its alias from a second container.
    await ok(
      t.d(
        "run",
        "-d",
        "--name",
        "t-apinet-srv",
        "--network",
        net,
        "--network-alias",
        "db",
        ref,
        "sh",
        "-c",
        "while true; do echo pong | nc -l -p 7000; done",
      ),
    );
    const srv = JSON.parse(await ok(t.d("inspect", "t-apinet-srv")))[0];
    const ep = srv.NetworkSettings.Networks[net];
    assertMatch(ep.IPAddress, /^10\.97\.31\.\d+$/);
    assertOk(ep.Aliases.includes("db"), JSON.stringify(ep.Aliases));
    assertEquals(srv.HostConfig.NetworkMode, net);
    const members = JSON.parse(await ok(t.d("network", "inspect", net)))[0].Containers;
    assertEquals(Object.values(members).map((m) => (m as { Name: string }).Name), [
      "t-apinet-srv",
    ]);

    const ask = (target: string) =>
      t.d("run", "--rm", "--network", net, ref, "sh", "-c", `nc ${target} 7000 </dev/null`);
    for (const target of ["t-apinet-srv", "db"]) {
      await eventually(`${target} answers`, async () => (await ask(target)).stdout === "pong\n");
    }
    // A rename is served by the network's DNS at once; the old name no longer is.
    await ok(t.d("rename", "t-apinet-srv", "t-apinet-srv2"));
    await eventually(
      "the new name answers",
      async () => (await ask("t-apinet-srv2")).stdout === "pong\n",
    );
    const old = await ask("t-apinet-srv");
    assertOk(old.stdout !== "pong\n", old.stdout);
    const taken = await t.d("run", "-d", "--name", "t-apinet-cli", ref, "sleep", "600");
    assertEquals(taken.code, 0, taken.stderr);
    const clash = await t.d("rename", "t-apinet-srv2", "t-apinet-cli");
    assertEquals(clash.code, 1);
    assertStringIncludes(clash.stderr, "already in use");
    await ok(t.d("rm", "-f", "t-apinet-cli"));
    await ok(t.d("rename", "t-apinet-srv2", "t-apinet-srv"));
    // Not on the network: the name does not resolve there.
    const outside = await t.d("run", "--rm", ref, "sh", "-c", "nc t-apinet-srv 7000 </dev/null");
    assertOk(outside.stdout !== "pong\n", outside.stdout);

    // connect a running container (with an alias), reach the server, disconnect it again.
    await ok(t.d("run", "-d", "--name", "t-apinet-cli", ref, "sleep", "600"));
    await ok(
      t.d("network", "connect", "--alias", "client", "--ip", "10.97.31.50", net, "t-apinet-cli"),
    );
    const cli = JSON.parse(await ok(t.d("inspect", "t-apinet-cli")))[0];
    assertEquals(Object.keys(cli.NetworkSettings.Networks).sort(), ["bridge", net].sort());
    assertEquals(cli.NetworkSettings.Networks[net].IPAddress, "10.97.31.50");
    await eventually(
      "the server reaches the client by its alias",
      async () =>
        (await t.d("exec", "t-apinet-srv", "sh", "-c", "nslookup client 2>&1")).stdout.includes(
          "10.97.31.50",
        ),
    );
    await eventually(
      "the connected container reaches the server",
      async () =>
        (await t.d("exec", "t-apinet-cli", "sh", "-c", "nc db 7000 </dev/null")).stdout ===
          "pong\n",
    );
    // Compose passes the container's short id as an alias: inspect shows it once.
    await ok(t.d("network", "disconnect", net, "t-apinet-cli"));
    const short = cli.Id.slice(0, 12);
    await ok(t.d("network", "connect", "--alias", short, "--alias", "client", net, "t-apinet-cli"));
    const twice = JSON.parse(await ok(t.d("inspect", "t-apinet-cli")))[0];
    assertEquals(twice.NetworkSettings.Networks[net].Aliases.sort(), [short, "client"].sort());
    const names = twice.NetworkSettings.Networks[net].DNSNames;
    if (names) assertEquals(names.filter((n: string) => n === short), [short]);
    const dup = await t.d("network", "connect", net, "t-apinet-cli");
    assertEquals(dup.code, 1);
    // Removing a network in use is refused.
    const inUse = await t.d("network", "rm", net);
    assertEquals(inUse.code, 1);
    assertStringIncludes(inUse.stderr, "active endpoints");
    await ok(t.d("network", "disconnect", net, "t-apinet-cli"));
    const after = JSON.parse(await ok(t.d("inspect", "t-apinet-cli")))[0];
    assertEquals(Object.keys(after.NetworkSettings.Networks), ["bridge"]);
    const cut = await t.d("exec", "t-apinet-cli", "sh", "-c", "nc -w 2 db 7000 </dev/null");
    assertOk(cut.stdout !== "pong\n", cut.stdout);

    // Predefined networks cannot be removed; a missing one is docker's 404.
    const predefined = await t.d("network", "rm", "bridge");
    assertEquals(predefined.code, 1);
    assertStringIncludes(predefined.stderr, "pre-defined");
    const missing = await rawRequest(
      t.socket,
      "GET /v1.41/networks/t-none HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assertMatch(missing, /^HTTP\/1\.1 404 /);
    assertStringIncludes(missing, '{"message":"network t-none not found"}');
    const badBody = await rawRequest(
      t.socket,
      'POST /networks/create HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n{"Name": 42}',
    );
    assertMatch(badBody, /^HTTP\/1\.1 400 /);

    await ok(t.d("rm", "-f", "t-apinet-srv", "t-apinet-cli"));
    await ok(t.d("network", "rm", net));
    assertEquals((await ok(t.d("network", "ls", "-q", "--filter", "type=custom"))).trim(), "");

    // prune removes unused user networks only, those its filters pick.
    await ok(t.d("network", "create", `${net}-p`));
    await ok(t.d("network", "create", "--label", "prune=me", `${net}-q`));
    const picked = await ok(t.d("network", "prune", "-f", "--filter", "label=prune=me"));
    assertStringIncludes(picked, `${net}-q`);
    assertEquals(picked.includes(`${net}-p`), false, picked);
    assertStringIncludes(await ok(t.d("network", "prune", "-f")), `${net}-p`);
    assertEquals((await ok(t.d("network", "ls", "-q", "--filter", "type=custom"))).trim(), "");
  } finally {
    await t.d("rm", "-f", "t-apinet-srv", "t-apinet-cli");
    await t.d("network", "rm", net, `${net}-p`, `${net}-q`);
    await t.cleanup();
  }
}

for (const client of CLIENTS.length > 0 ? CLIENTS : ["docker"]) {
  rootTest(
    `api networks (${client}): an IPv6 network, --ip6 at run and at network connect`,
    () => ipv6(client),
  );
}

/**
 * `network create --ipv6` sends EnableIPv6 and an IPv6 IPAM pool; `--ip6` sends
 * IPAMConfig.IPv6Address. The network is `--internal`: the host's IPv6 forwarding is left as
 * it is, and traffic stays on the test's bridge.
 */
async function ipv6(client: string): Promise<void> {
  const t = await setup(client);
  const net = `t-apinet6-${crypto.randomUUID().slice(0, 6)}`;
  const subnet6 = "fd42:97:32::/64";
  try {
    const ref = t.fx.refs.busybox;
    await ok(t.d("pull", "-q", ref));
    const v4 = ["--internal", "--subnet", "10.97.32.0/24"];
    // An IPv6 pool without EnableIPv6 is refused.
    const half = await t.d("network", "create", ...v4, "--subnet", subnet6, net);
    assertEquals(half.code, 1, half.stdout);
    assertStringIncludes(half.stderr, "needs EnableIPv6");
    await ok(t.d("network", "create", "--ipv6", ...v4, "--subnet", subnet6, net));
    const [inspected] = JSON.parse(await ok(t.d("network", "inspect", net)));
    assertEquals(inspected.EnableIPv6, true);
    assertEquals(
      inspected.IPAM.Config.map((c: { Subnet: string; Gateway: string }) => [c.Subnet, c.Gateway]),
      [["10.97.32.0/24", "10.97.32.1"], [subnet6, "fd42:97:32::1"]],
    );

    // --ip6 at run: the address, in inspect and on eth0.
    await ok(
      t.d(
        "run",
        "-d",
        "--name",
        "t-apinet6-a",
        "--network",
        net,
        "--ip6",
        "fd42:97:32::99",
        ref,
        "sleep",
        "600",
      ),
    );
    const a = JSON.parse(await ok(t.d("inspect", "t-apinet6-a")))[0];
    const ep = a.NetworkSettings.Networks[net];
    assertEquals(
      [ep.GlobalIPv6Address, ep.GlobalIPv6PrefixLen, ep.IPv6Gateway, ep.IPAMConfig?.IPv6Address],
      ["fd42:97:32::99", 64, "fd42:97:32::1", "fd42:97:32::99"],
    );
    assertStringIncludes(
      await ok(t.d("exec", "t-apinet6-a", "ip", "-6", "addr", "show", "dev", "eth0")),
      "inet6 fd42:97:32::99/64",
    );
    const members = JSON.parse(await ok(t.d("network", "inspect", net)))[0].Containers;
    assertEquals(
      Object.values(members).map((m) => (m as { IPv6Address: string }).IPv6Address),
      ["fd42:97:32::99/64"],
    );
    // --ip6 at network connect of a running container, reached over the bridge.
    await ok(t.d("run", "-d", "--name", "t-apinet6-b", ref, "sleep", "600"));
    await ok(t.d("network", "connect", "--ip6", "fd42:97:32::77", net, "t-apinet6-b"));
    const b = JSON.parse(await ok(t.d("inspect", "t-apinet6-b")))[0];
    assertEquals(b.NetworkSettings.Networks[net].GlobalIPv6Address, "fd42:97:32::77");
    await eventually(
      "a pings b over IPv6",
      async () =>
        (await t.d("exec", "t-apinet6-a", "ping", "-6", "-c", "1", "-W", "2", "fd42:97:32::77"))
          .stdout.includes("1 packets received"),
    );
    // The address in use is refused for another container.
    const taken = await t.d(
      "run",
      "--rm",
      "--network",
      net,
      "--ip6",
      "fd42:97:32::77",
      ref,
      "true",
    );
    assertOk(taken.code !== 0, taken.stdout);
    assertStringIncludes(taken.stderr, "already in use");
  } finally {
    await t.d("rm", "-f", "t-apinet6-a", "t-apinet6-b");
    await t.d("network", "rm", net);
    await t.cleanup();
  }
}
