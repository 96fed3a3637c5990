/**
 * README audit (issue 19), `exec` and `attach` flags through the command line on real
 * containers of the runtime busybox (pulled by tsbox from the fixture registry): `exec -e -w -u`,
 * `exec -d`, `exec -i`, exec's exit code; `attach --no-stdin`, `attach --detach-keys`,
 * `attach --sig-proxy=false` against the default, which passes SIGINT on.
 */
import { assertEquals, assertOk, assertStringIncludes } from "./assert.ts";
import { sharedBusyboxRoot } from "./busybox_store.ts";
import { type Cli, cliFor, rootTest, uniqueName, until } from "./readme_audit.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

async function env(): Promise<Cli> {
  return cliFor(await sharedBusyboxRoot());
}

async function withContainer(
  e: Cli,
  what: string,
  runArgs: string[],
  fn: (name: string) => Promise<void>,
): Promise<void> {
  const name = uniqueName(what);
  try {
    await e.ok(["run", "-d", "--name", name, ...runArgs]);
    await fn(name);
  } finally {
    await e.t(["rm", "-f", name]);
  }
}

rootTest("exec -e, -w and -u set the command's environment, directory and user", async () => {
  const e = await env();
  await withContainer(e, "exec-env", ["busybox", "sleep", "300"], async (name) => {
    const out = await e.ok([
      "exec",
      "-e",
      "AUDIT=one",
      "-e",
      "PATH=/bin",
      "-w",
      "/home/app",
      "-u",
      "app:extra",
      name,
      "sh",
      "-c",
      'echo "$AUDIT|$PATH"; pwd; id -u; id -g',
    ]);
    assertEquals(out, "one|/bin\n/home/app\n1000\n2000\n");
    // Without the flags: root in /, no AUDIT.
    assertEquals(
      await e.ok(["exec", name, "sh", "-c", 'echo "${AUDIT-unset}"; pwd; id -u']),
      "unset\n/\n0\n",
    );
    // The command's exit code is exec's.
    assertEquals((await e.t(["exec", name, "sh", "-c", "exit 3"])).code, 3);
  });
});

rootTest(
  "exec -d returns at once and the command goes on inside; exec -i passes stdin",
  async () => {
    const e = await env();
    await withContainer(e, "exec-d", ["busybox", "sleep", "300"], async (name) => {
      const detached = await e.t([
        "exec",
        "-d",
        name,
        "sh",
        "-c",
        "echo $$ > /tmp/bg.pid; sleep 2; echo finished > /tmp/bg.done; sleep 300",
      ]);
      assertEquals(detached.code, 0, detached.stderr);
      assertEquals(detached.stdout, "");
      // It returned while the command still runs: bg.pid is there, bg.done not yet or soon.
      const pid = await until("the -d command's pid file", async () => {
        const r = await e.t(["exec", name, "cat", "/tmp/bg.pid"]);
        return r.code === 0 ? r.stdout.trim() : undefined;
      });
      await until(
        "the -d command finishing its work",
        async () =>
          (await e.t(["exec", name, "cat", "/tmp/bg.done"])).stdout === "finished\n"
            ? true
            : undefined,
      );
      const alive = await e.t(["exec", name, "sh", "-c", `test -d /proc/${pid} && echo alive`]);
      assertEquals(alive.stdout, "alive\n", "the -d command still runs after exec returned");

      const withI = await e.t(["exec", "-i", name, "sh", "-c", "wc -l"], { stdin: "a\nb\n" });
      assertEquals(withI.stdout.trim(), "2", withI.stderr);
      const withoutI = await e.t(["exec", name, "sh", "-c", "wc -l"], { stdin: "a\nb\n" });
      assertEquals(withoutI.stdout.trim(), "0", withoutI.stderr);
    });
  },
);

/** `tsbox attach ARGS` as a child, its output gathered into `seen.text`. */
function spawnAttach(root: string, args: string[], stdin: "piped" | "null" = "null") {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", MAIN, "--root", root, "attach", ...args],
    env: { DENO_NO_UPDATE_CHECK: "1" },
    stdin,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const seen = { text: "", err: "" };
  const pump = async (s: ReadableStream<Uint8Array>, key: "text" | "err") => {
    const dec = new TextDecoder();
    for await (const chunk of s) seen[key] += dec.decode(chunk, { stream: true });
  };
  const done = Promise.all([pump(child.stdout, "text"), pump(child.stderr, "err")]);
  return { child, seen, done };
}

