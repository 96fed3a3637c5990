import { assertEquals, assertOk } from "../tests/assert.ts";
import {
  argFromLast,
  bytes,
  CLONE,
  cloneProgram,
  CompiledProgram,
  decodeStatus,
  EXIT_IF_NONZERO,
  FAIL_ON_ZERO,
  IGNORE_ERROR,
  type Op,
  SharedWord,
  SIGCHLD,
  str,
  StringArray,
  STUB_X86_64,
} from "./clone.ts";
import { closeFd, pipe, readFd, waitPid, writeFd } from "./process.ts";
import { SYS } from "./syscall_numbers.ts";

const ENOENT = 2;
const EACCES = 13;

/** Runs `ops` in a cloned child; returns the status record and how the child ended. */
async function run(ops: Op[], flags = 0) {
  const [statusR, statusW] = pipe();
  const program = CompiledProgram.compile(ops, statusW);
  let pid: number;
  try {
    pid = cloneProgram(program, flags);
  } finally {
    program.free();
    closeFd(statusW);
  }
  const record = await readFd(statusR, 16);
  closeFd(statusR);
  return { failure: decodeStatus(record), status: await waitPid(pid) };
}

function execve(path: string, argv: string[], flags = 0): Op {
  return {
    nr: SYS.execve,
    args: [str(path), new StringArray(argv), new StringArray([])],
    flags,
    what: `execve ${path}`,
  };
}

Deno.test("the embedded stub is what clone_stub_x86_64.S assembles to", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const src = new URL("./clone_stub_x86_64.S", import.meta.url).pathname;
    // binutils' `as` is a test dependency (tests/install_deps.sh): without it this fails, since
    // a pass would claim a check that did not happen.
    let as: Deno.CommandOutput;
    try {
      as = await new Deno.Command("as", { args: ["--64", "-o", `${dir}/s.o`, src] }).output();
    } catch (err) {
      throw new Error(`\`as\` (binutils) is needed to re-check the stub bytes: ${err}`);
    }
    assertOk(as.success, new TextDecoder().decode(as.stderr));
    const copy = await new Deno.Command("objcopy", {
      args: ["-O", "binary", "-j", ".text", `${dir}/s.o`, `${dir}/s.bin`],
    }).output();
    assertOk(copy.success);
    assertEquals(Array.from(await Deno.readFile(`${dir}/s.bin`)), Array.from(STUB_X86_64));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a successful execve leaves the status pipe empty and the exit code is the program's", async () => {
  const r = await run([execve("/bin/sh", ["sh", "-c", "exit 7"])]);
  assertEquals(r.failure, undefined);
  assertEquals(r.status, { exitCode: 7 });
});

Deno.test("a fatal op reports its index and errno", async () => {
  const r = await run([
    { nr: SYS.chdir, args: [str("/")], what: "chdir /" },
    { nr: SYS.chdir, args: [str("/nonexistent/dir")], what: "chdir nowhere" },
    execve("/bin/true", ["true"]),
  ]);
  assertEquals(r.failure, { opIndex: 1, errno: ENOENT });
  assertEquals(r.status, { exitCode: 1 });
});

