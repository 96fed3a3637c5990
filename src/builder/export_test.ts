import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { UsageError } from "../errors.ts";
import { parseBuildContextFlag } from "./build_context.ts";
import { parseOutputFlag } from "./export.ts";

Deno.test("parseOutputFlag: buildx's forms", () => {
  assertEquals(parseOutputFlag("out"), { type: "local", dest: "out" });
  assertEquals(parseOutputFlag("-"), { type: "tar", dest: "-" });
  assertEquals(parseOutputFlag("type=local,dest=d"), { type: "local", dest: "d" });
  assertEquals(parseOutputFlag("type=tar,dest=f.tar"), { type: "tar", dest: "f.tar" });
  assertEquals(parseOutputFlag("type=oci,dest=-"), { type: "oci", dest: "-" });
  assertEquals(parseOutputFlag("type=image,name=x"), { type: "image" });
  assertEquals(parseOutputFlag("dest=d"), { type: "local", dest: "d" });
  for (
    const bad of ["type=local", "type=local,dest=-", "type=registry,ref=r", "type=tar,dest=f,x=y"]
  ) {
    assertThrows(() => parseOutputFlag(bad), UsageError);
  }
});

Deno.test("parseBuildContextFlag: NAME=SOURCE, the name lower-cased", () => {
  assertEquals(parseBuildContextFlag("Base=docker-image://alpine:3"), {
    name: "base",
    source: "docker-image://alpine:3",
  });
  assertEquals(parseBuildContextFlag("alpine:3.19=/d"), { name: "alpine:3.19", source: "/d" });
  for (const bad of ["=x", "x=", "x", "a b=/d"]) {
    assertThrows(() => parseBuildContextFlag(bad), UsageError);
  }
});
