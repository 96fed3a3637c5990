import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { AddGitError, isGitUrl, parseGitUrl } from "./add_git.ts";

Deno.test("isGitUrl: BuildKit's git forms, not plain URLs or paths", () => {
  for (
    const yes of [
      "git://h/r.git",
      "git@github.com:o/r.git",
      "ssh://git@h/r",
      "https://h/o/r.git",
      "https://h/o/r.git#main:sub",
    ]
  ) assertEquals(isGitUrl(yes), true, yes);
  for (
    const no of [
      "https://h/file.tar.gz",
      "https://h/r.git/file",
      "src/",
      "ext::sh",
      "file:///r.git",
    ]
  ) {
    assertEquals(isGitUrl(no), false, no);
  }
});

Deno.test("parseGitUrl: #ref and #ref:subdir; a ref that could be an option is refused", () => {
  assertEquals(parseGitUrl("git://h/r.git"), { remote: "git://h/r.git" });
  assertEquals(parseGitUrl("git://h/r.git#v1"), {
    remote: "git://h/r.git",
    ref: "v1",
    subdir: undefined,
  });
  assertEquals(parseGitUrl("git://h/r.git#main:docs/x"), {
    remote: "git://h/r.git",
    ref: "main",
    subdir: "docs/x",
  });
  assertEquals(parseGitUrl("git://h/r.git#:docs"), {
    remote: "git://h/r.git",
    ref: undefined,
    subdir: "docs",
  });
  for (const bad of ["git://h/r.git#--upload-pack=x", "git://h/r.git#a..b"]) {
    assertThrows(() => parseGitUrl(bad), AddGitError);
  }
});
