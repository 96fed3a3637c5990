/**
 * `tsbox rename` (root): a stopped and a running container take their new name (inspect, ps,
 * events); a refusal reads and exits as docker's client (checked against the real docker client
 * talking to tsbox's Engine API on the same store); the supervisor's pid file moves with the
 * name, so a unit from `generate systemd` made after the rename names a file that holds the
 * running supervisor; a user network's DNS answers to the new name and no longer to the old.
 * Traffic stays on the bridge tsbox made for the test's network.
 */
import { assertEquals, assertMatch, assertOk, assertStringIncludes } from "./assert.ts";
import { ok as okApi, rootTest, setup } from "./api_helpers.ts";
import { cli, stat, until } from "./stay_up.ts";
import { type CliResult, tsbox } from "./cli.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** The pid a pid file holds, or undefined when there is none. */
function pidIn(path: string): number | undefined {
  try {
    return Number(Deno.readTextFileSync(path).trim());
  } catch {
    return undefined;
  }
}

/**
 * What tsbox's bash completion script proposes for `tsbox ren`, `tsbox rename t-ren` and `tsbox
 * rename t-ren-run3 ''`, with a `tsbox` on PATH that runs main.ts (as tests/completion_test.ts).
 */
async function completeInBash(root: string, script: string): Promise<string[]> {
  const bin = await Deno.makeTempDir({ prefix: "tsbox-bin-" });
  try {
    await Deno.writeTextFile(
      `${bin}/tsbox`,
      `#!/bin/sh\nexec '${Deno.execPath()}' run -A --quiet '${MAIN}' "$@"\n`,
      { mode: 0o755 },
    );
    await Deno.writeTextFile(`${bin}/completion`, script);
    const body = [
      `t() { COMP_WORDS=("$@"); COMP_CWORD=$((\${#COMP_WORDS[@]} - 1)); COMPREPLY=();`,
      `  _tsbox; printf '%s\\n' "\${COMPREPLY[*]}"; }`,
      "t tsbox ren",
      `t tsbox --root '${root}' rename t-ren`,
      `t tsbox --root '${root}' rename t-ren-run3 ''`,
    ].join("\n");
    const out = await new Deno.Command("bash", {
      args: ["--norc", "-c", `source '${bin}/completion'\n${body}`],
      env: { PATH: `${bin}:${Deno.env.get("PATH")}` },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dec = new TextDecoder();
    assertEquals(dec.decode(out.stderr), "");
    return dec.decode(out.stdout).split("\n").slice(0, 3);
  } finally {
    await Deno.remove(bin, { recursive: true });
  }
}

/** The PIDFile= of the unit `generate systemd --name` writes for `name`. */
async function unitPidFile(ok: (a: string[]) => Promise<string>, name: string): Promise<string> {
  const unit = await ok(["generate", "systemd", "--name", name]);
  return unit.match(/^PIDFile=(.*)$/m)![1];
}

rootTest("rename: stopped and running, refusals as docker's, pid file, events", async () => {
  const t = await setup();
  const { t: run, ok, inspect } = cli(t.root);
  const since = String(Math.floor(Date.now() / 1000) - 1);
  try {
    const ref = t.fx.refs.busybox;
    await ok(["pull", "-q", ref]);

    // A stopped container.
    const stoppedId = (await ok(["create", "--name", "t-ren-stopped", ref, "true"])).trim();
    assertEquals(await ok(["rename", "t-ren-stopped", "t-ren-stopped2"]), "");
    assertEquals((await inspect("t-ren-stopped2")).Id, stoppedId);
    assertEquals((await inspect(stoppedId)).Name, "/t-ren-stopped2");
    assertEquals((await run(["inspect", "t-ren-stopped"])).code, 1);

    // A running one: its supervisor's pid file moves with the name.
    await ok(["run", "-d", "--name", "t-ren-run", ref, "sleep", "1000"]);
    const c = await inspect("t-ren-run");
    const supervisor = Number(stat(c.State.Pid)![1]);
    const before = await unitPidFile(ok, "t-ren-run");
    assertEquals(pidIn(before), supervisor, `${before} names the supervisor`);
    // `container rename` is the same command; a leading "/" is dropped, as docker's.
    assertEquals(await ok(["container", "rename", "t-ren-run", "/t-ren-run2"]), "");
    const after = await unitPidFile(ok, "t-ren-run2");
    assertOk(after !== before, after);
    assertEquals(pidIn(after), supervisor, `${after} names the supervisor after the rename`);
    assertEquals(pidIn(before), undefined, "no file left under the old name");
    const renamed = await inspect("t-ren-run2");
    assertEquals([renamed.Name, renamed.State.Running, renamed.State.Pid], [
      "/t-ren-run2",
      true,
      c.State.Pid,
    ]);
    assertEquals(
      await ok(["ps", "--filter", `id=${c.Id}`, "--format", "{{.Names}}"]),
      "t-ren-run2\n",
    );

    // Refusals: tsbox's words and exit codes are docker's client's on the same store.
    const cases = [
      ["t-ren-nosuch", "t-ren-x"], // no such container
      ["t-ren-run2", "t-ren-stopped2"], // the name is in use
      ["t-ren-run2", "bad name"], // not a valid name
      ["t-ren-run2", "x"], // too short for docker's pattern
      ["t-ren-run2", "t-ren-run2"], // its own name
      ["t-ren-run2", " "], // empty once trimmed
      ["t-ren-run2"], // one argument
      ["t-ren-run2", "a", "b"], // three
    ];
    for (const args of cases) {
      const mine: CliResult = await run(["rename", ...args]);
      const theirs = await t.d("rename", ...args);
      assertEquals(
        [mine.code, mine.stdout, mine.stderr.replaceAll("tsbox", "docker")],
        [theirs.code, theirs.stdout, theirs.stderr],
        `rename ${args.join(" ")}`,
      );
      assertEquals(mine.code, 1);
    }
    // And what docker says, spelled out.
    assertEquals(
      (await run(["rename", "t-ren-nosuch", "t-ren-x"])).stderr,
      "Error response from daemon: No such container: t-ren-nosuch\n" +
        "Error: failed to rename container named t-ren-nosuch\n",
    );
    assertMatch(
      (await run(["rename", "t-ren-run2", "t-ren-stopped2"])).stderr,
      new RegExp(
        `^Error response from daemon: Error when allocating new name: Conflict\\. The container ` +
          `name "/t-ren-stopped2" is already in use by container "${stoppedId}"\\. You have to ` +
          `remove \\(or rename\\) that container to be able to reuse that name\\.\\n` +
          `Error: failed to rename container named t-ren-run2\\n$`,
      ),
    );
    assertStringIncludes(
      (await run(["rename", "t-ren-run2", "bad name"])).stderr,
      "Error when allocating new name: Invalid container name (/bad name), only " +
        "[a-zA-Z0-9][a-zA-Z0-9_.-] are allowed\n",
    );
    assertEquals(
      (await run(["rename", "t-ren-run2", "t-ren-run2"])).stderr,
      "Error response from daemon: Renaming a container with the same name as its current name\n" +
        "Error: failed to rename container named t-ren-run2\n",
    );
    assertEquals(
      (await run(["rename", "t-ren-run2", " "])).stderr,
      "Error: Neither old nor new names may be empty\n",
    );
    assertStringIncludes(
      (await run(["rename", "t-ren-run2"])).stderr,
      `"tsbox rename" requires exactly 2 arguments.\nSee 'tsbox rename --help'.\n`,
    );
    // Nothing of the refusals changed a name.
    assertEquals((await inspect("t-ren-run2")).Id, c.Id);
    assertEquals((await inspect("t-ren-stopped2")).Id, stoppedId);

    // The API's rename moves the pid file too (one code path).
    await okApi(t.d("rename", "t-ren-run2", "t-ren-run3"));
    const third = await unitPidFile(ok, "t-ren-run3");
    assertEquals([pidIn(third), pidIn(after)], [supervisor, undefined]);

    // The supervisor ends: it removes the file under the name of now.
    await ok(["stop", "-t", "1", "t-ren-run3"]);
    await until("the pid file to go", () => pidIn(third) === undefined);

    // Events: one `rename` each, with docker's attributes.
    const events = await ok([
      "events",
      "--since",
      since,
      "--until",
      String(Math.ceil(Date.now() / 1000)),
      "--filter",
      "event=rename",
      "--format",
      "{{.Actor.Attributes.oldName}} {{.Actor.Attributes.name}}",
    ]);
    assertEquals(events.trim().split("\n"), [
      "/t-ren-stopped t-ren-stopped2",
      "/t-ren-run t-ren-run2",
      "/t-ren-run2 t-ren-run3",
    ]);

    // bash completion: the command, containers for its first argument, nothing for the new name.
    assertEquals(await completeInBash(t.root, await ok(["completion", "bash"])), [
      "rename",
      "t-ren-run3 t-ren-stopped2",
      "",
    ]);
  } finally {
    await tsbox(["rm", "-f", "t-ren-stopped2", "t-ren-run3", "t-ren-run2", "t-ren-run"], {
      root: t.root,
    });
    await t.cleanup();
  }
});

rootTest("rename: a user network's DNS answers to the new name", async () => {
  const t = await setup();
  const { t: run, ok } = cli(t.root);
  const net = `t-ren-net-${crypto.randomUUID().slice(0, 6)}`;
  try {
    const ref = t.fx.refs.busybox;
    await ok(["pull", "-q", ref]);
    await ok(["network", "create", net]);
    const server = (name: string) => [
      "run",
      "-d",
      "--name",
      name,
      "--network",
      net,
      ref,
      "sh",
      "-c",
      "while true; do echo pong | nc -l -p 7000; done",
    ];
    const ask = async (target: string) => {
      const r = await run([
        "run",
        "--rm",
        "--network",
        net,
        ref,
        "sh",
        "-c",
        `nc ${target} 7000 </dev/null`,
      ]);
      return r.stdout + r.stderr;
    };
    const answers = async (name: string) => {
      await until(`${name} to answer`, async () => (await ask(name)) === "pong\n", 30_000);
    };

    // Running: the network's DNS serves the new name at once, and not the old one.
    await ok(server("t-ren-srv"));
    await answers("t-ren-srv");
    await ok(["rename", "t-ren-srv", "t-ren-srv2"]);
    await answers("t-ren-srv2");
    assertStringIncludes(await ask("t-ren-srv"), "bad address");

    // Stopped, renamed, started: it joins the network under the new name.
    await ok(["stop", "-t", "1", "t-ren-srv2"]);
    await ok(["rename", "t-ren-srv2", "t-ren-srv3"]);
    await ok(["start", "t-ren-srv3"]);
    await answers("t-ren-srv3");
    assertStringIncludes(await ask("t-ren-srv2"), "bad address");
    const members = JSON.parse(await ok(["network", "inspect", net]))[0].Containers;
    assertEquals(Object.values(members).map((m) => (m as { Name: string }).Name), [
      "t-ren-srv3",
    ]);
  } finally {
    await run(["rm", "-f", "t-ren-srv", "t-ren-srv2", "t-ren-srv3"]);
    await run(["network", "rm", net]);
    await t.cleanup();
  }
});
