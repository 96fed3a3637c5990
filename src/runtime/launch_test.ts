/**
 * launch.ts's handshake on the recording host (host_fake.ts), without root: the pause and hold
 * records of a held child, and what is undone when a held child does not hold.
 */
import { assertEquals, assertOk as assert, assertRejects } from "../../tests/assert.ts";
import { bytes, type Op } from "../../ffi/clone.ts";
import { SYS } from "../../ffi/syscall_numbers.ts";
import { RecordingHost } from "./host_fake.ts";
import { type HandshakeFds, launch, PAUSE_RECORD, READY_RECORD } from "./launch.ts";

/** A status record of `index`, as a program writes it on its status pipe. */
function record(statusFd: number, index: number): Op {
  const rec = new Uint8Array(16);
  new DataView(rec.buffer).setBigInt64(0, BigInt(index), true);
  return { nr: SYS.write, args: [statusFd, bytes(rec), 16], what: `report ${index}` };
}

/** A stand-in program: the records it writes, then an execve. */
function program(indexes: number[]) {
  return (fds: HandshakeFds): Op[] => [
    ...indexes.map((i) => record(fds.statusFd, i)),
    { nr: SYS.execve, args: [], what: "execve /bin/true" },
  ];
}

Deno.test("launch: a paused child is answered, a held one returned waiting", async () => {
  const host = new RecordingHost();
  let pauseFd: number | undefined;
  const launched = await launch(host, {
    argv0: "true",
    tty: false,
    flags: 0,
    hold: true,
    program: (fds) => (pauseFd = fds.pauseFd, program([PAUSE_RECORD, READY_RECORD])(fds)),
    paused: (pid) => (host.calls.push(`paused ${pid}`), Promise.resolve()),
  });
  assertEquals(launched.pid, 4242);
  assert(pauseFd !== undefined);
  const after = host.calls.slice(host.calls.indexOf("paused 4242"));
  // The pause pipe's byte, then the ready record; nothing killed or reaped.
  assertEquals(after.slice(0, 4), [
    "paused 4242",
    `write fd ${pauseFd! + 1} 1 bytes`,
    `close ${pauseFd! + 1}`,
    after[3],
  ]);
  assert(/^read fd \d+$/.test(after[3]), after[3]);
  assert(!host.calls.some((c) => /^(kill|wait) /.test(c)), host.calls.join("\n"));
  assertEquals(host.openFds(), []);
});

Deno.test("launch: a held child that runs its command without the ready record fails, reaped", async () => {
  const host = new RecordingHost();
  await assertRejects(
    () =>
      launch(host, {
        argv0: "true",
        tty: false,
        flags: 0,
        hold: true,
        program: program([]),
      }),
    Error,
    "true: ended without reporting (exec before start?)",
  );
  const kill = host.calls.indexOf("kill 4242 9");
  assert(kill > 0 && host.calls[kill + 1] === "wait 4242", host.calls.join("\n"));
  assertEquals(host.openFds(), []);
});

Deno.test("launch: without hold, the ready record of a program is a failure", async () => {
  const host = new RecordingHost();
  let abandoned = false;
  await assertRejects(() =>
    launch(host, {
      argv0: "true",
      tty: false,
      flags: 0,
      program: program([READY_RECORD]),
      abandoned: () => (abandoned = true, Promise.resolve()),
    })
  );
  assert(abandoned);
  assert(host.calls.includes("wait 4242"), host.calls.join("\n"));
  assertEquals(host.openFds(), []);
});