Deno.test("ignored execve failures: the first errno other than ENOENT wins, else ENOENT", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/notexec`, "#!/bin/sh\n");
    const missing = await run([
      execve(`${dir}/a`, ["a"], IGNORE_ERROR),
      execve(`${dir}/b`, ["b"], IGNORE_ERROR),
    ]);
    assertEquals(missing.failure, { opIndex: -1, errno: ENOENT });
    const denied = await run([
      execve(`${dir}/a`, ["a"], IGNORE_ERROR),
      execve(`${dir}/notexec`, ["x"], IGNORE_ERROR),
      execve(`${dir}/c`, ["c"], IGNORE_ERROR),
    ]);
    assertEquals(denied.failure, { opIndex: -1, errno: EACCES });
    const found = await run([
      execve(`${dir}/a`, ["a"], IGNORE_ERROR),
      execve("/bin/sh", ["sh", "-c", "exit 4"], IGNORE_ERROR),
    ]);
    assertEquals(found, { failure: undefined, status: { exitCode: 4 } });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("FAIL_ON_ZERO turns a read at EOF into a failure; a byte lets the program go on", async () => {
  for (const release of [false, true]) {
    const [syncR, syncW] = pipe();
    const [statusR, statusW] = pipe();
    const program = CompiledProgram.compile([
      { nr: SYS.close, args: [syncW], what: "close sync writer" },
      {
        nr: SYS.read,
        args: [syncR, bytes(new Uint8Array(8)), 1],
        flags: FAIL_ON_ZERO,
        what: "sync",
      },
      execve("/bin/true", ["true"]),
    ], statusW);
    const pid = cloneProgram(program, 0);
    program.free();
    closeFd(statusW);
    closeFd(syncR);
    if (release) writeFd(syncW, new Uint8Array([1]));
    closeFd(syncW);
    const failure = decodeStatus(await readFd(statusR, 16));
    closeFd(statusR);
    await waitPid(pid);
    assertEquals(failure, release ? undefined : { opIndex: 1, errno: 32 });
  }
});

Deno.test("ARGn_FROM_LAST passes the previous result (an fd) on", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const r = await run([
      {
        nr: SYS.openat,
        args: [-100, str(`${dir}/out`), 0o1 | 0o100 | 0o2000000, 0o644],
        what: "open out",
      },
      { nr: SYS.write, args: [0, str("hello"), 5], flags: argFromLast(0), what: "write" },
      execve("/bin/true", ["true"]),
    ]);
    assertEquals(r.failure, undefined);
    assertEquals(await Deno.readTextFile(`${dir}/out`), "hello");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "the child runs as PID 1 of a new PID namespace (root)",
  ignore: Deno.uid() !== 0,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      const r = await run([
        execve("/bin/sh", ["sh", "-c", `echo $$ > ${dir}/pid`]),
      ], CLONE.NEWPID | CLONE.NEWNS);
      assertEquals(r.status, { exitCode: 0 });
      assertEquals((await Deno.readTextFile(`${dir}/pid`)).trim(), "1");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("waitPid does not race Deno's own child reaping", async () => {
  const [statusR, statusW] = pipe();
  const program = CompiledProgram.compile(
    [execve("/bin/sh", ["sh", "-c", "sleep 0.3; exit 9"])],
    statusW,
  );
  const pid = cloneProgram(program, 0);
  program.free();
  closeFd(statusW);
  await readFd(statusR, 16);
  closeFd(statusR);
  const waited = waitPid(pid);
  // Deno's subprocess machinery handles SIGCHLD while ours is still running.
  const outs = await Promise.all(
    [1, 2, 3].map((n) => new Deno.Command("/bin/sh", { args: ["-c", `exit ${n}`] }).output()),
  );
  assertEquals(outs.map((o) => o.code), [1, 2, 3]);
  assertEquals(await waited, { exitCode: 9 });
});

Deno.test("EXIT_IF_NONZERO on a clone op: the parent side exits 0, the child runs on as ours", async () => {
  const word = new SharedWord();
  try {
    const r = await run([
      {
        nr: SYS.clone,
        args: [CLONE.PARENT | CLONE.PARENT_SETTID | SIGCHLD, 0, word.address, 0, 0],
        flags: EXIT_IF_NONZERO,
        what: "fork",
      },
      execve("/bin/sh", ["sh", "-c", "exit 5"]),
    ]);
    // The status pipe ended without a record: the intermediate left, the child's execve worked.
    assertEquals(r, { failure: undefined, status: { exitCode: 0 } });
    const child = word.read();
    assertOk(child > 0 && child !== Deno.pid, `pid of the forked child: ${child}`);
    // CLONE_PARENT made it this process's child: waitpid finds it and its exit code.
    assertEquals(await waitPid(child), { exitCode: 5 });
  } finally {
    word.free();
  }
});