/**
 * Waits until the attach streams the container's output: writes `marker` on PID 1's stdout (by
 * exec) until the attach shows it, since it shows output only from the moment it attached.
 */
async function attached(e: Cli, name: string, seen: { text: string }, marker: string) {
  await until(`${marker} through attach`, async () => {
    if (seen.text.includes(marker)) return true;
    await e.t(["exec", name, "sh", "-c", `echo ${marker} > /proc/1/fd/1`]);
    return undefined;
  });
}

rootTest(
  "attach --no-stdin sends nothing; --detach-keys detaches, the container goes on",
  async () => {
    const e = await env();
    const script = "while :; do read l && echo got:$l; done";
    const name = uniqueName("att-keys");
    try {
      await e.ok(["run", "-di", "--name", name, "busybox", "sh", "-c", script]);
      const quiet = spawnAttach(e.root, ["--no-stdin", name], "piped");
      const w = quiet.child.stdin.getWriter();
      try {
        await w.write(new TextEncoder().encode("not-sent\n"));
        await attached(e, name, quiet.seen, "marker-quiet");
      } finally {
        await w.close().catch(() => {});
        quiet.child.kill("SIGKILL");
        await quiet.done.catch(() => {});
        await quiet.child.status;
      }

      const keys = spawnAttach(e.root, ["--detach-keys", "ctrl-x", name], "piped");
      const input = keys.child.stdin.getWriter();
      await attached(e, name, keys.seen, "marker-keys");
      await input.write(new TextEncoder().encode("sent\n"));
      await until(
        "got:sent",
        () => Promise.resolve(keys.seen.text.includes("got:sent") ? true : undefined),
      );
      await input.write(new Uint8Array([0x18]));
      const status = await keys.child.status;
      await input.close().catch(() => {});
      await keys.done.catch(() => {});
      assertEquals(status.code, 1, keys.seen.err);
      assertStringIncludes(keys.seen.err, "read escape sequence");
      assertEquals(await e.ok(["inspect", "-f", "{{.State.Status}}", name]), "running\n");
      const logs = await e.ok(["logs", name]);
      assertStringIncludes(logs, "got:sent");
      assertOk(!logs.includes("not-sent"), `--no-stdin passed stdin on: ${logs}`);
    } finally {
      await e.t(["rm", "-f", name]);
    }
  },
);

rootTest("attach passes SIGINT to the container; with --sig-proxy=false it does not", async () => {
  const e = await env();
  const script = 'trap "echo got-int" INT; while :; do sleep 1 & wait $!; done';
  await withContainer(e, "att-sig", ["busybox", "sh", "-c", script], async (name) => {
    // --sig-proxy=false: SIGINT ends the attach (130), the container is not signalled.
    const off = spawnAttach(e.root, ["--sig-proxy=false", name]);
    await attached(e, name, off.seen, "marker-off");
    off.child.kill("SIGINT");
    const offStatus = await off.child.status;
    await off.done.catch(() => {});
    assertEquals(offStatus.code, 130, off.seen.err);
    assertEquals(await e.ok(["inspect", "-f", "{{.State.Status}}", name]), "running\n");

    // Default: SIGINT reaches the container's trap; the attach stays.
    const on = spawnAttach(e.root, [name]);
    try {
      await attached(e, name, on.seen, "marker-on");
      on.child.kill("SIGINT");
      await until(
        "got-int through attach",
        () => Promise.resolve(on.seen.text.includes("got-int") ? true : undefined),
      );
    } finally {
      on.child.kill("SIGKILL");
      await on.done.catch(() => {});
      await on.child.status;
    }
    // The signal proxied later arrived; one sent earlier with --sig-proxy=false would be first.
    const logs = (await e.ok(["logs", name])).split("\n");
    assertEquals(logs.filter((l) => l === "got-int").length, 1, logs.join("\n"));
    assertOk(logs.indexOf("got-int") > logs.indexOf("marker-on"), logs.join("\n"));
  });
});
