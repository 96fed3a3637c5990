import { assertEquals } from "../tests/assert.ts";
import { cstr, errno, openLibc } from "./libc.ts";

const ENOENT = 2;
const EBADF = 9;

Deno.test("errno is the failed call's, even when something else sets the thread's errno after it", () => {
  const lib = openLibc({ access: { parameters: ["buffer", "i32"], result: "i32" } });
  assertEquals(lib.access(cstr("/nonexistent/tsbox-errno-probe"), 0), -1);
  // A call outside openLibc stands for what the runtime does between the call and the read (a
  // garbage collection's futex waits): it leaves EBADF in the thread's errno.
  const raw = Deno.dlopen("libc.so.6", { close: { parameters: ["i32"], result: "i32" } });
  try {
    assertEquals(raw.symbols.close(-1), -1);
  } finally {
    raw.close();
  }
  assertEquals(errno(), ENOENT);
  assertEquals(lib.access(cstr("/"), 0), 0);
  const bad = openLibc({ close: { parameters: ["i32"], result: "i32" } });
  assertEquals(bad.close(-1), -1);
  assertEquals(errno(), EBADF);
});
