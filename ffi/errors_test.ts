import { assertEquals, assertMatch } from "../tests/assert.ts";
import { errnoName, SyscallError } from "./errors.ts";
import "./libc.ts";

Deno.test("errno numbers map to their symbolic names", () => {
  assertEquals(errnoName(2), "ENOENT");
  assertEquals(errnoName(1), "EPERM");
});

Deno.test("SyscallError names the call, its arguments and the errno", () => {
  const err = new SyscallError("mount", ["overlay", "/x"], 1);
  assertEquals(err.code, "EPERM");
  assertEquals(err.call, "mount");
  assertMatch(err.message, /^mount\("overlay", "\/x"\): EPERM \(Operation not permitted\)$/);
});
