import { assertEquals, assertThrows } from "../../tests/assert.ts";
import type { CgroupLayout } from "./cgroups.ts";
import { OciConfigError } from "./oci_config.ts";
import { planMounts, rootBindOps } from "./oci_mounts.ts";
import { MOUNT_FLAGS as F, rootPropagation } from "./oci_mount_options.ts";

const layout: CgroupLayout = {
  v1: new Map([["memory", "/sys/fs/cgroup/memory"], ["cpu", "/sys/fs/cgroup/cpu,cpuacct"], [
    "cpuacct",
    "/sys/fs/cgroup/cpu,cpuacct",
  ]]),
  v2Controllers: [],
};

async function rootfs(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "tsbox-ocimounts-" });
  await Deno.mkdir(`${dir}/rootfs/etc`, { recursive: true });
  // A hostile image: links that point out of the root, absolute and relative.
  await Deno.symlink("/etc", `${dir}/rootfs/abs`);
  await Deno.symlink("../../../../../../etc", `${dir}/rootfs/rel`);
  await Deno.mkdir(`${dir}/src/sub`, { recursive: true });
  await Deno.writeTextFile(`${dir}/file`, "x");
  return dir;
}

Deno.test("planMounts: targets in the image resolve inside the rootfs, symlinks included", async () => {
  const dir = await rootfs();
  try {
    const root = `${dir}/rootfs`;
    const plan = planMounts(
      root,
      [
        { destination: "/abs/mnt", type: "tmpfs", source: "tmpfs" },
        { destination: "/rel/x", type: "bind", source: `${dir}/file`, options: ["rbind", "ro"] },
      ],
      [],
      "/c",
      { layout },
    );
    // /abs -> /etc and ../../etc both land in the rootfs's own /etc.
    assertEquals(plan.mounts[0].target, `${root}/etc/mnt`);
    assertEquals(plan.mounts[1].target, `${root}/etc/x`);
    assertEquals(Deno.statSync(`${root}/etc/mnt`).isDirectory, true);
    assertEquals(Deno.statSync(`${root}/etc/x`).isFile, true);
    assertEquals(plan.mounts[0].create, []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("planMounts: below a fresh mount the child creates the target; below a bind, its source", async () => {
  const dir = await rootfs();
  try {
    const root = `${dir}/rootfs`;
    const plan = planMounts(
      root,
      [
        { destination: "/proc", type: "proc", source: "proc" },
        { destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["mode=755"] },
        { destination: "/dev/pts", type: "devpts", source: "devpts" },
        { destination: "/dev/shm/x", type: "bind", source: `${dir}/file`, options: ["bind"] },
        { destination: "/data", type: "bind", source: `${dir}/src`, options: ["rbind"] },
        { destination: "/data/sub/deeper", type: "tmpfs", source: "tmpfs" },
        { destination: "/sys/fs/cgroup", type: "cgroup", source: "cgroup", options: ["ro"] },
      ],
      [{ path: "/dev/fuse", type: "c", major: 10, minor: 229 }],
      "/pods/c1",
      { layout },
    );
    const byDest = new Map(plan.mounts.map((m) => [m.destination, m]));
    assertEquals(byDest.get("/dev/pts")!.create, [`${root}/dev/pts`]);
    assertEquals(byDest.get("/dev/shm/x")!.create, [`${root}/dev/shm`, `${root}/dev/shm/x`]);
    assertEquals(byDest.get("/dev/shm/x")!.createFile, true);
    // Made in the bind's source (what the child sees there), reached through the bind's target.
    assertEquals(byDest.get("/data/sub/deeper")!.target, `${root}/data/sub/deeper`);
    assertEquals(Deno.statSync(`${dir}/src/sub/deeper`).isDirectory, true);
    assertEquals(plan.freshDev, `${root}/dev`);
    assertEquals(plan.devpts, true);
    assertEquals(plan.devices[0].target, `${root}/dev/fuse`);
    // The cgroup mount: a tmpfs with the container's dir of each hierarchy (co-mounted once).
    assertEquals(byDest.get("/sys/fs/cgroup")!.cgroupBinds, [
      { name: "memory", source: "/sys/fs/cgroup/memory/pods/c1" },
      { name: "cpu,cpuacct", source: "/sys/fs/cgroup/cpu,cpuacct/pods/c1" },
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("planMounts refuses targets through /proc's magic links, .., and relative bind sources", async () => {
  const dir = await rootfs();
  try {
    const root = `${dir}/rootfs`;
    const proc = { destination: "/proc", type: "proc", source: "proc" };
    for (const bad of ["/proc/self/root/etc", "/proc/1/cwd", "/proc/thread-self/x"]) {
      assertThrows(
        () => planMounts(root, [proc, { destination: bad, type: "tmpfs" }], [], "/c", { layout }),
        OciConfigError,
        "magic link",
      );
    }
    assertThrows(
      () => planMounts(root, [{ destination: "/a/../../x", type: "tmpfs" }], [], "/c", { layout }),
      OciConfigError,
    );
    assertThrows(
      () =>
        planMounts(root, [{ destination: "/x", type: "bind", source: "rel" }], [], "/c", {
          layout,
        }),
      OciConfigError,
      "absolute source",
    );
    assertThrows(
      () =>
        planMounts(root, [], [{ path: "/etc/evil", type: "c", major: 1, minor: 1 }], "/c", {
          layout,
        }),
      OciConfigError,
      "below /dev",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("rootfsPropagation private is applied to / recursively, as crun does", () => {
  const [propagate] = rootBindOps("/r", rootPropagation("private"));
  assertEquals(propagate.args[3], F.PRIVATE | F.REC);
  const [slave] = rootBindOps("/r", undefined);
  assertEquals(slave.args[3], F.SLAVE | F.REC);
});
