import { assertEquals } from "../../tests/assert.ts";
import { prefixedSink } from "./build_platform_output.ts";

Deno.test("prefixedSink: whole lines, each prefixed, a partial one held until its end or flush", () => {
  const writes: string[] = [];
  const dec = new TextDecoder();
  const sink = {
    writeSync(p: Uint8Array) {
      writes.push(dec.decode(p));
      return p.length;
    },
  };
  const enc = new TextEncoder();
  const s = prefixedSink(sink, "linux/arm64");
  s.writeSync(enc.encode("Step 1/2 : FROM x\npart"));
  s.writeSync(enc.encode("ial"));
  assertEquals(writes, ["[linux/arm64] Step 1/2 : FROM x\n"]);
  s.writeSync(enc.encode(" line\n\nlast"));
  s.flush();
  assertEquals(writes.slice(1), [
    "[linux/arm64] partial line\n",
    "[linux/arm64] \n",
    "[linux/arm64] last\n",
  ]);
});
