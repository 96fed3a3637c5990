/**
 * `tsbox runc` (root) with `linux.seccomp.flags` and a time namespace with
 * `linux.timeOffsets`: SECCOMP_FILTER_FLAG_LOG makes the kernel log a denied call (an audit
 * record naming the container's process) that the same filter without the flag does not, the
 * flags that need a notify agent are refused; a time namespace shifts the container's boot
 * clock (/proc/uptime) by its offset, for its first process and for one exec'd later, and
 * offsets without one are refused.
 */
import { join } from "node:path";
import { assertEquals, assertOk, assertStringIncludes } from "./assert.ts";
import type { Spec } from "../src/oci/spec.ts";
import {
  alive,
  bundle,
  cgroupExists,
  removeTestCgroups,
  rootTest,
  rt,
  setup as setupPrefix,
  sh,
} from "./oci_bundle.ts";

const setup = () => setupPrefix("tsbox-ociflags");

/** A filter that denies mkdir with EPERM, installed with `flags`. */
function denyMkdir(flags?: string[]): NonNullable<Spec["linux"]["seccomp"]> {
  return {
    defaultAction: "SCMP_ACT_ALLOW",
    architectures: ["SCMP_ARCH_X86_64"],
    ...(flags ? { flags } : {}),
    syscalls: [{ names: ["mkdir", "mkdirat"], action: "SCMP_ACT_ERRNO", errnoRet: 1 }],
  };
}

/** Whether the kernel log has a seccomp audit record (type 1326) of `pid` running mkdir. */
async function auditedMkdir(pid: number): Promise<boolean> {
  const log = await sh("dmesg", []);
  return log.split("\n").some((l) =>
    l.includes("type=1326") && l.includes(` pid=${pid} `) && l.includes('comm="mkdir"')
  );
}

rootTest("tsbox runc: seccomp flags: LOG logs a denied call, notify flags refused", async () => {
  const f = await setup();
  const state = join(f.work, "state-seccomp");
  const run = async (name: string, flags?: string[]) => {
    const b = await bundle(f, name, ["mkdir", `/tmp/probe-${name}`], (s) => ({
      ...s,
      root: { ...s.root, readonly: false },
      linux: { ...s.linux, seccomp: denyMkdir(flags) },
    }));
    const pidFile = join(f.work, `${name}.pid`);
    const c = await rt(f, state, ["create", "--bundle", b, "--pid-file", pidFile, `t-${name}`]);
    assertEquals(c.code, 0, c.stderr);
    const pid = Number(await Deno.readTextFile(pidFile));
    assertEquals((await rt(f, state, ["start", `t-${name}`])).code, 0);
    for (let i = 0; i < 200 && alive(pid); i++) await new Promise((r) => setTimeout(r, 25));
    assertEquals((await rt(f, state, ["delete", `t-${name}`])).code, 0);
    // The filter denied it either way.
    assertEquals(await Deno.stat(join(f.rootfs, `tmp/probe-${name}`)).then(() => 1, () => 0), 0);
    return pid;
  };
  try {
    const logged = await run("log", ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]);
    const quiet = await run("nolog");
    // The kernel's audit thread prints asynchronously: wait for the logged one.
    let seen = false;
    for (let i = 0; i < 100 && !seen; i++) {
      seen = await auditedMkdir(logged);
      if (!seen) await new Promise((r) => setTimeout(r, 50));
    }
    assertOk(seen, `no seccomp audit record for pid ${logged} in dmesg`);
    assertEquals(await auditedMkdir(quiet), false);

    // A process exec'd into such a container gets the filter with its flags too.
    const le = await bundle(f, "logexec", ["sleep", "1000"], (s) => ({
      ...s,
      linux: { ...s.linux, seccomp: denyMkdir(["SECCOMP_FILTER_FLAG_LOG"]) },
    }));
    assertEquals((await rt(f, state, ["run", "-d", "--bundle", le, "t-logexec"])).code, 0);
    const execPid = join(f.work, "logexec.pid");
    const ex = await rt(f, state, [
      "exec",
      "--pid-file",
      execPid,
      "t-logexec",
      "mkdir",
      "/tmp/probe-exec",
    ]);
    assertEquals(ex.code, 1, ex.stderr);
    const exPid = Number(await Deno.readTextFile(execPid));
    seen = false;
    for (let i = 0; i < 100 && !seen; i++) {
      seen = await auditedMkdir(exPid);
      if (!seen) await new Promise((r) => setTimeout(r, 50));
    }
    assertOk(seen, `no seccomp audit record for the exec'd pid ${exPid}`);

    for (
      const [name, flag, message] of [
        ["notify", "SECCOMP_FILTER_FLAG_NEW_LISTENER", "is not supported"],
        ["bogus", "SECCOMP_FILTER_FLAG_BOGUS", "unknown flag"],
      ]
    ) {
      const b = await bundle(f, name, ["true"], (s) => ({
        ...s,
        linux: { ...s.linux, seccomp: denyMkdir([flag]) },
      }));
      const r = await rt(f, state, ["create", "--bundle", b, `t-${name}`]);
      assertEquals(r.code, 1, r.stderr);
      assertStringIncludes(r.stderr, `linux.seccomp.flags: `);
      assertStringIncludes(r.stderr, message);
      assertEquals(await Deno.stat(join(state, `t-${name}`)).then(() => 1, () => 0), 0);
      assertEquals(cgroupExists(f, name), false);
    }
  } finally {
    for (const id of ["t-log", "t-nolog", "t-logexec", "t-notify", "t-bogus"]) {
      await rt(f, state, ["delete", "--force", id]);
    }
    removeTestCgroups(f);
  }
});

