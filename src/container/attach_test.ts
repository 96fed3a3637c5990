import { join } from "node:path";
import {
  AttachServer,
  decodeExit,
  decodeResize,
  encodeFrame,
  exitFrame,
  FRAME,
  FrameDecoder,
  FrameError,
  resizeFrame,
  withShortPath,
} from "./attach.ts";
import { DetachKeysError, parseDetachKeys } from "./attach_client.ts";
import { assertEquals, assertOk, assertThrows } from "../../tests/assert.ts";

const enc = new TextEncoder();

Deno.test("frames: docker's stdcopy header, decoded whatever the chunk boundaries", () => {
  const a = encodeFrame(FRAME.stdout, enc.encode("hello"));
  assertEquals(Array.from(a.subarray(0, 8)), [1, 0, 0, 0, 0, 0, 0, 5]);
  const b = encodeFrame(FRAME.stderr, enc.encode("x".repeat(300)));
  const all = new Uint8Array([
    ...a,
    ...b,
    ...exitFrame(-3),
    ...resizeFrame({ rows: 40, cols: 120 }),
  ]);
  for (const step of [1, 3, 7, all.length]) {
    const d = new FrameDecoder();
    const frames = [];
    for (let i = 0; i < all.length; i += step) frames.push(...d.push(all.subarray(i, i + step)));
    assertEquals(frames.map((f) => f.type), [FRAME.stdout, FRAME.stderr, FRAME.exit, FRAME.resize]);
    assertEquals(new TextDecoder().decode(frames[0].payload), "hello");
    assertEquals(frames[1].payload.length, 300);
    assertEquals(decodeExit(frames[2].payload), -3);
    assertEquals(decodeResize(frames[3].payload), { rows: 40, cols: 120 });
  }
  const huge = new Uint8Array(8);
  new DataView(huge.buffer).setUint32(4, 64 << 20, false);
  assertThrows(() => new FrameDecoder().push(huge), FrameError);
});

Deno.test("detach keys: docker's syntax", () => {
  assertEquals(Array.from(parseDetachKeys("ctrl-p,ctrl-q")), [0x10, 0x11]);
  assertEquals(Array.from(parseDetachKeys("ctrl-a,x,ctrl-@,ctrl-[,ctrl-_")), [1, 0x78, 0, 27, 31]);
  assertEquals(Array.from(parseDetachKeys("CTRL-Z")), [26]);
  for (const bad of ["", "ctrl-", "ctrl-1", "ab", "ctrl-p,,x"]) {
    assertThrows(() => parseDetachKeys(bad), DetachKeysError, `(${bad})`);
  }
});

async function readFrames(conn: Deno.Conn, until: (types: number[]) => boolean) {
  const d = new FrameDecoder();
  const frames = [];
  const buf = new Uint8Array(4096);
  while (!until(frames.map((f) => f.type))) {
    const n = await conn.read(buf);
    if (n === null) break;
    frames.push(...d.push(buf.subarray(0, n)));
  }
  return frames;
}

Deno.test({
  name: "attach server: 0600 socket at a path too long for sun_path, output, input, exit",
  sanitizeResources: false,
  fn: async () => {
    const base = await Deno.makeTempDir({ prefix: "tsbox-attach-" });
    const dir = join(base, "d".repeat(60), "e".repeat(60));
    await Deno.mkdir(dir, { recursive: true });
    const path = join(dir, "attach.sock");
    assertOk(enc.encode(path).length > 108);
    const server = AttachServer.listen(path);
    try {
      const info = await Deno.lstat(path);
      assertEquals(info.mode! & 0o777, 0o600);
      assertOk(info.isSocket);
      const received: string[] = [];
      const sizes: unknown[] = [];
      let closed = false;
      const conn = await withShortPath(path, (p) => Deno.connect({ transport: "unix", path: p }));
      await conn.write(encodeFrame(FRAME.ready));
      assertOk(await server.waitForClient(5000));
      // Input typed before a process runs is held, then delivered in order.
      await conn.write(encodeFrame(FRAME.stdin, enc.encode("early ")));
      await conn.write(encodeFrame(FRAME.closeStdin));
      await new Promise((r) => setTimeout(r, 50));
      await server.setTarget({
        write: (d) => Promise.resolve(void received.push(new TextDecoder().decode(d))),
        resize: (s) => void sizes.push(s),
        closeInput: () => void (closed = true),
      });
      await conn.write(encodeFrame(FRAME.stdin, enc.encode("late")));
      await conn.write(resizeFrame({ rows: 10, cols: 20 }));
      for (let i = 0; i < 500 && sizes.length === 0; i++) {
        await new Promise((r) => setTimeout(r, 10));
      }
      server.broadcast(1, enc.encode("out"));
      server.broadcast(2, enc.encode("err"));
      const ended = server.endRun(7);
      const frames = await readFrames(conn, (t) => t.includes(FRAME.exit));
      await ended;
      assertEquals(frames.map((f) => f.type), [FRAME.stdout, FRAME.stderr, FRAME.exit]);
      assertEquals(decodeExit(frames[2].payload), 7);
      assertEquals(received.join(""), "early late");
      assertEquals(sizes, [{ rows: 10, cols: 20 }]);
      assertOk(closed, "the early end of input was applied");
      // The server hangs up after the exit frame.
      assertEquals(await conn.read(new Uint8Array(8)), null);
      conn.close();
    } finally {
      await server.close();
    }
    assertEquals(await Deno.lstat(path).then(() => true, () => false), false, "socket removed");
    await Deno.remove(base, { recursive: true });
  },
});
