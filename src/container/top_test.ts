import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { parsePsOutput } from "./top.ts";

Deno.test("parsePsOutput keeps the container's rows, their threads, and joins the last column", () => {
  const out = [
    "USER         PID %CPU COMMAND",
    "root           1  0.0 /sbin/init splash",
    "root          42  0.0 sleep 600",
    "root           -  0.0 -",
    "root          43  1.0 sh -c x",
    "root           -  0.0 -",
    "",
  ].join("\n");
  const top = parsePsOutput(out, [42]);
  assertEquals(top.titles, ["USER", "PID", "%CPU", "COMMAND"]);
  assertEquals(top.processes, [["root", "42", "0.0", "sleep 600"], ["root", "-", "0.0", "-"]]);
  assertThrows(() => parsePsOutput("USER COMMAND\nroot x\n", [1]), Error, "Couldn't find PID");
});
