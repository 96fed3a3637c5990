import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { goBoolFlags } from "./arg_parsers.ts";
import { UsageError } from "../errors.ts";

const A = ["-a", "--archive"];

Deno.test("goBoolFlags: pflag's -a=false and --archive=true become commander's flags", () => {
  assertEquals(goBoolFlags(["cp", "-a=false", "-", "c:/t"], ["cp"], A), [
    "cp",
    "--no-archive",
    "-",
    "c:/t",
  ]);
  assertEquals(goBoolFlags(["--root", "/r", "cp", "--archive=true", "x", "c:/"], ["cp"], A), [
    "--root",
    "/r",
    "cp",
    "--archive",
    "x",
    "c:/",
  ]);
  assertEquals(goBoolFlags(["container", "cp", "-a=1", "x", "c:/"], ["container", "cp"], A), [
    "container",
    "cp",
    "--archive",
    "x",
    "c:/",
  ]);
  // Another command, or the words of a container's command line, are left alone.
  const exec = ["exec", "c", "cp", "-a=false", "x", "y"];
  assertEquals(goBoolFlags(exec, ["cp"], A), exec);
  assertEquals(goBoolFlags(["cp", "--", "-a=false"], ["cp"], A), ["cp", "--", "-a=false"]);
  assertThrows(() => goBoolFlags(["cp", "-a=maybe", "x", "c:/"], ["cp"], A), UsageError);
});
