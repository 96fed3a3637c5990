import { assertEquals, assertOk } from "../../tests/assert.ts";
import { CompiledProgram, IGNORE_ERROR } from "../../ffi/clone.ts";
import { SYS } from "../../ffi/syscall_numbers.ts";
import { buildProgram, capabilityMask, type ChildPlan } from "./program.ts";
import { DEFAULT_CAPS } from "./capabilities.ts";

const plan: ChildPlan = {
  rootfs: "/r/rootfs",
  targets: { proc: "/r/rootfs/proc", dev: "/r/rootfs/dev", sys: "/r/rootfs/sys" },
  etcFiles: [{ source: "/r/hostname", target: "/r/rootfs/etc/hostname" }],
  extraMounts: [{ kind: "bind", source: "/host", target: "/r/rootfs/data", readOnly: true }],
  readOnly: false,
  hostname: "abc",
  loopbackUp: true,
  cgroupNamespace: true,
  cwd: "/",
  uid: 0,
  gid: 0,
  groups: [0],
  capabilities: DEFAULT_CAPS,
  lastCap: 40,
  syncFd: 10,
  closeFds: [11, 12],
  stdio: ["null", "inherit", "inherit"],
  argv: ["sh"],
  env: ["PATH=/bin"],
  candidates: ["/usr/bin/sh", "/bin/sh"],
};

Deno.test("docker's default caps are CapEff 00000000a80425fb", () => {
  assertEquals(capabilityMask(DEFAULT_CAPS), [0xa80425fb, 0]);
});

Deno.test("the program runs its steps in the order the kernel needs", () => {
  const ops = buildProgram(plan);
  const first = (pred: (w: string) => boolean) => ops.findIndex((o) => pred(o.what));
  const order = [
    first((w) => w === "wait for the parent"),
    first((w) => w.startsWith("unshare the cgroup")),
    first((w) => w === "make / rprivate"),
    first((w) => w.startsWith("mount proc")),
    first((w) => w.startsWith("mount tmpfs on /r/rootfs/dev")),
    first((w) => w.startsWith("mount /r/hostname")),
    first((w) => w === "pivot_root"),
    first((w) => w === "detach the old root"),
    first((w) => w === "set the hostname"),
    first((w) => w === "keep capabilities"),
    first((w) => w.startsWith("set uid")),
    first((w) => w === "set capabilities"),
    first((w) => w.startsWith("mark fds")),
    first((w) => w.startsWith("execve")),
  ];
  for (const i of order) assertOk(i >= 0, `step missing: ${JSON.stringify(order)}`);
  assertEquals([...order].sort((a, b) => a - b), order);
  // Only execve candidates may fail without stopping the program.
  const ignoring = ops.filter((o) => (o.flags ?? 0) & IGNORE_ERROR).map((o) => o.what);
  assertEquals(ignoring, ["execve /usr/bin/sh", "execve /bin/sh"]);
  assertEquals(ops.at(-1)!.nr, SYS.execve);
});

Deno.test("every pointer in the compiled program points into its own mmap'd region", () => {
  const ops = buildProgram(plan);
  const program = CompiledProgram.compile(ops, 99);
  try {
    const lo = program.address, hi = program.address + BigInt(program.size);
    let pointers = 0;
    ops.forEach((op, i) => {
      const words = program.word(i);
      assertEquals(words[0], BigInt(op.nr));
      op.args.forEach((a, j) => {
        if (typeof a === "number" || typeof a === "bigint") return;
        const p = words[1 + j];
        assertOk(p >= lo && p < hi, `${op.what}: argument ${j} outside the program`);
        pointers++;
      });
    });
    assertOk(pointers > 50);
    // A string argument reads back as written.
    const pivot = ops.findIndex((o) => o.what === "chdir into the rootfs");
    const text = new TextDecoder().decode(program.read(program.word(pivot)[1], 10));
    assertEquals(text, "/r/rootfs\0");
  } finally {
    program.free();
  }
});

Deno.test("--sysctl is written after pivot_root and before the masks; --init is bound read-only", () => {
  const ops = buildProgram({
    ...plan,
    sysctls: [["net.ipv4.conf.eth0/100.forwarding", "1"]],
    init: "/usr/bin/catatonit",
    shmSize: 128 * 1024 * 1024,
    security: {
      masked: [],
      readonly: ["/proc/sys"],
      devices: [],
      rlimits: [],
      sysWritable: false,
    } as unknown as NonNullable<ChildPlan["security"]>,
  });
  const at = (what: string) => ops.findIndex((o) => o.what === what);
  const open = at(
    "open /proc/sys/net/ipv4/conf/eth0.100/forwarding for sysctl " +
      "net.ipv4.conf.eth0/100.forwarding",
  );
  assertOk(open > at("pivot_root"), "after pivot_root");
  assertEquals(ops[open + 1].what, "write sysctl net.ipv4.conf.eth0/100.forwarding=1");
  const masks = at("bind /proc/sys on /proc/sys");
  assertOk(masks > open, "before /proc/sys is made read-only");
  const init = ops.filter((o) => o.what.includes("/r/rootfs/dev/init")).map((o) => o.what);
  assertEquals(init, [
    "create /r/rootfs/dev/init",
    "mount /usr/bin/catatonit on /r/rootfs/dev/init",
    "mount /usr/bin/catatonit on /r/rootfs/dev/init",
  ]);
  assertOk(ops.some((o) => o.what === "mount tmpfs on /r/rootfs/dev/shm"));
});
