/**
 * tsbox's nftables table: the text (pure) and, as root, the table applied inside a network
 * namespace of the test's own (the host's ruleset is never touched), elements added and removed
 * per network, the table gone with the last one; foreign forward chains with policy drop found.
 */
import { assertEquals, assertOk } from "../../tests/assert.ts";
import { inFreshNetns } from "./netns_fixture.ts";
import { listNft, runNft } from "../../ffi/nftables.ts";
import {
  addNetworkRules,
  elementsText,
  forwardDropsIn,
  forwardDropWarning,
  removeNetworkRules,
  tableBridges,
  tableExists,
  tableText,
} from "./firewall.ts";

const isRoot = Deno.uid() === 0;

Deno.test("elements of a network: isolation always, masquerade and forwarding unless internal", () => {
  assertEquals(
    elementsText("add", { bridge: "tsbox0", subnet: "10.90.0.0/24", internal: false }),
    'add element inet tsbox bridges { "tsbox0" }\n' +
      'add element inet tsbox intra { "tsbox0" . "tsbox0" }\n' +
      'add element inet tsbox outbound { "tsbox0" . 10.90.0.0/24 }\n' +
      "add element inet tsbox nat_subnets { 10.90.0.0/24 }\n",
  );
  assertEquals(
    elementsText("delete", { bridge: "tsbox-1", subnet: "10.90.1.0/24", internal: true }),
    'delete element inet tsbox bridges { "tsbox-1" }\n' +
      'delete element inet tsbox intra { "tsbox-1" . "tsbox-1" }\n',
  );
  let threw = false;
  try {
    elementsText("add", { bridge: 'x" }; flush ruleset', subnet: "10.0.0.0/24", internal: false });
  } catch {
    threw = true;
  }
  assertOk(threw, "a name that could inject nft syntax is refused");
  assertOk(tableText().includes("type nat hook postrouting priority srcnat"));
});

Deno.test("forward chains that drop by policy are found, ours and accepting ones left out", () => {
  const chains = [
    { chain: { family: "ip", table: "filter", name: "FORWARD", hook: "forward", policy: "drop" } },
    { chain: { family: "inet", table: "tsbox", name: "forward", hook: "forward", policy: "drop" } },
    { chain: { family: "inet", table: "fw", name: "fwd", hook: "forward", policy: "accept" } },
    { chain: { family: "inet", table: "fw", name: "in", hook: "input", policy: "drop" } },
    { chain: { family: "ip", table: "filter", name: "DOCKER" } },
  ];
  const drops = forwardDropsIn(chains);
  assertEquals(drops, [{ family: "ip", table: "filter", chain: "FORWARD" }]);
  const line = forwardDropWarning(drops, ["10.90.0.0/24"]);
  assertOk(line.includes("ip filter FORWARD") && line.includes("10.90.0.0/24"), line);
  assertEquals(forwardDropWarning([], []), "");
});

Deno.test({
  name: "the table comes with the first network and goes with the last (in a netns of its own)",
  ignore: !isRoot,
  fn() {
    inFreshNetns("tsbox-fw", () => {
      const a = { bridge: "tsbox-a", subnet: "10.90.10.0/24", internal: false };
      const b = { bridge: "tsbox-b", subnet: "10.90.11.0/24", internal: true };
      assertEquals(tableExists(), false);
      addNetworkRules(a);
      addNetworkRules(a); // again: no change, no error
      addNetworkRules(b);
      assertEquals(tableBridges().sort(), ["tsbox-a", "tsbox-b"]);
      const text = runNft("list table inet tsbox");
      assertOk(text.includes('"tsbox-a" . 10.90.10.0/24'), text);
      assertOk(!text.includes("10.90.11.0"), "an internal network is neither forwarded nor NATed");
      assertEquals(listNft("list table inet tsbox").filter((o) => o.rule).length, 9);

      // A foreign table whose forward chain drops by policy is found.
      runNft(
        "add table ip hostfw\nadd chain ip hostfw FORWARD { type filter hook forward priority 0; policy drop; }\n",
      );
      assertEquals(forwardDropsIn(listNft("list chains")), [
        { family: "ip", table: "hostfw", chain: "FORWARD" },
      ]);

      removeNetworkRules(a);
      assertEquals(tableBridges(), ["tsbox-b"]);
      removeNetworkRules(a); // again: nothing to do
      removeNetworkRules(b);
      assertEquals(tableExists(), false);
      assertOk(runNft("list tables").includes("hostfw"), "another tool's table is left alone");
    });
  },
});

Deno.test({
  name: "IPv6 networks: NAT66 and forwarding elements; a table of layout 1 is upgraded in place",
  ignore: !isRoot,
  fn() {
    inFreshNetns("tsbox-fw", () => {
      // A table as tsbox made it before IPv6, holding another store's network.
      const v1 = tableText().replace(
        /^\s*(set outbound6|set nat_subnets6|iifname \. ip6|ip6 saddr).*\n/gm,
        "",
      );
      assertOk(!v1.includes("ip6"), v1);
      runNft(v1);
      const old = { bridge: "tsbox-old", subnet: "10.90.20.0/24", internal: false };
      addNetworkRules(old);
      const six = {
        bridge: "tsbox-six",
        subnet: "10.90.21.0/24",
        subnet6: "fd42:7b:21::/64",
        internal: false,
      };
      addNetworkRules(six);
      addNetworkRules(six); // again: no second upgrade
      const text = runNft("list table inet tsbox");
      assertOk(text.includes('"tsbox-six" . fd42:7b:21::/64'), text);
      assertOk(text.includes('"tsbox-old" . 10.90.20.0/24'), "the other network stays");
      const forward = text.slice(text.indexOf("chain forward"));
      const v4 = forward.indexOf("ip saddr @outbound accept");
      const v6 = forward.indexOf("ip6 saddr @outbound6 accept");
      const drop = forward.indexOf("iifname @bridges drop");
      assertOk(v4 >= 0 && v4 < v6 && v6 < drop, forward);
      assertOk(text.includes("ip6 saddr @nat_subnets6 oifname != @bridges masquerade"), text);
      assertEquals(text.split("ip6 saddr @outbound6 accept").length, 2, "one rule, not two");
      removeNetworkRules(six);
      assertOk(!runNft("list table inet tsbox").includes("fd42:7b:21::"));
      removeNetworkRules(old);
      assertEquals(tableExists(), false);
    });
  },
});
