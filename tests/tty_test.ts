/**
 * Terminals against real containers (root): `-t` containers and execs get a pty from the
 * container's own devpts; the tests play the user's side on the pty master.
 */
import { Store } from "../src/store/mod.ts";
import { sharedBusyboxRoot } from "./busybox_store.ts";
import { Container, newContainerId } from "../src/runtime/mod.ts";
import { execInContainer } from "../src/runtime/exec.ts";
import { attachTerminal, DOCKER_DETACH_KEYS, filterDetach } from "../src/runtime/tty.ts";
import {
  closeFd,
  getTermios,
  getWindowSize,
  openPty,
  POLL,
  poll,
  readSome,
  setWindowSize,
  writeNow,
} from "../ffi/terminal.ts";
import { assertEquals, assertMatch } from "./assert.ts";
import { hasTmux, Tmux } from "./tmux.ts";
import { startSpec } from "./start_spec.ts";

const isRoot = Deno.uid() === 0;
const enc = new TextEncoder();
const dec = new TextDecoder();

function rootTest(name: string, fn: () => Promise<void>) {
  Deno.test({ name, ignore: !isRoot, sanitizeResources: false, sanitizeOps: false, fn });
}

const sharedRoot = sharedBusyboxRoot;

async function startTty(argv: string[], size?: { rows: number; cols: number }) {
  const root = await sharedRoot();
  const store = await Store.open(root);
  const image = store.findImage("busybox")!;
  store.close();
  const id = newContainerId();
  const { spec, options } = startSpec(
    root,
    id,
    image.layers.map((l) => l.shortId),
    { argv, env: ["PATH=/bin", "TERM=xterm"], network: "none", tty: true },
    { tty: { size } },
  );
  return await Container.start(spec, options);
}

