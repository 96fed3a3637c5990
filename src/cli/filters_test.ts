import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { ArgumentValueError } from "./arg_parsers.ts";
import {
  boolFilter,
  collectFilter,
  FilterError,
  globMatch,
  InvalidFilterError,
  matchesPattern,
  matchLabels,
  parseFilters,
} from "./filters.ts";
import { PS_FILTER_KEYS } from "./container_filters.ts";

Deno.test("parseFilters groups values by key, lower-cases and trims as docker", () => {
  const f = parseFilters(
    ["label=a=1", " Label = b ", "status=running", "label!=c"],
    PS_FILTER_KEYS,
  );
  assertEquals([...f.entries()], [
    ["label", ["a=1", "b"]],
    ["status", ["running"]],
    ["label!", ["c"]],
  ]);
});

Deno.test("parseFilters refuses an unknown key with docker's message and exit code 1", () => {
  const err = assertThrows(
    () => parseFilters(["status=running", "bogus=1"], PS_FILTER_KEYS),
    InvalidFilterError,
  );
  assertEquals(err.message, "invalid filter 'bogus'");
  assertEquals(err.exitCode, 1);
  // A key one command takes is unknown to another.
  assertThrows(() => parseFilters(["dangling=true"], PS_FILTER_KEYS), InvalidFilterError);
});

Deno.test("collectFilter refuses a value without '=' as docker's flag parser", () => {
  assertEquals(collectFilter("a=b", ["x=y"]), ["x=y", "a=b"]);
  const err = assertThrows(() => collectFilter("bogus"), ArgumentValueError);
  assertEquals(err.message, "bad format of filter (expected name=value)");
});

Deno.test("matchLabels: label=K, K=V, label!=K, label!=K=V and K!=V, all must hold", () => {
  const labels = { app: "web", tier: "", "com.example.v": "1=2" };
  const m = (...values: string[]) => matchLabels(parseFilters(values, ["label", "label!"]), labels);
  assertEquals(m(), true);
  assertEquals(m("label=app"), true);
  assertEquals(m("label=app=web"), true);
  assertEquals(m("label=app=db"), false);
  assertEquals(m("label=tier="), true, "an empty value is a value");
  assertEquals(m("label=tier=x"), false);
  assertEquals(m("label=com.example.v=1=2"), true, "the value holds '='");
  assertEquals(m("label=missing"), false);
  assertEquals(m("label=app", "label=missing"), false, "label values are all required");
  assertEquals(m("label!=missing"), true);
  assertEquals(m("label!=app"), false);
  assertEquals(m("label!=app=db"), true);
  assertEquals(m("label!=app=web"), false);
  assertEquals(m("label=app!=db"), true, "docker's K!=V spelling");
  assertEquals(m("label=app!=web"), false);
  assertEquals(matchLabels(parseFilters(["label=a"], ["label"]), {}), false);
  assertEquals(matchLabels(parseFilters(["label!=a"], ["label!"]), {}), true);
});

Deno.test("boolFilter takes true/1 and false/0; anything else is docker's invalid filter", () => {
  const b = (...values: string[]) => boolFilter(parseFilters(values, ["dangling"]), "dangling");
  assertEquals(b(), undefined);
  assertEquals(b("dangling=true"), true);
  assertEquals(b("dangling=1"), true);
  assertEquals(b("dangling=false"), false);
  assertEquals(b("dangling=0"), false);
  const bogus = assertThrows(() => b("dangling=bogus"), InvalidFilterError);
  assertEquals(bogus.message, "invalid filter 'dangling=[bogus]'");
  assertThrows(() => b("dangling=true", "dangling=false"), InvalidFilterError);
});

Deno.test("matchesPattern: equal, or a regular expression found in the text", () => {
  assertEquals(matchesPattern("web", "t-web-1"), true);
  assertEquals(matchesPattern("^web$", "t-web-1"), false);
  assertEquals(matchesPattern("^t-.*-1$", "t-web-1"), true);
  assertEquals(matchesPattern("[", "["), true, "a bad expression matches itself");
  assertEquals(matchesPattern("[", "a["), false);
});

Deno.test("globMatch is Go's path.Match", () => {
  const cases: [string, string, boolean][] = [
    ["busybox", "busybox", true],
    ["busybox", "busybox:latest", false],
    ["busy*", "busybox", true],
    ["*:latest", "busybox:latest", true],
    ["*", "host:5000/app", false],
    ["*/app", "host:5000/app", true],
    ["b?sybox:*", "busybox:1.36", true],
    ["[a-c]usybox", "busybox", true],
    ["[^a-c]usybox", "busybox", false],
    ["[^a-c]usybox", "musybox", true],
    ["app:v[0-9]", "app:v7", true],
    ["app:v[0-9]", "app:vx", false],
    ["a\\*b", "a*b", true],
    ["a\\*b", "axb", false],
    ["a.b", "axb", false],
  ];
  for (const [pattern, name, want] of cases) {
    assertEquals(globMatch(pattern, name), want, `${pattern} ~ ${name}`);
  }
  for (const bad of ["[", "a[", "[]", "a\\"]) {
    assertThrows(() => globMatch(bad, "a"), FilterError, "syntax error in pattern");
  }
});
