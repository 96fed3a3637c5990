/**
 * A RUN step's container through the spec `tsbox run` writes (run_spec.ts): what the runtime is
 * given, field by field, without root.
 */
import { assertEquals, assertOk as assert } from "../../tests/assert.ts";
import type { Spec } from "../oci/spec.ts";
import { boundingSet } from "../container/security_flags.ts";
import { DEFAULT_CAPS } from "../runtime/capabilities.ts";
import { startLimits } from "../runtime/container.ts";
import type { MountRequest } from "../runtime/mount_request.ts";
import { capabilitySets, namespacePlan, resourceLimits } from "../runtime/oci_config.ts";
import { prepareOci } from "../runtime/oci_plan.ts";
import { type PreparedSecurity, prepareSecurity } from "../runtime/security.ts";
import { USER_ERROR_ANNOTATION } from "../runtime/annotations.ts";
import { RUN_HOSTNAME, runStepConfig, type RunStepOptions, runStepSpec } from "./run_spec.ts";

const ID = "b".repeat(64);

/** The filter's instructions, read from the native memory the child would inherit. */
function filterBytes(f: PreparedSecurity["plan"]["seccomp"]): Uint8Array | undefined {
  if (!f) return undefined;
  const view = new Deno.UnsafePointerView(Deno.UnsafePointer.create(f.address)!);
  return new Uint8Array(view.getArrayBuffer(f.length * 8)).slice();
}

/**
 * A start of the spec (oci_plan.ts, in a scratch rootfs) confines as prepareSecurity({})
 * does for docker's 14 capabilities (a RUN step's confinement before): masks, read-only
 * paths, device cgroup rules, rlimits, no_new_privs, the same seccomp filter at the same place.
 */
async function assertSameConfinement(
  spec: Spec,
  name: string,
  insecure?: readonly number[],
): Promise<void> {
  const rootfs = await Deno.makeTempDir({ prefix: "tsbox-runspec-root-" });
  const before = insecure
    ? prepareSecurity({ privileged: true }, insecure)
    : prepareSecurity({}, DEFAULT_CAPS);
  const now = prepareOci(spec, rootfs, { id: ID, lastCap: 40, warn: () => {} }).security;
  try {
    const pick = (p: PreparedSecurity["plan"]) => [
      p.masked,
      p.readonly,
      p.rlimits,
      p.noNewPrivileges,
      p.seccompLate,
    ];
    assertEquals(pick(now.plan), pick(before.plan), name);
    const rules = resourceLimits(spec).devices ?? [];
    assertEquals(rules.slice(0, before.deviceRules.length), before.deviceRules, name);
    const filter = filterBytes(now.plan.seccomp);
    if (insecure) assertEquals(filter, undefined, `${name}: no seccomp filter`);
    else assert(filter !== undefined && filter.length > 0, `${name}: a seccomp filter`);
    assertEquals(filter, filterBytes(before.plan.seccomp), `${name}: the same filter`);
  } finally {
    before.free();
    now.free();
    await Deno.remove(rootfs, { recursive: true });
  }
}

/** The container's own mounts: those after the ones every container gets. */
function ownMounts(spec: Spec): MountRequest[] {
  const etc = (spec.mounts ?? []).findIndex((m) => m.destination === "/etc/resolv.conf");
  return (spec.mounts ?? []).slice(etc + 1).map((m): MountRequest =>
    m.type === "tmpfs"
      ? { kind: "tmpfs", target: m.destination, options: m.options!.slice(2).join(",") }
      : {
        kind: "bind",
        source: m.source!,
        target: m.destination,
        readOnly: m.options!.includes("ro"),
      }
  );
}

/** A link dir with two layers: passwd and group in the lower, nothing in the upper. */
async function layers(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "tsbox-runspec-" });
  await Deno.mkdir(`${dir}/L1/etc`, { recursive: true });
  await Deno.mkdir(`${dir}/L2`, { recursive: true });
  await Deno.writeTextFile(
    `${dir}/L1/etc/passwd`,
    "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
  );
  await Deno.writeTextFile(`${dir}/L1/etc/group`, "root:x:0:\napp:x:1000:\nwheel:x:10:app\n");
  return dir;
}

