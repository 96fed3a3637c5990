import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { UsageError } from "../errors.ts";
import { parseSignal as engineSignal } from "../container/signals.ts";
import { parseSignal } from "./oci_signals.ts";

Deno.test("parseSignal: numbers, names with and without SIG, realtime", () => {
  assertEquals(parseSignal("9"), 9);
  assertEquals(parseSignal("KILL"), 9);
  assertEquals(parseSignal("SIGTERM"), 15);
  assertEquals(parseSignal("sigusr1"), 10);
  assertEquals(parseSignal("SIGRTMIN+3"), 37);
  assertEquals(parseSignal("RTMAX"), 64);
  assertEquals(parseSignal("0"), undefined);
  assertEquals(parseSignal("65"), undefined);
  assertEquals(parseSignal("SIGNOPE"), undefined);
});

Deno.test("the engine's parseSignal: trims, takes SIG before a number, refuses the unknown", () => {
  assertEquals(engineSignal(" SIGKILL "), 9);
  assertEquals(engineSignal("term"), 15);
  assertEquals(engineSignal("SIG9"), 9);
  assertEquals(engineSignal("SIGRTMAX-1"), 63);
  assertThrows(() => engineSignal("0"), UsageError);
  assertThrows(() => engineSignal("SIGSIGKILL"), UsageError);
  assertThrows(() => engineSignal("NOPE"), UsageError);
});
