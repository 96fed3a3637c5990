import { assertEquals, assertNotEquals, assertOk } from "../tests/assert.ts";
import { bytes, cloneProgram, CompiledProgram, decodeStatus, str, Struct } from "./clone.ts";
import { closeFd, pipe, readFd, waitPid } from "./process.ts";
import { SYS } from "./syscall_numbers.ts";
import {
  getTermios,
  getWindowSize,
  isTerminal,
  makeRaw,
  openPty,
  POLL,
  poll,
  ptyNumber,
  readSome,
  receiveFd,
  setTermios,
  setWindowSize,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  socketPair,
  writeNow,
} from "./terminal.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

Deno.test("openPty gives a connected pair whose slave is a terminal at /dev/pts/N", () => {
  const pty = openPty();
  try {
    assertOk(isTerminal(pty.slave));
    const [r, w] = pipe();
    assertOk(!isTerminal(r));
    closeFd(r);
    closeFd(w);
    assertEquals(pty.path, `/dev/pts/${ptyNumber(pty.master)}`);
    assertOk(Deno.statSync(pty.path).isCharDevice);
  } finally {
    closeFd(pty.master);
    closeFd(pty.slave);
  }
});

Deno.test("window size set on the master is what the slave reports", () => {
  const pty = openPty();
  try {
    setWindowSize(pty.master, { rows: 37, cols: 121 });
    assertEquals(getWindowSize(pty.slave), { rows: 37, cols: 121 });
  } finally {
    closeFd(pty.master);
    closeFd(pty.slave);
  }
});

Deno.test("raw mode passes bytes through unprocessed; restoring brings canonical mode back", async () => {
  const pty = openPty();
  try {
    const saved = makeRaw(pty.slave);
    // In raw mode a lone byte (no newline) is readable at once, and ctrl-c is just a byte.
    writeNow(pty.master, new Uint8Array([0x61, 0x03]));
    const [rev] = await poll([pty.slave], POLL.IN, 2000);
    assertOk(rev & POLL.IN);
    assertEquals(Array.from(readSome(pty.slave) ?? []), [0x61, 0x03]);
    setTermios(pty.slave, saved);
    assertEquals(Array.from(getTermios(pty.slave)), Array.from(saved));
    // Canonical again: nothing is readable until the line ends.
    writeNow(pty.master, enc.encode("abc"));
    assertEquals((await poll([pty.slave], POLL.IN, 50))[0] & POLL.IN, 0);
    writeNow(pty.master, enc.encode("\n"));
    await poll([pty.slave], POLL.IN, 2000);
    assertEquals(dec.decode(readSome(pty.slave)), "abc\n");
  } finally {
    closeFd(pty.master);
    closeFd(pty.slave);
  }
});

Deno.test("a Struct argument's pointers are laid out so a cloned child can sendmsg an fd", async () => {
  // The child opens a file, passes it over a datagram socket with SCM_RIGHTS, and exits.
  const [parentSock, childSock] = socketPair(SOCK_DGRAM | SOCK_CLOEXEC);
  const [statusR, statusW] = pipe();
  const file = await Deno.makeTempFile();
  await Deno.writeTextFile(file, "passed through SCM_RIGHTS");
  const cmsg = new Uint8Array(24);
  const cv = new DataView(cmsg.buffer);
  cv.setBigUint64(0, 20n, true);
  cv.setInt32(8, 1, true);
  cv.setInt32(12, 1, true);
  const iov = new Uint8Array(16);
  new DataView(iov.buffer).setBigUint64(8, 1n, true);
  const msg = new Uint8Array(56);
  new DataView(msg.buffer).setBigUint64(24, 1n, true);
  new DataView(msg.buffer).setBigUint64(40, 24n, true);
  try {
    // fd 0 is closed first so that the open returns 0, the number the message names.
    const program = CompiledProgram.compile([
      { nr: SYS.close, args: [0], what: "close 0" },
      { nr: SYS.openat, args: [-100, str(file), 0, 0], what: "open" },
      {
        nr: SYS.sendmsg,
        args: [
          childSock,
          new Struct(msg, [
            { offset: 16, to: new Struct(iov, [{ offset: 0, to: bytes(new Uint8Array([1])) }]) },
            { offset: 32, to: bytes(cmsg) },
          ]),
          0,
        ],
        what: "sendmsg",
      },
      { nr: SYS.exit_group, args: [0], what: "exit" },
    ], statusW);
    const pid = cloneProgram(program, 0);
    program.free();
    closeFd(statusW);
    assertEquals(decodeStatus(await readFd(statusR, 16)), undefined);
    assertEquals(await waitPid(pid), { exitCode: 0 });
    const fd = receiveFd(parentSock);
    assertNotEquals(fd, undefined);
    assertEquals(Deno.readTextFileSync(`/proc/self/fd/${fd}`), "passed through SCM_RIGHTS");
    closeFd(fd!);
    assertEquals(receiveFd(parentSock), undefined, "nothing more queued");
  } finally {
    closeFd(parentSock);
    closeFd(childSock);
    closeFd(statusR);
    await Deno.remove(file);
  }
});
