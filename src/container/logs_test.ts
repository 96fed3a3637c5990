import { assertEquals } from "../../tests/assert.ts";
import { followLogs, LogWriter, readLogs } from "./logs.ts";

Deno.test("followLogs reads every line once while the writer rotates many times under it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/c-json.log`;
    const writer = await LogWriter.open(path, { maxSize: 1024, maxFile: 4 });
    let finished = false;
    const writing = (async () => {
      for (let i = 0; i < 400; i++) {
        await writer.write("stdout", `line-${i}\n`);
        // Now and then let the follower run mid-rotation-sequence.
        if (i % 7 === 0) await new Promise((r) => setTimeout(r, i % 3));
      }
      writer.close();
      finished = true;
    })();
    const seen: number[] = [];
    for await (const e of followLogs(path, {}, () => finished, 1)) {
      seen.push(Number(e.log.slice(5)));
    }
    await writing;
    assertEquals(seen, Array.from({ length: 400 }, (_, i) => i));
    // The writer did rotate: only the newest files are left, and readLogs agrees with them.
    const kept = (await readLogs(path)).map((e) => Number(e.log.slice(5)));
    assertEquals(kept.at(-1), 399);
    assertEquals(kept[0] > 0, true, "old files were deleted");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
