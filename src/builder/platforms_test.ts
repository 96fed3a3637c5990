import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { UsageError } from "../errors.ts";
import { parsePlatforms } from "./platforms.ts";

Deno.test("--platform a,b: each normalised, in order; a repeat or a bad one refused by name", () => {
  assertEquals(parsePlatforms("linux/amd64,linux/arm64/v8"), [
    { os: "linux", architecture: "amd64" },
    { os: "linux", architecture: "arm64" },
  ]);
  assertEquals(parsePlatforms("linux/arm/v7, linux/amd64").length, 2);
  assertThrows(
    () => parsePlatforms("linux/arm64,linux/aarch64"),
    UsageError,
    "linux/arm64 is given twice",
  );
  assertThrows(
    () => parsePlatforms("linux/amd64,linux/a/b/c"),
    UsageError,
    "--platform linux/amd64,linux/a/b/c",
  );
});
