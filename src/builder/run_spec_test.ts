/**
 * A RUN step's container through the spec `tsbox run` writes (run_spec.ts): what the runtime is
 * given, field by field, without root.
 */
import { assertEquals, assertOk as assert, assertThrows } from "../../tests/assert.ts";
import { boundingSet } from "../container/security_flags.ts";
import { DEFAULT_CAPS } from "../runtime/capabilities.ts";
import type { MountRequest } from "../runtime/mount_request.ts";
import { type PreparedSecurity, prepareSecurity } from "../runtime/security.ts";
import { prepareSettings } from "../runtime/security_settings.ts";
import { UserError } from "../runtime/user.ts";
import { RUN_HOSTNAME, runStepConfig, runStepFields, type RunStepOptions } from "./run_spec.ts";

const ID = "b".repeat(64);

/** The filter's instructions, read from the native memory the child would inherit. */
function filterBytes(p: PreparedSecurity): Uint8Array | undefined {
  const f = p.plan.seccomp;
  if (!f) return undefined;
  const view = new Deno.UnsafePointerView(Deno.UnsafePointer.create(f.address)!);
  return new Uint8Array(view.getArrayBuffer(f.length * 8)).slice();
}

/**
 * The settings read from the spec prepare what prepareSecurity({}) prepares for docker's 14
 * capabilities (a RUN step's confinement before): masks, read-only paths, devices and their
 * cgroup rules, rlimits, no_new_privs, the same seccomp filter at the same place.
 */
function assertSameConfinement(
  f: ReturnType<typeof runStepFields>,
  name: string,
  insecure?: readonly number[],
): void {
  const security = f.security;
  assert(security && "kind" in security, `${name}: explicit settings`);
  const before = insecure
    ? prepareSecurity({ privileged: true }, insecure)
    : prepareSecurity({}, DEFAULT_CAPS);
  const now = prepareSettings(security, f.capabilities ?? []);
  try {
    const { seccomp: _a, ...was } = before.plan;
    const { seccomp: _b, ...is } = now.plan;
    assertEquals(is, was, name);
    assertEquals(now.deviceRules, before.deviceRules, name);
    const filter = filterBytes(now);
    if (insecure) assertEquals(filter, undefined, `${name}: no seccomp filter`);
    else assert(filter !== undefined && filter.length > 0, `${name}: a seccomp filter`);
    assertEquals(filter, filterBytes(before), `${name}: the same filter`);
  } finally {
    before.free();
    now.free();
  }
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
  const cases: [string, Partial<RunStepOptions>, (f: ReturnType<typeof runStepFields>) => void][] =
    [
      ["root, host network", {}, (f) => {
        assertEquals(f.argv, BASE.argv);
        assertEquals(f.env, [...BASE.env, "HOME=/root"]);
        assertEquals(f.cwd, "/work");
        assertEquals(f.user, "0:0");
        assertEquals(f.hostname, RUN_HOSTNAME);
        assertEquals(f.network, "host");
        assertEquals(f.readOnly, false);
        assertEquals(f.mounts, []);
        assertEquals(f.resources, {});
        assertEquals([...(f.capabilities ?? [])].sort(), [...DEFAULT_CAPS].sort());
        assertEquals(f.init, undefined);
        assertEquals(f.userns, undefined);
        assertEquals(f.shmSize, 64 << 20);
      }],
      ["USER app: its ids, HOME and groups from the stage's passwd", { user: "app" }, (f) => {
        assertEquals(f.user, "1000:1000");
        assertEquals(f.env.at(-1), "HOME=/home/app");
        assert(f.groupAdd?.includes("10"), String(f.groupAdd));
      }],
      ["--network=none: a namespace of its own", { network: "none" }, (f) => {
        assertEquals(f.network, "private");
      }],
      ["--mount binds and tmpfs as given", { mounts: MOUNTS }, (f) => {
        assertEquals(f.mounts, MOUNTS);
      }],
      ["HOME set by the image stays", { env: ["HOME=/h"] }, (f) => {
        assertEquals(f.env, ["HOME=/h"]);
      }],
    ];
  for (const [name, options, check] of cases) {
    const config = runStepConfig({ ...BASE, ...options });
    const fields = runStepFields(ID, `${dir}/run`, dir, config);
    try {
      check(fields);
    } catch (err) {
      throw new Error(`${name}: ${(err as Error).message}`);
    }
    // The confinement a RUN step had before it went through the spec: docker's defaults.
    assertSameConfinement(fields, name);
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("RUN --security=insecure: the given capabilities and --privileged's confinement", async () => {
  const dir = await layers();
  const caps = boundingSet();
  const fields = runStepFields(ID, `${dir}/run`, dir, runStepConfig({ ...BASE, insecure: caps }));
  assertEquals(
    [...(fields.capabilities ?? [])].sort((a, b) => a - b),
    [...caps].sort((a, b) => a - b),
  );
  const security = fields.security;
  assert(security && "kind" in security);
  assertEquals(security.masked, []);
  assertEquals(security.sysWritable, true);
  assertEquals(security.seccomp, undefined);
  assertSameConfinement(fields, "insecure", caps);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a USER the stage cannot satisfy fails with the runtime's UserError", async () => {
  const dir = await layers();
  const config = runStepConfig({ ...BASE, user: "nobody2" });
  assertThrows(
    () => runStepFields(ID, `${dir}/run`, dir, config),
    UserError,
    "unable to find user nobody2",
  );
  await Deno.remove(dir, { recursive: true });
});
