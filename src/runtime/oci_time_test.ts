import { assertEquals, assertThrows } from "../../tests/assert.ts";
import type { Spec } from "../oci/spec.ts";
import { OciConfigError } from "./oci_config.ts";
import { timensOffsetsText, timeOffsetsOf } from "./oci_time.ts";

const spec = (linux: Record<string, unknown>) => ({ linux } as unknown as Spec);

Deno.test("timeOffsetsOf: needs a new time namespace and the two clocks in range", () => {
  const ns = [{ type: "mount" }, { type: "time" }];
  const offsets = { monotonic: { secs: 10 }, boottime: { secs: -5, nanosecs: 3 } };
  assertEquals(timeOffsetsOf(spec({ namespaces: ns, timeOffsets: offsets })), offsets);
  assertEquals(timeOffsetsOf(spec({ namespaces: ns })), undefined);
  assertThrows(() => timeOffsetsOf(spec({ namespaces: [], timeOffsets: offsets })), OciConfigError);
  assertThrows(
    () => timeOffsetsOf(spec({ namespaces: ns, timeOffsets: { realtime: { secs: 1 } } })),
    OciConfigError,
  );
  assertThrows(
    () => timeOffsetsOf(spec({ namespaces: ns, timeOffsets: { boottime: { nanosecs: 1e9 } } })),
    OciConfigError,
  );
  assertEquals(timensOffsetsText(offsets), "monotonic 10 0\nboottime -5 3\n");
});
