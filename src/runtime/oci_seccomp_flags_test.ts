import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { OciConfigError } from "./oci_config.ts";
import { seccompFlags, withSeccompFlags } from "./oci_seccomp_flags.ts";

Deno.test("seccompFlags: the honoured flags as the kernel's bits, the rest refused by name", () => {
  assertEquals(seccompFlags(undefined), 0);
  assertEquals(
    seccompFlags([
      "SECCOMP_FILTER_FLAG_TSYNC",
      "SECCOMP_FILTER_FLAG_LOG",
      "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    ]),
    7,
  );
  const notify = assertThrows(
    () => seccompFlags(["SECCOMP_FILTER_FLAG_NEW_LISTENER"]),
    OciConfigError,
  );
  assertEquals(notify.message.includes("SECCOMP_FILTER_FLAG_NEW_LISTENER is not supported"), true);
  assertThrows(() => seccompFlags(["LOG"]), OciConfigError);
  assertEquals(withSeccompFlags({ address: 1n, length: 2 }, ["SECCOMP_FILTER_FLAG_LOG"]), {
    address: 1n,
    length: 2,
    flags: 2,
  });
  assertEquals(withSeccompFlags(undefined, ["SECCOMP_FILTER_FLAG_LOG"]), undefined);
});
