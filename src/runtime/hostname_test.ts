import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { checkHostname, InvalidHostnameError, isValidHostname } from "./hostname.ts";

Deno.test("host names: RFC 1123 labels accepted, newlines and other injections refused", () => {
  for (const ok of ["a", "web", "Web-1", "a.b.c", "0abc", "x".repeat(63), "db01.example.org"]) {
    assertEquals(isValidHostname(ok), true, ok);
  }
  for (
    const bad of [
      "",
      "a\nb",
      "a\n127.0.0.1 evil",
      "a b",
      "a\tb",
      "-a",
      "a-",
      "a..b",
      ".a",
      "a.",
      "a_b",
      "é",
      "x".repeat(64),
    ]
  ) {
    assertEquals(isValidHostname(bad), false, JSON.stringify(bad));
  }
  const err = assertThrows(() => checkHostname("a\nb"), InvalidHostnameError);
  assertEquals(err.exitCode, 125);
  assertEquals(err.message.includes('"a\\nb"'), true, err.message);
});
