/**
 * `attach` and `start -a` against real containers (root): the tsbox command line run as a user
 * runs it, in a real terminal (tmux) for `-t` containers and with pipes otherwise.
 */
import { sharedBusyboxRoot } from "./busybox_store.ts";
import { assertEquals, assertMatch, assertOk } from "./assert.ts";
import { tsbox } from "./cli.ts";
import { hasTmux, Tmux } from "./tmux.ts";

const isRoot = Deno.uid() === 0;
const enc = new TextEncoder();
const dec = new TextDecoder();
const MAIN = new URL("../main.ts", import.meta.url).pathname;

function rootTest(name: string, fn: () => Promise<void>, needsTmux = false) {
  Deno.test({
    name,
    ignore: !isRoot || (needsTmux && !hasTmux),
    sanitizeResources: false,
    sanitizeOps: false,
    fn,
  });
}

const sharedRoot = sharedBusyboxRoot;

function uniqueName(prefix: string): string {
  return `${prefix}-${crypto.randomUUID().slice(0, 8)}`;
}

/** The state and exit code `inspect` reports. */
async function stateOf(root: string, name: string): Promise<{ Status: string; ExitCode: number }> {
  const r = await tsbox(["inspect", name], { root });
  assertEquals(r.code, 0, r.stderr);
  return JSON.parse(r.stdout)[0].State;
}

/** Reads `reader` until the text so far matches `pattern` (30 s at most). */
async function readUntil(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  pattern: RegExp,
  seen: { text: string },
): Promise<string> {
  const deadline = Date.now() + 30_000;
  while (!pattern.test(seen.text)) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${pattern}: ${seen.text}`);
    const { value, done } = await reader.read();
    if (done) throw new Error(`stream ended before ${pattern}: ${seen.text}`);
    seen.text += dec.decode(value, { stream: true });
  }
  return seen.text;
}

/** `tsbox attach ARGS` as a child process with piped stdio. */
function spawnAttach(root: string, args: string[]): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", MAIN, "--root", root, "attach", ...args],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

rootTest(
  "attach to run -dit sh in a real terminal: type, resize, ctrl-p ctrl-q, exit code",
  async () => {
    const root = await sharedRoot();
    const name = uniqueName("att");
    const run = await tsbox(["run", "-dit", "--name", name, "busybox", "sh"], { root });
    assertEquals(run.code, 0, run.stderr);
    const dir = await Deno.makeTempDir();
    const cli = `'${Deno.execPath()}' run -A --quiet '${MAIN}' --root '${root}'`;
    const session = (n: number) =>
      `sh -c "stty -g > ${dir}/before${n}; ${cli} attach ${name}; echo EXIT=\\$?; ` +
      `stty -g > ${dir}/after${n}; sleep 100"`;
    let tmux = await Tmux.start(session(1));
    try {
      await tmux.send("echo hello-$((6*7)); stty size | sed s/^/size1=/", "Enter");
      const shown = await tmux.waitFor(/^hello-42$/m);
      assertMatch(await tmux.waitFor(/^size1=\d+ \d+$/m), /^size1=40 120$/m, shown);
      await tmux.tmux(["resize-window", "-t", "t", "-x", "90", "-y", "25"]);
      // The resize reaches tsbox as SIGWINCH, independently of the keys typed: ask until the
      // container's pty has the new size (the test fails if it never does).
      let resized = "";
      for (let i = 0; i < 20 && !/^size2=25 90$/m.test(resized); i++) {
        await tmux.send(`clear; stty size | sed s/^/size2=/`, "Enter");
        resized = await tmux.waitFor(/^size2=\d+ \d+$/m);
      }
      assertMatch(resized, /^size2=25 90$/m);
      // docker's detach keys: the session ends, the container goes on.
      await tmux.send("C-p", "C-q");
      const detached = await tmux.waitFor(/^EXIT=\d+$/m);
      assertMatch(detached, /read escape sequence/);
      assertMatch(detached, /^EXIT=1$/m);
      const ps = await tsbox(["ps", "--filter", `name=${name}`], { root });
      assertMatch(ps.stdout, /Up /, ps.stdout);
      assertEquals((await stateOf(root, name)).Status, "running");
      const end = Date.now() + 20_000;
      while (!(await Deno.stat(`${dir}/after1`).catch(() => undefined))?.size) {
        assertOk(Date.now() < end, "the session wrote its terminal settings after detaching");
        await new Promise((r) => setTimeout(r, 50));
      }
      assertEquals(
        await Deno.readTextFile(`${dir}/after1`),
        await Deno.readTextFile(`${dir}/before1`),
        "the terminal's settings are back after detaching",
      );
      await tmux.kill();

      // Attach again to the same shell: its state survived the detach; its exit code is ours.
      tmux = await Tmux.start(session(2));
      await tmux.send("echo again-$((1+1))", "Enter");
      await tmux.waitFor(/^again-2$/m);
      await tmux.send("exit 3", "Enter");
      assertMatch(await tmux.waitFor(/^EXIT=\d+$/m), /^EXIT=3$/m);
      const after = await stateOf(root, name);
      assertEquals([after.Status, after.ExitCode], ["exited", 3]);
    } finally {
      await tmux.kill();
      await tsbox(["rm", "-f", name], { root });
      await Deno.remove(dir, { recursive: true });
    }
  },
  true,
);

