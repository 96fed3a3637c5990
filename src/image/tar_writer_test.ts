import { assertEquals, assertRejects } from "../../tests/assert.ts";
import { TarReader } from "./tar.ts";
import { tarStream, TarWriteError, type TarWriterEntry } from "./tar_writer.ts";

const enc = new TextEncoder();
const longName = `blobs/${"d".repeat(120)}/${"f".repeat(90)}`;
const veryLongName = "x/".repeat(150) + "end";

function entries(): TarWriterEntry[] {
  return [
    { type: "directory", name: "blobs" },
    { type: "file", name: "manifest.json", size: 5, body: enc.encode("hello"), mtime: 1700000000 },
    {
      type: "file",
      name: "big",
      size: 1500,
      body: (async function* () {
        for (let i = 0; i < 3; i++) yield new Uint8Array(500).fill(i + 1);
      })(),
    },
    { type: "file", name: longName, size: 1, body: enc.encode("L") },
    { type: "file", name: veryLongName, size: 2, body: enc.encode("VL"), mode: 0o600 },
    { type: "symlink", name: "link", target: "big" },
  ];
}

async function bytesOf(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

Deno.test("tarStream output reads back with our reader", async () => {
  const got: { name: string; type: string; size: number; body: number[]; mode: number }[] = [];
  for await (const e of new TarReader(tarStream(entries()))) {
    const body = await e.bytes();
    got.push({
      name: e.header.name,
      type: e.header.type,
      size: e.header.size,
      body: [...body.subarray(0, 2)],
      mode: e.header.mode,
    });
  }
  assertEquals(got.map((g) => g.name), [
    "blobs/",
    "manifest.json",
    "big",
    longName,
    veryLongName,
    "link",
  ]);
  assertEquals(got.map((g) => g.type), [
    "directory",
    "file",
    "file",
    "file",
    "file",
    "symlink",
  ]);
  assertEquals(got[2].size, 1500);
  assertEquals(got[4].mode, 0o600);
  assertEquals(got[4].body, [...enc.encode("VL")]);
});

Deno.test("tarStream output is read identically by Python's tarfile", async () => {
  const bytes = await bytesOf(tarStream(entries()));
  const out = await new Deno.Command("python3", {
    args: [
      "-c",
      `import sys, tarfile, json
t = tarfile.open(fileobj=sys.stdin.buffer, mode="r|")
rows = []
for m in t:
    data = t.extractfile(m).read() if m.isfile() else b""
    rows.append([m.name, m.size, m.mtime, m.linkname, sum(data)])
print(json.dumps(rows))`,
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = out.stdin.getWriter();
  await w.write(bytes);
  await w.close();
  const res = await out.output();
  assertEquals(res.code, 0, new TextDecoder().decode(res.stderr));
  const rows = JSON.parse(new TextDecoder().decode(res.stdout));
  assertEquals(rows, [
    ["blobs", 0, 0, "", 0],
    ["manifest.json", 5, 1700000000, "", [...enc.encode("hello")].reduce((a, b) => a + b)],
    ["big", 1500, 0, "", 500 * (1 + 2 + 3)],
    [longName, 1, 0, "", "L".charCodeAt(0)],
    [veryLongName, 2, 0, "", "V".charCodeAt(0) + "L".charCodeAt(0)],
    ["link", 0, 0, "big", 0],
  ]);
});

Deno.test("a body shorter or longer than its size fails the archive", async () => {
  await assertRejects(
    () => bytesOf(tarStream([{ type: "file", name: "a", size: 10, body: enc.encode("short") }])),
    TarWriteError,
    "ended after 5 of 10 bytes",
  );
  await assertRejects(
    () => bytesOf(tarStream([{ type: "file", name: "a", size: 2, body: enc.encode("long") }])),
    TarWriteError,
    "longer than the 2 bytes",
  );
});
