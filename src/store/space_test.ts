import { assertEquals, assertOk, assertThrows } from "../../tests/assert.ts";
import { defaultFloor, DiskFullError, diskFullIn, isNoSpace, mib, SpaceGuard } from "./space.ts";
import { statvfs } from "../../ffi/statvfs.ts";

const MiB = 1024 * 1024;

Deno.test("the default floor is 5% of the filesystem, between 1 and 256 MiB", () => {
  assertEquals(defaultFloor(32 * MiB), Math.floor(32 * MiB / 20));
  assertEquals(defaultFloor(4 * MiB), 1 * MiB);
  assertEquals(defaultFloor(1024 * 1024 * MiB), 256 * MiB);
  assertEquals(mib(1.6 * MiB), "1.6 MiB");
  assertEquals(mib(256 * MiB), "256 MiB");
});

Deno.test("the guard refuses below its floor, naming the filesystem, and looks every N bytes", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const free = statvfs(dir).availableBytes;
    // A floor above what is free: every look fails.
    const guard = new SpaceGuard(dir, { floorBytes: free + 1024 * MiB, checkEvery: 1000 });
    guard.reserve(999); // not looked at yet
    const err = assertThrows(() => guard.reserve(1), DiskFullError);
    assertEquals(err.path, dir);
    assertOk(err.message.includes(`on the filesystem of ${dir}`), err.message);
    assertOk(err.message.includes("tsbox keeps free"), err.message);
    // A write larger than what is free fails before it is made, even with no floor to speak of.
    const small = new SpaceGuard(dir, { floorBytes: 1, checkEvery: 1 });
    assertThrows(() => small.reserve(free + 1024 * MiB), DiskFullError, "more would leave");
    small.reserve(1);
    // 0: no floor at all.
    new SpaceGuard(dir, { floorBytes: 0, checkEvery: 1 }).check(Number.MAX_SAFE_INTEGER);
  } finally {
    Deno.removeSync(dir);
  }
});

Deno.test("ENOSPC and EDQUOT, also wrapped, become DiskFullError naming the step and path", () => {
  const enospc = Object.assign(new Error("No space left on device (os error 28)"), {
    code: "ENOSPC",
  });
  const wrapped = new Error('layer entry "x": write failed', { cause: enospc });
  assertOk(isNoSpace(enospc) && isNoSpace(wrapped));
  assertOk(!isNoSpace(new Error("EIO")));
  const err = diskFullIn("layer L: unpacking into /r/layers/.tmp-1", "/r/layers/.tmp-1", wrapped);
  assertOk(err instanceof DiskFullError);
  assertEquals(err.path, "/r/layers/.tmp-1");
  assertEquals(
    err.message,
    'layer L: unpacking into /r/layers/.tmp-1: no space left on device (layer entry "x": write failed)',
  );
  const quota = Object.assign(new Error("Disk quota exceeded"), { code: "EDQUOT" });
  assertOk((diskFullIn("w", "/p", quota) as Error).message.includes("disk quota exceeded"));
  const other = new Error("EIO");
  assertEquals(diskFullIn("w", "/p", other), other);
});