rootTest(
  "run -it detaches with ctrl-p ctrl-q like docker's run: exit 0, container goes on",
  async () => {
    const root = await sharedRoot();
    const name = uniqueName("att");
    const cli = `'${Deno.execPath()}' run -A --quiet '${MAIN}' --root '${root}'`;
    const tmux = await Tmux.start(
      `sh -c "${cli} run -it --name ${name} busybox sh; echo EXIT=\\$?; sleep 100"`,
    );
    try {
      await tmux.send("echo pid=$$; stty size | sed s/^/size=/", "Enter");
      const sized = await tmux.waitFor(/^size=\d+ \d+$/m);
      assertMatch(sized, /^pid=1$/m);
      assertMatch(sized, /^size=40 120$/m, "sized before the shell ran");
      await tmux.send("C-p", "C-q");
      // The shell's prompt stays on the last line, as with docker: EXIT follows it.
      const shown = await tmux.waitFor(/EXIT=\d+$/m);
      assertMatch(shown, /(^|\s)EXIT=0$/m);
      assertOk(!/read escape sequence/.test(shown), "docker's run detaches silently");
      assertEquals((await stateOf(root, name)).Status, "running");
      const exec = await tsbox(["exec", name, "sh", "-c", "echo alive"], { root });
      assertEquals(exec.stdout, "alive\n", exec.stderr);
    } finally {
      await tmux.kill();
      await tsbox(["rm", "-f", name], { root });
    }
  },
  true,
);

rootTest(
  "attach to a non-tty container: output on each stream as it prints, exit code",
  async () => {
    const root = await sharedRoot();
    const name = uniqueName("att");
    const script = `trap 'exit 5' TERM; i=0; while :; do echo tick-$i; echo tock-$i >&2; ` +
      `i=$((i+1)); sleep 0.2; done`;
    const run = await tsbox(["run", "-d", "--name", name, "busybox", "sh", "-c", script], { root });
    assertEquals(run.code, 0, run.stderr);
    const child = spawnAttach(root, [name]);
    const out = child.stdout.getReader();
    const err = child.stderr.getReader();
    let exited = false;
    const status = child.status.then((s) => {
      exited = true;
      return s;
    });
    try {
      const seen = { text: "" };
      await readUntil(out, /tick-\d+\n(?:.*\n)*tick-\d+\n(?:.*\n)*tick-\d+\n/, seen);
      assertOk(!exited, "output arrives while attach runs, not at its end");
      const ticks = [...seen.text.matchAll(/tick-(\d+)/g)].map((m) => Number(m[1]));
      ticks.forEach((t, i) => assertEquals(t, ticks[0] + i, `consecutive lines: ${seen.text}`));
      assertOk(!/tock/.test(seen.text), "stderr stays apart from stdout");
      const errSeen = { text: "" };
      await readUntil(err, /tock-\d+\n/, errSeen);
      // stop sends SIGTERM: the container's trap exits 5, and so does attach.
      const stop = await tsbox(["stop", name], { root });
      assertEquals(stop.code, 0, stop.stderr);
      out.releaseLock();
      err.releaseLock();
      await child.stdout.cancel();
      await child.stderr.cancel();
      await child.stdin.close();
      assertEquals((await status).code, 5);
    } finally {
      try {
        child.kill("SIGKILL");
      } catch { /* ended */ }
      await tsbox(["rm", "-f", name], { root });
    }
  },
);

