import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { UsageError } from "../errors.ts";
import { loginDomain } from "./login.ts";

Deno.test("loginDomain maps docker's spellings of a server to a registry domain", () => {
  assertEquals(loginDomain(undefined), "docker.io");
  assertEquals(loginDomain("https://index.docker.io/v1/"), "docker.io");
  assertEquals(loginDomain("registry-1.docker.io"), "docker.io");
  assertEquals(loginDomain("127.0.0.1:5000"), "127.0.0.1:5000");
  assertEquals(loginDomain("http://Quay.IO/some/path"), "quay.io");
  assertThrows(() => loginDomain("https:///"), UsageError);
});
