/**
 * The overlay holder (overlay_holder.ts) through launch.ts on the recording host, without root:
 * mapped before it is released, held once its mount is made, ended by its release; a failing
 * mount is the holder's error with nothing left.
 */
import { assertEquals, assertOk as assert, assertRejects } from "../../tests/assert.ts";
import { RecordingHost } from "./host_fake.ts";
import { holdOverlay } from "./overlay_holder.ts";
import type { RootlessMapping } from "./rootless.ts";
import { UsernsError } from "./userns.ts";

const MAPS = {
  uid: [{ inside: 0, outside: 1000, count: 1 }],
  gid: [{ inside: 0, outside: 1000, count: 1 }],
} as unknown as RootlessMapping;
const OVERLAY = { lowerBase: "/s/l", options: "lowerdir=A:B,upperdir=/c/upper,userxattr" };
const EPERM = 1;

/** The calls without the fd bookkeeping (pipe, close, read/write of fds). */
function steps(host: RecordingHost): string[] {
  return host.calls.filter((c) => !/^(pipe|close|read fd|write fd) /.test(c));
}

Deno.test("the holder: mapped, released, held after its mount, ended by release", async () => {
  const host = new RecordingHost();
  const held = await holdOverlay(host, "/c/rootfs", OVERLAY, MAPS);
  assertEquals(held.pid, 4242);
  assertEquals(held.view, "/proc/4242/root/c/rootfs");
  assertEquals(steps(host), ["clone NEWNS|NEWUSER", "rootless maps 4242 uid_map gid_map"]);
  const whats = host.programs[0].map((o) => o.what);
  const mount = whats.findIndex((w) => /overlay/.test(w) && /mount/.test(w));
  assert(mount > whats.indexOf("make / rprivate"), whats.join("\n"));
  assertEquals(whats.slice(-2), ["report the mount made", "hold the mount"]);
  // Only the hold pipe's write end stays open here while it holds.
  assertEquals(host.openFds().length, 1);
  await held.release();
  assertEquals(steps(host).slice(-2), ["kill 4242 9", "wait 4242"]);
  assertEquals(host.openFds(), []);
});

Deno.test("the holder: a failing overlay mount names the step; the holder reaped, fds closed", async () => {
  const host = new RecordingHost({
    programFailure: (ops) => ({
      opIndex: ops.findIndex((o) => /overlay/.test(o.what) && /mount/.test(o.what)),
      errno: EPERM,
    }),
  });
  const err = await assertRejects(
    () => holdOverlay(host, "/c/rootfs", OVERLAY, MAPS),
    UsernsError,
  );
  assert(
    /mounting the rootfs in a user namespace: .*overlay.*: EPERM/.test(err.message),
    err.message,
  );
  assertEquals(steps(host).at(-1), "wait 4242");
  assertEquals(host.openFds(), []);
});