const MOUNTS: MountRequest[] = [
  { kind: "bind", source: "/tmp/ctx", target: "/src", readOnly: true },
  { kind: "bind", source: "/tmp/cache", target: "/root/.cache", readOnly: false },
  { kind: "tmpfs", target: "/scratch", options: "size=1m,mode=1777" },
];

const BASE: RunStepOptions = {
  argv: ["/bin/sh", "-c", "make"],
  env: ["PATH=/usr/bin:/bin", "A=1"],
  cwd: "/work",
  user: "",
  network: "host",
  mounts: [],
  layers: ["L1", "L2"],
};

Deno.test("a RUN step's container read back from its spec, field by field", async () => {
  const dir = await layers();
  const cases: [string, Partial<RunStepOptions>, (s: Spec) => void][] = [
    ["root, host network", {}, (s) => {
      assertEquals(s.process.args, BASE.argv);
      assertEquals(s.process.env, [...BASE.env, "HOME=/root"]);
      assertEquals(s.process.cwd, "/work");
      assertEquals(s.process.user, { uid: 0, gid: 0, additionalGids: [0] });
      assertEquals(s.hostname, RUN_HOSTNAME);
      assertEquals(namespacePlan(s).newNetwork, false);
      assertEquals(s.root.readonly, false);
      assertEquals(ownMounts(s), []);
      const { devices: _, ...limits } = startLimits(s);
      assertEquals(limits, {});
      const caps = capabilitySets(s.process, 40);
      assertEquals([...caps.bounding].sort(), [...DEFAULT_CAPS].sort());
      assertEquals(s.process.args[0] === "/dev/init", false);
      assertEquals(namespacePlan(s).newUser, false);
      const shm = s.mounts?.find((m) => m.destination === "/dev/shm");
      assert(shm?.options?.includes("size=65536k"), JSON.stringify(shm));
    }],
    ["USER app: its ids, HOME and groups from the stage's passwd", { user: "app" }, (s) => {
      assertEquals([s.process.user.uid, s.process.user.gid], [1000, 1000]);
      assertEquals(s.process.env?.at(-1), "HOME=/home/app");
      assert(s.process.user.additionalGids?.includes(10), String(s.process.user.additionalGids));
    }],
    ["--network=none: a namespace of its own", { network: "none" }, (s) => {
      assertEquals(namespacePlan(s).newNetwork, true);
    }],
    ["--mount binds and tmpfs as given", { mounts: MOUNTS }, (s) => {
      assertEquals(ownMounts(s), MOUNTS);
    }],
    ["HOME set by the image stays", { env: ["HOME=/h"] }, (s) => {
      assertEquals(s.process.env, ["HOME=/h"]);
    }],
  ];
  for (const [name, options, check] of cases) {
    const config = runStepConfig({ ...BASE, ...options });
    const spec = runStepSpec(ID, `${dir}/run`, dir, config);
    try {
      check(spec);
    } catch (err) {
      throw new Error(`${name}: ${(err as Error).message}`);
    }
    // The confinement a RUN step had before it went through the spec: docker's defaults.
    await assertSameConfinement(spec, name);
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("RUN --security=insecure: the given capabilities and --privileged's confinement", async () => {
  const dir = await layers();
  const caps = boundingSet();
  const spec = runStepSpec(ID, `${dir}/run`, dir, runStepConfig({ ...BASE, insecure: caps }));
  assertEquals(
    [...capabilitySets(spec.process, 63).bounding].sort((a, b) => a - b),
    [...caps].sort((a, b) => a - b),
  );
  assertEquals(spec.linux.maskedPaths, []);
  assert(spec.mounts?.find((m) => m.destination === "/sys")?.options?.includes("rw"));
  assertEquals(spec.linux.seccomp, undefined);
  await assertSameConfinement(spec, "insecure", caps);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a USER the stage cannot satisfy: the spec carries the runtime's UserError", async () => {
  const dir = await layers();
  const config = runStepConfig({ ...BASE, user: "nobody2" });
  const spec = runStepSpec(ID, `${dir}/run`, dir, config);
  assert(
    spec.annotations?.[USER_ERROR_ANNOTATION]?.includes("unable to find user nobody2"),
    JSON.stringify(spec.annotations),
  );
  await Deno.remove(dir, { recursive: true });
});
