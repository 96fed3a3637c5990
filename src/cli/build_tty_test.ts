import { assertEquals, assertMatch } from "../../tests/assert.ts";
import { ttyPrinter } from "./build_tty.ts";

Deno.test("build tty view: steps with times, CACHED, a running step's last lines", () => {
  let out = "";
  const sink = {
    writeSync(p: Uint8Array) {
      out += new TextDecoder().decode(p);
      return p.length;
    },
  };
  let t = 1000;
  const p = ttyPrinter(sink, () => 60, () => t);
  const enc = new TextEncoder();
  p.event({ type: "step", step: 1, total: 2, instruction: "FROM busybox", vertex: "[1/2]" });
  p.event({ type: "step-done", step: 1, cached: true, id: "x", elapsedMs: 0 });
  p.event({ type: "step", step: 2, total: 2, instruction: "RUN make", vertex: "[2/2]" });
  for (let i = 1; i <= 8; i++) p.event({ type: "output", data: enc.encode(`l${i}\n`), step: 2 });
  t += 1500;
  p.failed(new Error("boom"));
  // The last frame: the header, both steps (the cached one and the failed one with its time),
  // and the failed step's last six lines.
  const last = out.slice(out.lastIndexOf("[+] Building"));
  // deno-lint-ignore no-control-regex -- the escape sequences the view draws with
  const escapes = /\x1b\[[0-9;]*[A-Za-z]|\r/g;
  const lines = last.split("\n").map((l) => l.replace(escapes, "").trimEnd());
  assertMatch(lines[0], /^\[\+\] Building 1\.5s \(2\/2\) FINISHED$/);
  // Each step's line as wide as the terminal, its time at the right edge.
  assertMatch(lines[1], /^ => CACHED \[1\/2\] FROM busybox +0\.0s$/);
  assertMatch(lines[2], /^ => ERROR \[2\/2\] RUN make +1\.5s$/);
  assertEquals([lines[1].length, lines[2].length], [60, 60]);
  assertEquals(lines.slice(3, 9), ["l3", "l4", "l5", "l6", "l7", "l8"].map((l) => ` => => # ${l}`));
});
