/**
 * DNAT rules of published ports: the text (pure, hostile values refused) and, as root, the
 * chains and rules applied inside a network namespace of the test's own (the host's ruleset is
 * never touched): added once, a dead run's rules replaced, removed per container.
 */
import { assertEquals, assertOk } from "../../tests/assert.ts";
import { inFreshNetns } from "./netns_fixture.ts";
import { listNft, runNft } from "../../ffi/nftables.ts";
import { addNetworkRules } from "./firewall.ts";
import {
  addPortRules,
  innerTableText,
  portRuleCount,
  portRulesText,
  removePortRules,
  removePortRulesInto,
} from "./firewall_ports.ts";

const isRoot = Deno.uid() === 0;

function threw(fn: () => unknown): boolean {
  try {
    fn();
    return false;
  } catch {
    return true;
  }
}

Deno.test("port rules: one per port, loopback-only by address, values checked", () => {
  assertEquals(
    portRulesText("abc", "10.90.0.2", [
      { hostIp: "127.0.0.1", hostPort: 8080, containerPort: 80, proto: "tcp" },
      { hostIp: "0.0.0.0", hostPort: 5353, containerPort: 53, proto: "udp" },
    ]),
    "add rule inet tsbox ports ip daddr 127.0.0.1 meta l4proto tcp tcp dport 8080 " +
      'dnat ip to 10.90.0.2:80 comment "tsbox abc"\n' +
      "add rule inet tsbox ports meta l4proto udp udp dport 5353 " +
      'dnat ip to 10.90.0.2:53 comment "tsbox abc"\n',
  );
  const ok = { hostIp: "0.0.0.0", hostPort: 1, containerPort: 1, proto: "tcp" as const };
  assertOk(threw(() => portRulesText('a" ; flush ruleset', "10.0.0.2", [ok])));
  assertOk(threw(() => portRulesText("a", "10.0.0.2; flush ruleset", [ok])));
  assertOk(threw(() => portRulesText("a", "10.0.0.2", [{ ...ok, hostPort: 70000 }])));
  const inner = innerTableText(
    { ip: "10.90.0.2", gateway: "10.90.0.1", subnet: "10.90.0.0/24" },
    [ok, ok],
  );
  // One port: two sources rewritten in, the answers' source rewritten out.
  assertEquals(inner.split("ip daddr set 127.0.0.1").length - 1, 2, inner);
  assertEquals(inner.split("tcp sport 1 ip saddr set 10.90.0.2").length - 1, 1, inner);
  assertOk(inner.includes('iifname != "lo" ip daddr 127.0.0.0/8 drop'), inner);
  assertOk(threw(() => innerTableText({ ip: "x", gateway: "10.0.0.1", subnet: "a" }, [ok])));
});

Deno.test({
  name: "port rules in a netns of its own: chains once, stale rules replaced, removed by id",
  ignore: !isRoot,
  fn() {
    inFreshNetns("tsbox-fwp", () => {
      // A bridge of the namespace's own, for route_localnet.
      new Deno.Command("ip", { args: ["link", "add", "tsbox-p", "type", "bridge"] }).outputSync();
      addNetworkRules({ bridge: "tsbox-p", subnet: "10.90.30.0/24", internal: false });
      const web = { hostIp: "127.0.0.1", hostPort: 8080, containerPort: 80, proto: "tcp" as const };
      addPortRules("c1", "10.90.30.2", "tsbox-p", [web]);
      // The same container again (its supervisor was killed): its old rules go.
      addPortRules("c1", "10.90.30.3", "tsbox-p", [web, { ...web, hostPort: 8081 }]);
      addPortRules("c2", "10.90.30.4", "tsbox-p", [{ ...web, hostPort: 9090 }]);
      assertEquals(portRuleCount("c1"), 2);
      assertEquals(portRuleCount("c2"), 1);
      const text = runNft("list table inet tsbox");
      assertOk(!text.includes("10.90.30.2"), text);
      assertEquals(text.split("jump ports").length - 1, 2, "prerouting and output, once each");
      assertEquals(text.split("ct status dnat oifname @bridges accept").length - 1, 1, text);
      assertEquals(
        Deno.readTextFileSync("/proc/sys/net/ipv4/conf/tsbox-p/route_localnet").trim(),
        "1",
      );
      removePortRules("c1", "10.90.30.9"); // another address: none of them
      assertEquals(portRuleCount("c1"), 2);
      removePortRules("c1", "10.90.30.3");
      removePortRules("c1"); // again: nothing to do
      assertEquals(portRuleCount("c1"), 0);
      assertEquals(portRuleCount("c2"), 1);
      // c3 takes 9090 (c2's supervisor died, its port was free): c2's rule is stale and goes.
      addPortRules("c3", "10.90.30.5", "tsbox-p", [{ ...web, hostIp: "0.0.0.0", hostPort: 9090 }]);
      assertEquals(portRuleCount("c2"), 0);
      assertEquals(portRuleCount("c3"), 1);
      // Another address's 9091 does not clash with 127.0.0.1's.
      addPortRules("c4", "10.90.30.6", "tsbox-p", [{
        ...web,
        hostIp: "127.0.0.2",
        hostPort: 9091,
      }]);
      addPortRules("c5", "10.90.30.7", "tsbox-p", [{ ...web, hostPort: 9091 }]);
      assertEquals(portRuleCount("c4") + portRuleCount("c5"), 2);
      // A store gone: the rules into its subnet go with its bridge (owners.ts).
      addPortRules("c6", "10.90.31.2", "tsbox-p", [{ ...web, hostPort: 9092 }]);
      removePortRulesInto("10.90.30.0/24");
      assertEquals(portRuleCount("c3") + portRuleCount("c4") + portRuleCount("c5"), 0);
      assertEquals(portRuleCount("c6"), 1);
      removePortRules("c6");
      removePortRules("c2");
      assertEquals(
        listNft("list chain inet tsbox ports").filter((o) => o.rule).length,
        0,
      );
    });
  },
});