rootTest("attach to run -di sh: stdin reaches the container's open stdin", async () => {
  const root = await sharedRoot();
  const name = uniqueName("att");
  const run = await tsbox(["run", "-di", "--name", name, "busybox", "sh"], { root });
  assertEquals(run.code, 0, run.stderr);
  // Without a pty, sh reads its stdin, held open by the supervisor: it does not end at once
  // (had it read EOF, it would have exited before the attach below could send it anything).
  assertEquals((await stateOf(root, name)).Status, "running");
  const child = spawnAttach(root, [name]);
  const out = child.stdout.getReader();
  const input = child.stdin.getWriter();
  try {
    await input.write(enc.encode("echo got-$((2+3))\n"));
    const seen = { text: "" };
    assertMatch(await readUntil(out, /got-\d+\n/, seen), /^got-5\n/);
    await input.write(enc.encode("exit 4\n"));
    out.releaseLock();
    await child.stdout.cancel();
    await child.stderr.cancel();
    assertEquals((await child.status).code, 4);
    assertEquals((await stateOf(root, name)).ExitCode, 4);
  } finally {
    await input.close().catch(() => {});
    try {
      child.kill("SIGKILL");
    } catch { /* ended */ }
    await tsbox(["rm", "-f", name], { root });
  }
});

rootTest(
  "start -a: every byte from the first, each on its stream, the container's code",
  async () => {
    const root = await sharedRoot();
    const name = uniqueName("att");
    const created = await tsbox([
      "create",
      "--name",
      name,
      "busybox",
      "sh",
      "-c",
      "echo one; echo two >&2; echo three; exit 6",
    ], { root });
    assertEquals(created.code, 0, created.stderr);
    try {
      for (let i = 0; i < 2; i++) {
        const r = await tsbox(["start", "-a", name], { root });
        assertEquals(r.code, 6, r.stderr);
        assertEquals(r.stdout, "one\nthree\n");
        assertEquals(r.stderr, "two\n");
      }
      // start -ai with a non-tty -i container: stdin is passed, and its end closes the container's.
      const cat = uniqueName("att");
      const c2 = await tsbox(
        ["create", "-i", "--name", cat, "busybox", "sh", "-c", "cat; exit 2"],
        {
          root,
        },
      );
      assertEquals(c2.code, 0, c2.stderr);
      try {
        const r = await tsbox(["start", "-a", "-i", cat], { root, stdin: "line-a\nline-b\n" });
        assertEquals([r.code, r.stdout], [2, "line-a\nline-b\n"], r.stderr);
      } finally {
        await tsbox(["rm", "-f", cat], { root });
      }
    } finally {
      await tsbox(["rm", "-f", name], { root });
    }
  },
);

rootTest("attach to a stopped or paused container: docker's refusal, exit 1", async () => {
  const root = await sharedRoot();
  const name = uniqueName("att");
  const run = await tsbox(["run", "-d", "--name", name, "busybox", "sleep", "1000"], { root });
  assertEquals(run.code, 0, run.stderr);
  try {
    assertEquals((await tsbox(["pause", name], { root })).code, 0);
    const paused = await tsbox(["attach", name], { root });
    assertEquals(paused.code, 1);
    assertMatch(paused.stderr, /You cannot attach to a paused container, unpause it first/);
    assertEquals((await tsbox(["unpause", name], { root })).code, 0);
    assertEquals((await tsbox(["stop", "-t", "0", name], { root })).code, 0);
    const stopped = await tsbox(["attach", name], { root });
    assertEquals(stopped.code, 1);
    assertMatch(stopped.stderr, /You cannot attach to a stopped container, start it first/);
  } finally {
    await tsbox(["rm", "-f", name], { root });
  }
});
