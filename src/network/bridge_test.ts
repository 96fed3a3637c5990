/**
 * Bridges against the real kernel (root), inside a network namespace of the test's own (the
 * thread joins it for the test's synchronous body): made with the gateway address and up, made
 * again without change, refused over a routed subnet or another network's bridge, removed.
 */
import { assertEquals, assertOk, assertThrows } from "../../tests/assert.ts";
import {
  closeNamespaceFd,
  NAMESPACE_TYPES,
  openNamespaceFile,
  setns,
} from "../../ffi/namespace.ts";
import { Netlink } from "../../ffi/netlink.ts";
import { TsboxError } from "../errors.ts";
import {
  ensureBridge,
  hostSubnets,
  LOCK_FILE,
  removeBridge,
  withHostNetworkLock,
} from "./bridge.ts";

const isRoot = Deno.uid() === 0;

function ip(...args: string[]): number {
  return new Deno.Command("ip", { args, stdout: "null", stderr: "null" }).outputSync().code;
}

Deno.test({
  name: "a bridge is made once with its gateway, refused over a routed subnet, removed",
  ignore: !isRoot,
  fn() {
    const name = `tsbox-br-${Deno.pid}`;
    assertEquals(ip("netns", "add", name), 0);
    // Another tool's network in the namespace: 10.66.0.0/16 on a veth.
    ip("-n", name, "link", "add", "d0", "type", "veth", "peer", "name", "d1");
    ip("-n", name, "addr", "add", "10.66.0.1/16", "dev", "d0");
    ip("-n", name, "link", "set", "d0", "up");
    const own = openNamespaceFile("/proc/thread-self/ns/net");
    const fd = openNamespaceFile(`/run/netns/${name}`);
    try {
      setns(fd, NAMESPACE_TYPES.net);
      try {
        assertOk(hostSubnets().some((s) => s.what.includes("10.66.0.0/16 dev d0")));
        assertThrows(
          () => ensureBridge({ bridge: "tsbox-x", subnet: "10.66.1.0/24", gateway: "10.66.1.1" }),
          TsboxError,
          "overlaps the host's route 10.66.0.0/16 dev d0",
        );
        const spec = { bridge: "tsbox-y", subnet: "10.67.0.0/24", gateway: "10.67.0.1" };
        const index = ensureBridge(spec);
        assertEquals(ensureBridge(spec), index, "made again: the same bridge");
        const nl = Netlink.open();
        try {
          const link = nl.link("tsbox-y");
          assertEquals(link?.kind, "bridge");
          assertOk(((link?.flags ?? 0) & 1) === 1, "up");
          assertEquals(
            nl.addresses().filter((a) => a.index === index).map((a) =>
              `${a.address}/${a.prefixLen}`
            ),
            ["10.67.0.1/24"],
          );
        } finally {
          nl.close();
        }
        assertThrows(
          () => ensureBridge({ ...spec, subnet: "10.68.0.0/24", gateway: "10.68.0.1" }),
          TsboxError,
          "belongs to another network",
        );
        ip("-n", name, "link", "add", "tsbox-z", "type", "veth", "peer", "name", "tsbox-z1");
        assertThrows(
          () => ensureBridge({ bridge: "tsbox-z", subnet: "10.69.0.0/24", gateway: "10.69.0.1" }),
          TsboxError,
          "is not a bridge",
        );
        assertEquals(removeBridge("tsbox-y"), true);
        assertEquals(removeBridge("tsbox-y"), false);
      } finally {
        setns(own, NAMESPACE_TYPES.net);
      }
    } finally {
      closeNamespaceFd(fd);
      closeNamespaceFd(own);
      ip("netns", "del", name);
    }
  },
});

Deno.test({
  name: "the host network lock is re-entrant, and held against other processes meanwhile",
  ignore: !isRoot,
  fn() {
    /** Whether another process can take the lock now (flock -n: fails at once when held). */
    const free = () =>
      new Deno.Command("flock", { args: ["-n", LOCK_FILE, "true"], stdout: "null", stderr: "null" })
        .outputSync().success;
    // A nested call (the API's network create took it around createNetwork, which takes it
    // too) runs at once instead of waiting for itself forever.
    const seen = withHostNetworkLock(() => {
      const inner = withHostNetworkLock(() => free());
      return [inner, free()];
    });
    assertEquals(seen, [false, false], "held inside, at both depths");
    assertOk(free(), "released after the outer call");
    assertThrows(() =>
      withHostNetworkLock(() =>
        withHostNetworkLock(() => {
          throw new TsboxError("inner failure");
        })
      ), TsboxError);
    assertOk(free(), "released after a throw");
  },
});