rootTest("tsbox runc: a time namespace shifts the container's clocks by timeOffsets", async () => {
  const f = await setup();
  const state = join(f.work, "state-time");
  const b = await bundle(f, "time", [
    "sh",
    "-c",
    "readlink /proc/self/ns/time; cat /proc/self/timens_offsets; cut -d' ' -f1 /proc/uptime",
  ], (s) => ({
    ...s,
    linux: {
      ...s.linux,
      namespaces: [...s.linux.namespaces ?? [], { type: "time" }],
      timeOffsets: {
        monotonic: { secs: 86400000, nanosecs: 0 },
        boottime: { secs: 1000, nanosecs: 5 },
      },
    } as Spec["linux"],
  }));
  const uptime = () => Number(Deno.readTextFileSync("/proc/uptime").split(" ")[0]);
  try {
    const before = uptime();
    const r = await rt(f, state, ["run", "--bundle", b, "t-time"]);
    const after = uptime();
    assertEquals(r.code, 0, r.stderr);
    const [ns, mono, boot, up] = r.stdout.trim().split("\n");
    assertOk(ns.startsWith("time:["));
    assertOk(ns !== Deno.readLinkSync("/proc/self/ns/time"), "a time namespace of its own");
    assertEquals(mono.trim().split(/\s+/), ["monotonic", "86400000", "0"]);
    assertEquals(boot.trim().split(/\s+/), ["boottime", "1000", "5"]);
    // Its uptime is the host's, read around the run, plus the boottime offset.
    const seen = Number(up);
    assertOk(
      seen >= before + 1000 - 0.01 && seen <= after + 1000 + 0.01,
      `${seen} not within [${before}, ${after}] + 1000`,
    );

    // A process exec'd into a running container joins its time namespace too.
    const d = await bundle(f, "timed", ["sleep", "1000"], (s) => ({
      ...s,
      linux: {
        ...s.linux,
        namespaces: [...s.linux.namespaces ?? [], { type: "time" }],
        timeOffsets: { boottime: { secs: 500 } },
      } as Spec["linux"],
    }));
    assertEquals((await rt(f, state, ["run", "-d", "--bundle", d, "t-timed"])).code, 0);
    const pid = JSON.parse((await rt(f, state, ["state", "t-timed"])).stdout).pid as number;
    const before2 = uptime();
    const ex = await rt(f, state, [
      "exec",
      "t-timed",
      "sh",
      "-c",
      "readlink /proc/self/ns/time; cut -d' ' -f1 /proc/uptime",
    ]);
    const after2 = uptime();
    assertEquals(ex.code, 0, ex.stderr);
    const [exNs, exUp] = ex.stdout.trim().split("\n");
    assertEquals(exNs, Deno.readLinkSync(`/proc/${pid}/ns/time`));
    assertOk(Number(exUp) >= before2 + 500 - 0.01 && Number(exUp) <= after2 + 500 + 0.01, exUp);

    // Offsets without a time namespace: refused, nothing left.
    const lone = await bundle(f, "lone", ["true"], (s) => ({
      ...s,
      linux: { ...s.linux, timeOffsets: { boottime: { secs: 5 } } } as Spec["linux"],
    }));
    const refused = await rt(f, state, ["create", "--bundle", lone, "t-lone"]);
    assertEquals(refused.code, 1);
    assertStringIncludes(refused.stderr, "linux.timeOffsets is set but linux.namespaces has no");
    assertEquals(await Deno.stat(join(state, "t-lone")).then(() => 1, () => 0), 0);
  } finally {
    await rt(f, state, ["delete", "--force", "t-time"]);
    await rt(f, state, ["delete", "--force", "t-timed"]);
    await rt(f, state, ["delete", "--force", "t-lone"]);
    removeTestCgroups(f);
  }
});
