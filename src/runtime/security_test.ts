import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { UsageError } from "../errors.ts";
import { checkInsideRoot, deviceOps, OutsideRootError, parseUlimit } from "./security.ts";

Deno.test("--ulimit parsing", () => {
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