/** Reads `fd` until the text read so far matches `pattern` (or 20 s pass); returns it all. */
async function readUntil(fd: number, pattern: RegExp, seen = { text: "" }): Promise<string> {
  const deadline = Date.now() + 20_000;
  while (!pattern.test(seen.text)) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${pattern}: ${seen.text}`);
    const [rev] = await poll([fd], POLL.IN, 500);
    if (!(rev & (POLL.IN | POLL.HUP))) continue;
    const chunk = readSome(fd);
    if (chunk === undefined) continue;
    if (chunk.length === 0) break;
    seen.text += dec.decode(chunk);
  }
  return seen.text;
}

rootTest("run -t: a shell on the container's pty is PID 1, its tty is /dev/pts/0", async () => {
  const c = await startTty(["sh"], { rows: 33, cols: 101 });
  const master = c.terminal!;
  try {
    const seen = { text: "" };
    writeNow(master, enc.encode("echo pid=$$; tty; stty size; echo done$((1+1))\r"));
    const out = await readUntil(master, /done2\r\n/, seen);
    assertMatch(out, /pid=1\r\n/);
    assertMatch(out, /\/dev\/pts\/0\r\n/);
    assertMatch(out, /33 101\r\n/);
    // The pty's echo and output processing are on (cooked mode), as for docker.
    assertMatch(out, /echo pid=\$\$/);
  } finally {
    c.kill(9);
    await c.remove();
    closeFd(master);
  }
});

rootTest(
  "run -t: ctrl-c interrupts the foreground job; exit 3 is the container's code",
  async () => {
    const c = await startTty(["sh"]);
    const master = c.terminal!;
    try {
      const seen = { text: "" };
      writeNow(master, enc.encode("sleep 100\r"));
      await readUntil(master, /sleep 100/, seen);
      // Wait for sleep to be running in the container before typing ctrl-c.
      for (let i = 0; i < 500; i++) {
        const kids = await Deno.readTextFile(`/proc/${c.pid}/task/${c.pid}/children`);
        const comms = await Promise.all(
          kids.trim().split(/\s+/).filter(Boolean).map((p) =>
            Deno.readTextFile(`/proc/${p}/comm`).catch(() => "")
          ),
        );
        if (comms.some((s) => s.trim() === "sleep")) break;
        await new Promise((r) => setTimeout(r, 10));
      }
      // The interrupted list is abandoned (as in any shell); $? says how sleep ended.
      writeNow(master, new Uint8Array([0x03]));
      await readUntil(master, /\^C/, seen);
      writeNow(master, enc.encode("echo status=$?\r"));
      assertMatch(await readUntil(master, /status=\d+\r\n/, seen), /status=130\r\n/);
      writeNow(master, enc.encode("exit 3\r"));
      assertEquals((await c.wait()).exitCode, 3);
    } finally {
      c.kill(9);
      await c.remove();
      closeFd(master);
    }
  },
);

rootTest("exec -t: a pty from the container's devpts, as controlling terminal", async () => {
  const c = await startTty(["sleep", "1000"]);
  try {
    const proc = await execInContainer(c.pid, {
      argv: ["sh", "-c", "tty; stty size; ps -o pid,tty,comm | grep -v ps; echo ok > /dev/tty"],
      env: ["PATH=/bin"],
      cwd: "/",
      user: "app",
      stdio: ["null", "null", "null"],
      tty: { size: { rows: 24, cols: 80 } },
    });
    const master = proc.terminal!;
    const out = await readUntil(master, /ok\r\n/);
    assertEquals(await proc.wait(), 0);
    closeFd(master);
    // PID 1 holds /dev/pts/0; the exec gets the next one in the same devpts.
    assertMatch(out, /^\/dev\/pts\/1\r\n24 80\r\n/);
    // busybox ps shows the tty as major,minor: devpts is major 136.
    assertMatch(out, /\s1 136,0\s+sleep/);
    assertMatch(out, /136,1\s+sh/);
  } finally {
    closeFd(c.terminal!);
    c.kill(9);
    await c.remove();
  }
});

rootTest(
  "attachTerminal: raw user terminal, pumping both ways, window size on SIGWINCH",
  async () => {
    const c = await startTty(["sh"]);
    const user = openPty(); // plays the user's terminal: the test types on its master
    setWindowSize(user.master, { rows: 30, cols: 90 });
    const cooked = getTermios(user.slave);
    const master = c.terminal!;
    const session = attachTerminal(master, { stdin: true, input: user.slave, output: user.slave });
    try {
      const lflag = (t: Uint8Array) => new DataView(t.buffer).getUint32(12, true);
      const ECHO = 0o10, ICANON = 0o2, ISIG = 0o1;
      assertEquals(lflag(getTermios(user.slave)) & (ECHO | ICANON | ISIG), 0, "raw while attached");
      assertEquals(getWindowSize(master), { rows: 30, cols: 90 }, "size copied at start");
      const seen = { text: "" };
      writeNow(user.master, enc.encode("stty size; echo marker-$((6*7))\r"));
      assertMatch(await readUntil(user.master, /marker-42\r\n/, seen), /\r\n30 90\r\n/);
      setWindowSize(user.master, { rows: 50, cols: 150 });
      // A terminal emulator signals the resize; the session copies the size on SIGWINCH.
      Deno.kill(Deno.pid, "SIGWINCH");
      for (let i = 0; i < 500 && getWindowSize(master).cols !== 150; i++) {
        await new Promise((r) => setTimeout(r, 10));
      }
      assertEquals(getWindowSize(master), { rows: 50, cols: 150 });
      writeNow(user.master, enc.encode("stty size; exit 5\r"));
      assertEquals((await c.wait()).exitCode, 5);
      await session.stop();
      assertMatch(await readUntil(user.master, /50 150\r\n/, seen), /50 150/);
      assertEquals(Array.from(getTermios(user.slave)), Array.from(cooked), "restored after");
    } finally {
      await session.stop();
      c.kill(9);
      await c.remove();
      closeFd(master);
      closeFd(user.master);
      closeFd(user.slave);
    }
  },
);

Deno.test("detach keys: ctrl-p ctrl-q detaches, a lone ctrl-p is passed on", () => {
  const held: number[] = [];
  assertEquals(filterDetach(new Uint8Array([0x61, 0x10]), DOCKER_DETACH_KEYS, held), {
    send: new Uint8Array([0x61]),
    detached: false,
  });
  assertEquals(filterDetach(new Uint8Array([0x62]), DOCKER_DETACH_KEYS, held), {
    send: new Uint8Array([0x10, 0x62]),
    detached: false,
  });
  assertEquals(filterDetach(new Uint8Array([0x10]), DOCKER_DETACH_KEYS, held).detached, false);
  assertEquals(filterDetach(new Uint8Array([0x11, 0x63]), DOCKER_DETACH_KEYS, held).detached, true);
});

Deno.test({
  name: "exec -it in a real terminal (tmux): PID, tty, size, ctrl-c, exit code, terminal restored",
  ignore: !isRoot || !hasTmux,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const root = await sharedRoot();
    const { tsbox } = await import("./cli.ts");
    const name = `tty-${crypto.randomUUID().slice(0, 8)}`;
    const started = await tsbox(["run", "-d", "--name", name, "busybox", "sleep", "1000"], {
      root,
    });
    assertEquals(started.code, 0, started.stderr);
    const dir = await Deno.makeTempDir();
    const main = new URL("../main.ts", import.meta.url).pathname;
    const cli = `'${Deno.execPath()}' run -A --quiet '${main}' --root '${root}'`;
    const tmux = await Tmux.start(
      `sh -c "stty -g > ${dir}/before; ${cli} exec -it ${name} sh; echo EXIT=\\$?; ` +
        `stty -g > ${dir}/after; sleep 100"`,
    );
    try {
      await tmux.waitFor(/^\/ #/m);
      await tmux.send("echo pid=$$; tty; stty size", "Enter");
      const shown = await tmux.waitFor(/^\d+ \d+$/m);
      assertMatch(shown, /^pid=\d+$/m);
      assertMatch(shown, /^\/dev\/pts\/0$/m);
      assertMatch(shown, /^40 120$/m);
      await tmux.send("sleep 100", "Enter");
      await tmux.waitFor(/sleep 100\n/);
      // Until sleep runs, ctrl-c would only clear the line: wait for it in the container.
      await tsbox(["exec", name, "sh", "-c", "while ! pidof sleep | grep -q ' '; do :; done"], {
        root,
      });
      await tmux.send("C-c");
      await tmux.waitFor(/\^C/);
      await tmux.send("echo status=$?", "Enter");
      assertMatch(await tmux.waitFor(/^status=\d+$/m), /^status=130$/m);
      await tmux.send("exit 3", "Enter");
      assertMatch(await tmux.waitFor(/^EXIT=\d+$/m), /^EXIT=3$/m);
      await tmux.waitFor(/EXIT=3/);
      for (let i = 0; i < 100; i++) {
        if ((await Deno.stat(`${dir}/after`).catch(() => undefined))?.size) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      assertEquals(
        await Deno.readTextFile(`${dir}/after`),
        await Deno.readTextFile(`${dir}/before`),
        "the terminal's settings are back after tsbox exits",
      );
    } finally {
      await tmux.kill();
      await tsbox(["rm", "-f", name], { root });
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "run -it in a real terminal (tmux): PID 1, /dev/pts/0, size and resize, ctrl-c, exit 3",
  ignore: !isRoot || !hasTmux,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const root = await sharedRoot();
    const { tsbox } = await import("./cli.ts");
    const name = `tty-${crypto.randomUUID().slice(0, 8)}`;
    const dir = await Deno.makeTempDir();
    const main = new URL("../main.ts", import.meta.url).pathname;
    const cli = `'${Deno.execPath()}' run -A --quiet '${main}' --root '${root}'`;
    const tmux = await Tmux.start(
      `sh -c "stty -g > ${dir}/before; ${cli} run --rm -it --name ${name} busybox sh; echo EXIT=\\$?; ` +
        `stty -g > ${dir}/after; sleep 100"`,
    );
    try {
      await tmux.waitFor(/^\/ #/m);
      await tmux.send("echo pid=$$ term=$TERM; tty; stty size", "Enter");
      const shown = await tmux.waitFor(/^\d+ \d+$/m);
      assertMatch(shown, /^pid=1 term=xterm$/m);
      assertMatch(shown, /^\/dev\/pts\/0$/m);
      assertMatch(shown, /^40 120$/m);
      await tmux.send("sleep 100", "Enter");
      // Until sleep runs, ctrl-c would only clear the line: wait for it in the container.
      await tsbox(["exec", name, "sh", "-c", "while ! pidof sleep; do :; done"], { root });
      await tmux.send("C-c");
      await tmux.waitFor(/\^C/);
      await tmux.send("echo status=$?", "Enter");
      assertMatch(await tmux.waitFor(/^status=\d+$/m), /^status=130$/m);
      await tmux.tmux(["resize-window", "-t", "t", "-x", "80", "-y", "20"]);
      // The new size travels SIGWINCH -> tsbox -> supervisor -> pty: ask until it has arrived
      // (and so that an earlier answer still on the screen is never taken for the new one).
      let size = "";
      for (let i = 0; i < 30 && size !== "20 80"; i++) {
        await tmux.send(`clear; echo size$((${i} + 1))=$(stty size)`, "Enter");
        const shown = await tmux.waitFor(new RegExp(`^size${i + 1}=\\d+ \\d+$`, "m"));
        size = new RegExp(`^size${i + 1}=(\\d+ \\d+)$`, "m").exec(shown)![1];
        if (size !== "20 80") await new Promise((r) => setTimeout(r, 100));
      }
      assertEquals(size, "20 80");
      await tmux.send("exit 3", "Enter");
      assertMatch(await tmux.waitFor(/^EXIT=\d+$/m), /^EXIT=3$/m);
      for (let i = 0; i < 100; i++) {
        if ((await Deno.stat(`${dir}/after`).catch(() => undefined))?.size) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      assertEquals(
        await Deno.readTextFile(`${dir}/after`),
        await Deno.readTextFile(`${dir}/before`),
        "the terminal's settings are back after tsbox exits",
      );
    } finally {
      await tmux.kill();
      // run -it runs a detached supervisor: a failed check must not leave the container running.
      await tsbox(["rm", "-f", name], { root });
      await Deno.remove(dir, { recursive: true });
    }
  },
});
