import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { UsageError } from "../errors.ts";
import { DEFAULT_CAPS } from "../runtime/capabilities.ts";
import {
  boundingSet,
  parseDevice,
  parseSecurityOpts,
  resolveCapabilities,
} from "./security_flags.ts";

const ALL = Array.from({ length: 41 }, (_, i) => i);

Deno.test("capabilities: docker's add/drop rules, ALL, names in any spelling", () => {
  assertEquals(resolveCapabilities({}, DEFAULT_CAPS, ALL), [...DEFAULT_CAPS].sort((a, b) => a - b));
  assertEquals(resolveCapabilities({ capDrop: ["ALL"] }, DEFAULT_CAPS, ALL), []);
  assertEquals(
    resolveCapabilities({ capDrop: ["all"], capAdd: ["sys_admin"] }, DEFAULT_CAPS, ALL),
    [
      21,
    ],
  );
  const dropped = resolveCapabilities({ capDrop: ["CAP_CHOWN", "net_raw"] }, DEFAULT_CAPS, ALL);
  assertEquals(dropped.includes(0) || dropped.includes(13), false);
  assertEquals(resolveCapabilities({ capAdd: ["ALL"] }, DEFAULT_CAPS, [0, 1, 2]), [0, 1, 2]);
  assertEquals(resolveCapabilities({ privileged: true }, DEFAULT_CAPS, [3, 5]), [3, 5]);
  assertThrows(() => resolveCapabilities({ capAdd: ["nope"] }, DEFAULT_CAPS, ALL), UsageError);
  assertThrows(
    () => resolveCapabilities({ capAdd: ["SYS_RESOURCE"] }, DEFAULT_CAPS, [0, 1]),
    UsageError,
    "not available",
  );
});

Deno.test("boundingSet reads CapBnd", () => {
  assertEquals(boundingSet("Name:\tx\nCapBnd:\t0000000000000005\n"), [0, 2]);
});

Deno.test("--security-opt spellings", () => {
  assertEquals(parseSecurityOpts([]), { noNewPrivileges: false, seccomp: "default" });
  assertEquals(parseSecurityOpts(["no-new-privileges"]).noNewPrivileges, true);
  assertEquals(parseSecurityOpts(["no-new-privileges:true"]).noNewPrivileges, true);
  assertEquals(parseSecurityOpts(["no-new-privileges=false"]).noNewPrivileges, false);
  assertEquals(parseSecurityOpts(["seccomp=unconfined"]).seccomp, "unconfined");
  assertEquals(parseSecurityOpts(["seccomp:/p.json"]).seccomp, "/p.json");
  assertThrows(() => parseSecurityOpts(["apparmor=x"]), UsageError);
});

Deno.test("--device parsing", () => {
  assertEquals(parseDevice("/dev/kmsg"), {
    source: "/dev/kmsg",
    target: "/dev/kmsg",
    permissions: "rwm",
  });
  assertEquals(parseDevice("/dev/kmsg:/dev/k:r"), {
    source: "/dev/kmsg",
    target: "/dev/k",
    permissions: "r",
  });
  assertEquals(parseDevice("/dev/kmsg:rw").permissions, "rw");
  assertThrows(() => parseDevice("/dev/kmsg:/etc/x"), UsageError);
  assertThrows(() => parseDevice("/dev/kmsg:/dev/../x"), UsageError);
});
