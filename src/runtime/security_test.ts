import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { UsageError } from "../errors.ts";
import { DEFAULT_CAPS } from "./capabilities.ts";
import {
  boundingSet,
  checkInsideRoot,
  deviceOps,
  OutsideRootError,
  parseDevice,
  parseSecurityOpts,
  parseUlimit,
  resolveCapabilities,
} from "./security.ts";

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

Deno.test("--device and --ulimit parsing", () => {
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
  assertEquals(parseUlimit("nofile=10:20").limit, { soft: 10n, hard: 20n });
  assertEquals(parseUlimit("nproc=5").limit, { soft: 5n, hard: 5n });
  assertEquals(parseUlimit("core=-1").limit.hard, 0xffffffffffffffffn);
  assertThrows(() => parseUlimit("nofile=20:10"), UsageError);
  assertThrows(() => parseUlimit("bogus=1"), UsageError);
});

Deno.test("deviceOps: subdirectories once, standard names only bound, links left alone", () => {
  const ops = deviceOps("/r/dev", [
    { source: "/dev/net/tun", target: "/dev/net/tun", permissions: "rwm" },
    { source: "/dev/null", target: "/dev/null", permissions: "rwm" },
    { source: "/dev/x", target: "/dev/fd", permissions: "rwm" },
  ]);
  assertEquals(ops.map((o) => o.what), [
    "mkdir /r/dev/net",
    "create /r/dev/net/tun",
    "bind /dev/net/tun on /r/dev/net/tun",
    "bind /dev/null on /r/dev/null",
  ]);
});

Deno.test("checkInsideRoot refuses /proc, /sys and below /dev, after resolving", () => {
  // A resolver where the image's /work is a symlink to /proc/self.
  const resolve = (p: string) => `/root${p.replace(/^\/work/, "/proc/self")}`;
  checkInsideRoot(resolve, "/srv/app", "working directory");
  checkInsideRoot(resolve, "/dev", "working directory");
  for (const bad of ["/proc/self/fd/5", "/proc", "/sys/kernel", "/dev/fd/3", "/work/cwd"]) {
    assertThrows(() => checkInsideRoot(resolve, bad, "working directory"), OutsideRootError);
  }
});
