import { assertEquals } from "../../tests/assert.ts";
import { humanDuration, humanSize, table } from "./format.ts";

Deno.test("sizes read like docker's", () => {
  assertEquals(humanSize(0), "0B");
  assertEquals(humanSize(999), "999B");
  assertEquals(humanSize(4_261_000), "4.26MB");
  assertEquals(humanSize(1_234_567_890), "1.23GB");
  assertEquals(humanSize(123_456), "123kB");
});

Deno.test("durations read like docker's", () => {
  assertEquals(humanDuration(500), "Less than a second");
  assertEquals(humanDuration(3000), "3 seconds");
  assertEquals(humanDuration(3 * 60_000), "3 minutes");
  assertEquals(humanDuration(3 * 86_400_000), "3 days");
});

Deno.test("tables align columns as docker's tabwriter (10 wide at least, 3 spaces)", () => {
  assertEquals(
    table(["A", "BB"], [["xyz", "1"], ["q", "22"]]),
    "A         BB\nxyz       1\nq         22",
  );
  assertEquals(
    table(["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"], [
      ["busybox", "latest", "abc123def456", "2 weeks ago", "4.26MB"],
    ]),
    "REPOSITORY   TAG       IMAGE ID       CREATED       SIZE\n" +
      "busybox      latest    abc123def456   2 weeks ago   4.26MB",
  );
});
