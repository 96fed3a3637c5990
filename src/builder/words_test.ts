import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { expandOnly, ExpansionError, processWord, processWords } from "./words.ts";

const vars: Record<string, string> = { A: "one", EMPTY: "", SP: "x y" };
const lookup = (n: string) => vars[n];

Deno.test("words: $VAR and ${VAR}, unset is empty, lone $ stays", () => {
  assertEquals(processWord("$A-${A}_$NOPE.$", lookup), "one-one_.$");
});

Deno.test("words: default, alternative and required modifiers", () => {
  assertEquals(
    processWord("${NOPE:-def} ${EMPTY:-def} ${EMPTY-def} ${A:+alt} ${NOPE+alt}", lookup),
    "def def  alt ",
  );
  assertEquals(processWord("${NOPE:-${A}}", lookup), "one");
  assertThrows(() => processWord("${NOPE:?needed}", lookup), ExpansionError, "NOPE: needed");
});

Deno.test("words: quotes and escapes, split on unquoted whitespace only", () => {
  assertEquals(processWords(`a "b c" 'd $A' "e $A" f\\ g $SP`, lookup), [
    "a",
    "b c",
    "d $A",
    "e one",
    "f g",
    "x y",
  ]);
  assertEquals(processWords('"say \\"hi\\" \\$A"', lookup), ['say "hi" $A']);
  assertEquals(processWords("a`  b", lookup, { escape: "`" }), ["a ", "b"]);
  assertThrows(() => processWords('"open', lookup), ExpansionError);
});

Deno.test("words: exec-form elements expand but keep quotes", () => {
  assertEquals(expandOnly(`'$A' "x"`, lookup), `'one' "x"`);
});
