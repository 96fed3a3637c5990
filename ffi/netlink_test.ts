/**
 * rtnetlink against the real kernel (root): links, addresses and routes made through
 * ffi/netlink.ts, checked with iproute2's own view (`ip -j`), and removed without a trace.
 * Every name carries this process's id; everything is removed in `finally`.
 */
import { assertEquals, assertOk, assertThrows } from "../tests/assert.ts";
import { Netlink, NetlinkError } from "./netlink.ts";
import { closeNamespaceFd, openNamespaceFile } from "./namespace.ts";

const isRoot = Deno.uid() === 0;
const tag = `t${Deno.pid % 100000}`;

function ip(...args: string[]): { code: number; out: string } {
  const r = new Deno.Command("ip", { args, stdout: "piped", stderr: "piped" }).outputSync();
  return { code: r.code, out: new TextDecoder().decode(r.stdout) };
}

interface IpLink {
  ifname: string;
  master?: string;
  flags: string[];
  address?: string;
  linkinfo?: { info_kind?: string };
  ifalias?: string;
}
interface IpAddr {
  ifname: string;
  addr_info: { family: string; local: string; prefixlen: number }[];
}

function links(ns?: string): IpLink[] {
  return JSON.parse(ip(...(ns ? ["-n", ns] : []), "-j", "-d", "link", "show").out);
}
function addrs(ns?: string): IpAddr[] {
  return JSON.parse(ip(...(ns ? ["-n", ns] : []), "-j", "addr", "show").out);
}
function v4(ns: string | undefined, name: string): string[] {
  return (addrs(ns).find((a) => a.ifname === name)?.addr_info ?? [])
    .filter((i) => i.family === "inet").map((i) => `${i.local}/${i.prefixlen}`);
}

Deno.test({
  name: "bridge, veth moved into a netns by fd, addresses and a route; deleting leaves nothing",
  ignore: !isRoot,
  fn() {
    const ns = `tsbox-nl-${tag}`;
    const br = `tsb${tag}br`, host = `tsb${tag}h`, peer = `tsb${tag}p`, host2 = `tsb${tag}h2`;
    // Only this test's names count: other tests' links may come and go meanwhile.
    const ours = () => links().map((l) => l.ifname).filter((n) => n.startsWith(`tsb${tag}`));
    assertEquals(ours(), []);
    assertEquals(ip("netns", "add", ns).code, 0);
    const nsFd = openNamespaceFile(`/run/netns/${ns}`);
    const nl = Netlink.open();
    try {
      const bridge = nl.createBridge(br);
      assertEquals(bridge.kind, "bridge");
      nl.addAddress(bridge.index, "203.0.113.201", 29);
      nl.setUp(bridge.index);
      const end = nl.createVeth({ name: host, peerName: peer });
      nl.setMaster(end.index, bridge.index);
      nl.setUp(end.index);
      nl.moveToNetns(nl.requireLink(peer).index, nsFd);
      assertEquals(nl.link(peer), undefined, "the peer left this namespace");

      // Inside the namespace, through a socket made there.
      const inner = Netlink.openIn(nsFd);
      try {
        const p = inner.requireLink(peer);
        inner.setMac(p.index, "02:42:cb:00:71:ca");
        inner.addAddress(p.index, "203.0.113.202", 29);
        inner.setUp(p.index);
        inner.setUp(inner.requireLink("lo").index);
        inner.addRoute({ gateway: "203.0.113.201" });
        // IPv6: an address usable at once (no DAD) and a default route through the bridge's.
        inner.addAddress6(p.index, "fd42:7b:9::2", 64);
        nl.addAddress6(bridge.index, "fd42:7b:9::1", 64);
        inner.addDefaultRoute6("fd42:7b:9::1");
        assertOk(inner.routes().some((r) => r.dstLen === 0 && r.gateway === "203.0.113.201"));
        assertOk(
          inner.addresses().some((a) => a.address === "203.0.113.202" && a.prefixLen === 29),
        );
      } finally {
        inner.close();
      }

      // A second pair whose peer is made directly inside the namespace.
      nl.createVeth({
        name: host2,
        peerName: "eth0",
        peerNetnsFd: nsFd,
        peerMac: "02:42:00:00:00:07",
      });

      const hostLinks = links();
      assertEquals(hostLinks.find((l) => l.ifname === br)?.linkinfo?.info_kind, "bridge");
      assertEquals(hostLinks.find((l) => l.ifname === host)?.master, br);
      assertOk(hostLinks.find((l) => l.ifname === host)?.flags.includes("UP"));
      assertEquals(v4(undefined, br), ["203.0.113.201/29"]);
      const nsLinks = links(ns);
      assertEquals(nsLinks.find((l) => l.ifname === peer)?.address, "02:42:cb:00:71:ca");
      assertEquals(nsLinks.find((l) => l.ifname === "eth0")?.address, "02:42:00:00:00:07");
      assertEquals(v4(ns, peer), ["203.0.113.202/29"]);
      assertOk(ip("-n", ns, "route", "show", "default").out.includes("via 203.0.113.201"));
      const v6 = ip("-n", ns, "-6", "addr", "show", "dev", peer).out;
      assertOk(v6.includes("inet6 fd42:7b:9::2/64 scope global nodad"), v6);
      assertOk(ip("-n", ns, "-6", "route", "show", "default").out.includes("via fd42:7b:9::1"));
      const inner6 = Netlink.openIn(nsFd);
      try {
        const r6 = inner6.routes(10);
        assertOk(r6.some((r) => r.dstLen === 64 && r.dst === "fd42:7b:9:0:0:0:0:0"), `${r6}`);
        assertOk(r6.some((r) => r.dstLen === 0 && r.gateway === "fd42:7b:9:0:0:0:0:1"));
      } finally {
        inner6.close();
      }

      // An alias (tsbox marks its bridges' owners so), as iproute2 shows it.
      assertEquals(nl.link(br)?.alias, undefined);
      nl.setAlias(bridge.index, "tsbox /var/lib/x");
      assertEquals(nl.link(br)?.alias, "tsbox /var/lib/x");
      assertEquals(links().find((l) => l.ifname === br)?.ifalias, "tsbox /var/lib/x");
      assertThrows(() => nl.setAlias(bridge.index, "x".repeat(256)), RangeError);

      // Our own view agrees with iproute2's.
      assertEquals(nl.link(br)?.index, bridge.index);
      assertOk(
        nl.addresses().some((a) => a.index === bridge.index && a.address === "203.0.113.201"),
      );

      // Errors name the operation and the kernel's errno.
      const err = assertThrows(() => nl.createBridge(br), NetlinkError);
      assertEquals(err.code, "EEXIST");
      assertEquals(err.call, "RTM_NEWLINK");
      assertOk(err.message.includes(br), err.message);
      assertEquals(nl.link("tsbox-no-such"), undefined);
      assertThrows(() => nl.setUp(999999), NetlinkError);

      assertOk(nl.deleteLinkByName(host));
      assertOk(nl.deleteLinkByName(host2));
      nl.deleteLink(bridge.index);
      assertEquals(nl.deleteLinkByName(br), false);
      assertEquals(links(ns).map((l) => l.ifname), ["lo"], "both peers went with their hosts");
    } finally {
      for (const name of [host, host2, br]) nl.deleteLinkByName(name);
      nl.close();
      closeNamespaceFd(nsFd);
      ip("netns", "del", ns);
    }
    assertEquals(ours(), []);
  },
});
