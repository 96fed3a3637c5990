import { assertEquals, assertOk, assertThrows } from "../../tests/assert.ts";
import type { CgroupLayout } from "./cgroups.ts";
import { cgroupPathFor, createOciCgroup, isFrozen, ociCgroup, setFrozen } from "./oci_cgroup.ts";

const isRoot = Deno.uid() === 0;

Deno.test("cgroupPathFor: the spec's path below the roots, /<id> by default, no way up", () => {
  assertEquals(cgroupPathFor("/libpod_parent/libpod-abc", "abc"), "/libpod_parent/libpod-abc");
  assertEquals(cgroupPathFor("kubepods/pod1/c1", "c1"), "/kubepods/pod1/c1");
  assertEquals(cgroupPathFor(undefined, "abc"), "/abc");
  assertThrows(() => cgroupPathFor("/a/../../etc", "x"), Error, "below the root");
  const v1: CgroupLayout = {
    v1: new Map([["memory", "/m"], ["freezer", "/f"], ["cpu", "/c,a"], ["cpuacct", "/c,a"]]),
    v2Controllers: [],
  };
  assertEquals(ociCgroup("/p/c", v1).dirs.sort(), ["/c,a/p/c", "/f/p/c", "/m/p/c"]);
  assertEquals(ociCgroup("/p/c", { v1: new Map(), v2: "/u", v2Controllers: [] }).dirs, ["/u/p/c"]);
});

/** The host's cgroup2 mount (this machine's hybrid layout has one at /sys/fs/cgroup/unified). */
function cgroup2Mount(): string | undefined {
  for (const line of Deno.readTextFileSync("/proc/self/mountinfo").split("\n")) {
    const [pre, post] = line.split(" - ");
    if (post?.startsWith("cgroup2 ")) return pre.split(" ")[4];
  }
  return undefined;
}

Deno.test({
  name: "an OCI cgroup on cgroup v2: nested path created, joined, frozen, thawed, removed",
  ignore: !isRoot || cgroup2Mount() === undefined,
  sanitizeResources: false,
  fn: async () => {
    const v2 = cgroup2Mount()!;
    const layout: CgroupLayout = { v1: new Map(), v2, v2Controllers: [] };
    const path = `/tsbox-oci-test-${Deno.pid}/pod/c1`;
    const child = new Deno.Command("sleep", { args: ["1000"] }).spawn();
    const cg = await createOciCgroup(path, {}, layout);
    try {
      await cg.join(child.pid);
      assertEquals(await cg.pids(), [child.pid]);
      assertOk(Deno.readTextFileSync(`/proc/${child.pid}/cgroup`).includes(`0::${path}\n`));
      await setFrozen(cg, true);
      assertOk(isFrozen(cg));
      assertOk(/^frozen 1$/m.test(Deno.readTextFileSync(`${v2}${path}/cgroup.events`)));
      await setFrozen(cg, false);
      assertEquals(isFrozen(cg), false);
      assertOk(/^frozen 0$/m.test(Deno.readTextFileSync(`${v2}${path}/cgroup.events`)));
    } finally {
      await cg.remove();
      await child.status;
      await Deno.remove(`${v2}/tsbox-oci-test-${Deno.pid}/pod`).catch(() => {});
      await Deno.remove(`${v2}/tsbox-oci-test-${Deno.pid}`).catch(() => {});
    }
    assertEquals(await Deno.stat(`${v2}${path}`).then(() => true, () => false), false);
  },
});
