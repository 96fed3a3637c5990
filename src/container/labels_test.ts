import { assertEquals, assertRejects, assertThrows } from "../../tests/assert.ts";
import { UsageError } from "../errors.ts";
import {
  labelsColumn,
  labelsFromFlags,
  mergeLabels,
  parseLabel,
  parseLabelFile,
} from "./labels.ts";

Deno.test("parseLabel: K=V, K alone is empty, the value keeps '=' and spaces", () => {
  assertEquals(parseLabel("a=b"), ["a", "b"]);
  assertEquals(parseLabel("a"), ["a", ""]);
  assertEquals(parseLabel("a="), ["a", ""]);
  assertEquals(parseLabel("a=b=c d"), ["a", "b=c d"]);
  assertEquals(parseLabel(" a =b"), ["a", "b"], "docker trims the key");
});

Deno.test("parseLabel refuses an empty name or whitespace in it, in docker's words", () => {
  assertEquals(
    assertThrows(() => parseLabel("=x"), UsageError).message,
    "invalid label '=x': empty name",
  );
  assertThrows(() => parseLabel(""), UsageError, "empty name");
  assertEquals(
    assertThrows(() => parseLabel("a b=c"), UsageError).message,
    "label 'a b' contains whitespaces",
  );
});

Deno.test("parseLabelFile: K=V lines, # comments and blank lines skipped, values as written", () => {
  const text = "\uFEFF# a comment\n\na=1\r\n  b=two words \n  # indented comment\nc\nd=x=y\n";
  assertEquals(parseLabelFile(text, "f"), ["a=1", "b=two words ", "c", "d=x=y"]);
  assertThrows(() => parseLabelFile("ok=1\nbad key=1\n", "f"), UsageError, "f:2:");
  assertThrows(() => parseLabelFile("=1\n", "f"), UsageError, "no label name");
});

Deno.test("labelsFromFlags: files first, then --label, later ones win", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/l`, "a=file\nb=file\n# c=no\n");
    assertEquals(await labelsFromFlags(["b=flag", "d"], [`${dir}/l`]), {
      a: "file",
      b: "flag",
      d: "",
    });
    assertEquals(await labelsFromFlags(), {});
    await assertRejects(
      () => labelsFromFlags([], [`${dir}/missing`]),
      UsageError,
      `open ${dir}/missing: no such file or directory`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("mergeLabels: the image's labels under the container's; labelsColumn sorted", () => {
  const merged = mergeLabels({ a: "img", b: "img" }, { b: "own", c: "own" });
  assertEquals(merged, { a: "img", b: "own", c: "own" });
  assertEquals(mergeLabels(null, {}), {});
  assertEquals(labelsColumn({ z: "1", a: "", m: "x=y" }), "a=,m=x=y,z=1");
});
