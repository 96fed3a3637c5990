import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { UsageError } from "../errors.ts";
import { parseSignal } from "../container/signals.ts";
import { signalNumber } from "./signals.ts";

Deno.test("signalNumber: numbers, names with and without SIG, realtime", () => {
  assertEquals(signalNumber("9"), 9);
  assertEquals(signalNumber("KILL"), 9);
  assertEquals(signalNumber("SIGTERM"), 15);
  assertEquals(signalNumber("sigusr1"), 10);
  assertEquals(signalNumber("SIGRTMIN+3"), 37);
  assertEquals(signalNumber("RTMAX"), 64);
  assertEquals(signalNumber("0"), undefined);
  assertEquals(signalNumber("65"), undefined);
  assertEquals(signalNumber("SIGNOPE"), undefined);
});

Deno.test("the engine's parseSignal: trims, takes SIG before a number, refuses the unknown", () => {
  assertEquals(parseSignal(" SIGKILL "), 9);
  assertEquals(parseSignal("term"), 15);
  assertEquals(parseSignal("SIG9"), 9);
  assertEquals(parseSignal("SIGRTMAX-1"), 63);
  assertThrows(() => parseSignal("0"), UsageError);
  assertThrows(() => parseSignal("SIGSIGKILL"), UsageError);
  assertThrows(() => parseSignal("NOPE"), UsageError);
});
