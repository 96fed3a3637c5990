import type { Command, Option } from "commander";
import { assertEquals, assertOk } from "../../tests/assert.ts";
import * as parsers from "./arg_parsers.ts";
import { collectFilter } from "./filters.ts";
import { DEFAULT_ROOT, globalsFrom } from "./globals.ts";
import { HOT_ACTIONS } from "./hot_actions.ts";
import { actionOpts } from "./hot.ts";
import { createLine } from "./create_line.ts";
import { parseHot } from "./hot_parse.ts";
import { HOT_COMMANDS, HOT_PROGRAM_OPTIONS, type HotOption } from "./hot_spec.ts";
import { buildProgram } from "./mod.ts";

const PARSERS: Record<string, unknown> = { ...parsers, collectFilter };

/** An option of commander's tree in hot_spec.ts's shape. */
function specOf(o: Option, cmd: Command): HotOption {
  // commander's own setter is one listener; any other makes the option one to leave to it.
  const listened = (cmd as unknown as { listenerCount(e: string): number })
    .listenerCount(`option:${o.name()}`) > 1;
  const parser = o.parseArg && Object.keys(PARSERS).find((k) => PARSERS[k] === o.parseArg);
  if (o.parseArg) assertOk(parser, `${o.long}: its parser is not one of arg_parsers.ts`);
  return {
    ...(o.short ? { short: o.short } : {}),
    long: o.long!,
    key: o.attributeName(),
    ...(o.required ? { value: true } : {}),
    ...(o.negate ? { negate: true } : {}),
    ...(parser ? { parser: parser as HotOption["parser"] } : {}),
    // --root's default is DEFAULT_ROOT, applied by globalsFrom on the fast path.
    ...(o.defaultValue !== undefined && !(o.long === "--root" && o.defaultValue === DEFAULT_ROOT)
      ? { default: o.defaultValue as string }
      : {}),
    ...(o.envVar ? { env: o.envVar } : {}),
    ...(listened ? { listened: true } : {}),
  };
}

function command(program: Command, name: string): Command {
  const c = program.commands.find((c) => c.name() === name);
  assertOk(c, `commander has no ${name}`);
  return c as Command;
}

Deno.test("hot_spec.ts is what commander's declarations say", () => {
  const program = buildProgram();
  assertEquals(program.options.map((o) => specOf(o, program)), [...HOT_PROGRAM_OPTIONS]);
  for (const [name, spec] of Object.entries(HOT_COMMANDS)) {
    const c = command(program, name) as Command & { _passThroughOptions: boolean };
    assertEquals(
      {
        args: c.registeredArguments.map((a) => ({ required: a.required, variadic: a.variadic })),
        passThrough: c._passThroughOptions,
        options: c.options.map((o) => specOf(o, c)),
      },
      { args: [...spec.args], passThrough: spec.passThrough, options: [...spec.options] },
      name,
    );
  }
  assertEquals(Object.keys(HOT_ACTIONS).sort(), Object.keys(HOT_COMMANDS).sort());
});

type Parsed =
  | { kind: "version" }
  | {
    kind: "command";
    command: string;
    args: unknown[];
    opts: Record<string, unknown>;
    globals: unknown;
  }
  | { kind: "error"; code: string };

/** What commander makes of `argv`, with the hot commands' actions replaced by a recorder. */
async function viaCommander(argv: string[]): Promise<Parsed> {
  const program = buildProgram();
  let parsed: Parsed | undefined;
  const quiet = (c: Command) => {
    c.configureOutput({ writeOut: () => {}, writeErr: () => {}, outputError: () => {} });
    for (const s of c.commands) quiet(s as Command);
  };
  quiet(program);
  for (const name of Object.keys(HOT_COMMANDS)) {
    command(program, name).action((...all: unknown[]) => {
      const self = all.at(-1) as Command;
      const args = all.slice(0, -2);
      const opts = self.opts();
      parsed = {
        kind: "command",
        command: name,
        args,
        // What run_command.ts adds for run's action.
        opts: name === "run"
          ? { ...opts, createCommand: createLine(self, args[0] as string, args[1] as string[]) }
          : opts,
        globals: globalsFrom(program.opts()),
      };
    });
  }
  try {
    await program.parseAsync(argv, { from: "user" });
  } catch (err) {
    const code = (err as { code?: string }).code ?? "thrown";
    return code === "commander.version" ? { kind: "version" } : { kind: "error", code };
  }
  return parsed ?? { kind: "error", code: "no action" };
}

const envFile = await Deno.makeTempFile();
const CASES: [string[], boolean][] = [
  // [argv, whether the fast path must take it]
  [["--version"], true],
  [["-v"], true],
  [["--root", "/x", "--version"], true],
  [["-Dv"], true],
  [["--version", "--bogus"], true],
  [["pull", "busybox"], true],
  [["pull", "-q", "--platform", "linux/arm64", "host:5000/a/b:1"], true],
  [["--root", "/r", "pull", "busybox", "-q"], true],
  [["pull", "--platform=linux/amd64", "busybox"], true],
  [["pull"], false],
  [["pull", "a", "b"], false],
  [["pull", "--all-tags", "busybox"], false],
  [["ps"], true],
  [["ps", "-a"], true],
  [["ps", "-aq", "--no-trunc"], true],
  [["ps", "-n", "3", "-s"], true],
  [["ps", "-n3"], true],
  [["ps", "--last=3", "-l"], true],
  [["ps", "-f", "status=exited", "--filter", "name=x", "--format", "{{.ID}}"], true],
  [["ps", "--format=json"], true],
  [["ps", "-n", "x"], false],
  [["ps", "-f", "nokey"], false],
  [["ps", "extra"], false],
  [["ps", "--help"], false],
  [["ps", "-h"], false],
  [["ps", "--bogus"], false],
  [["ps", "-n"], false],
  [["ps", "--all=true"], false],
  [["--root", "/tmp/r", "ps"], true],
  [["--root=/tmp/r", "-D", "--insecure-registry", "a", "--insecure-registry", "b", "ps"], true],
  [["--userns-remap", "default", "ps", "-a"], true],
  [["--runroot", "/run/x", "ps"], true],
  [["--runroot=/run/x", "run", "--rm", "busybox"], true],
  [["ps", "--root", "/x"], false],
  [["--bogus", "ps"], false],
  [[], false],
  [["--help"], false],
  [["images"], false],
  [["container", "ls"], false],
  [["inspect", "a", "b"], true],
  [["inspect", "-f", "{{.Id}}", "a"], true],
  [["inspect", "-f{{.Id}}", "a"], true],
  [["inspect"], false],
  [["start", "a"], true],
  [["start", "-ai", "a"], true],
  [["start", "-a", "-i", "a", "b"], true],
  [["stop", "-t", "0", "a", "b"], true],
  [["stop", "-t0", "-s", "TERM", "a"], true],
  [["stop", "--time=5", "a"], true],
  [["stop", "a", "-t", "1"], true],
  [["stop", "--", "a"], false],
  [["stop", "-1"], false],
  [["rm", "-f", "a"], true],
  [["rm", "-fv", "a", "b"], true],
  [["rm", "a", "-f"], true],
  [["exec", "c", "ls", "-la"], true],
  [["exec", "-it", "-e", "A=1", "-e", "B=2", "-w", "/", "-u", "0", "c", "sh", "-c", "x"], true],
  [["exec", "-d", "c", "sleep", "1", "--rm"], true],
  [["exec", "c"], false],
  [["exec", "--env=A=1", "c", "true"], true],
  [["run", "busybox"], true],
  [["run", "--rm", "busybox", "true"], true],
  [["run", "--rm", "--network", "none", "busybox", "true"], true],
  [["run", "-d", "--name", "x", "-p", "8080:80", "-p", "9090:90", "nginx"], true],
  [["run", "-h", "host", "busybox", "hostname"], true],
  [["run", "-it", "-e", "A=1", "--env-file", envFile, "busybox", "sh"], true],
  [["run", "--env-file", "/nonexistent/file", "busybox"], false],
  [["run", "-l", "a=b", "--label", "c", "busybox"], true],
  [["run", "-l", "bad key=b", "busybox"], false],
  [["run", "--network", "bogus", "busybox"], true], // a network name, checked at create
  [["run", "--network=container:x", "busybox"], true],
  [["run", "--health-cmd", "true", "--health-interval", "1s", "--health-retries", "3", "b"], true],
  [["run", "--health-interval", "xx", "busybox"], false],
  [["run", "--health-retries", "x", "busybox"], false],
  [["run", "--no-healthcheck", "--read-only", "-m", "32m", "--cpus", "0.5", "busybox"], true],
  [["run", "--cap-add", "NET_ADMIN", "--cap-drop", "ALL", "--privileged", "busybox"], true],
  [["run", "--rm", "busybox", "ls", "-l", "--rm", "-d"], true],
  [["run", "-dit", "busybox"], true],
  [["run", "-e"], false],
  [["run"], false],
  [["run", "--help"], false],
  [["run", "-x", "busybox"], false],
  [["run", "--", "busybox"], false],
  [["run", "--net", "none", "busybox"], false],
  [["run", "--network", "mynet", "-a", "stdout", "busybox"], true],
  [["run", "--network", "-bad", "busybox"], false],
];

Deno.test("the fast path parses hot command lines exactly as commander does", async () => {
  const saved = Deno.env.get("TSBOX_ROOT");
  // globalsFrom exports --runroot to the environment, as the CLI does for its supervisors.
  const savedRunroot = Deno.env.get("TSBOX_RUNROOT");
  try {
    for (const env of [undefined, "/from/env"]) {
      if (env === undefined) Deno.env.delete("TSBOX_ROOT");
      else Deno.env.set("TSBOX_ROOT", env);
      for (const [argv, hot] of CASES) {
        const fast = parseHot(argv);
        assertEquals(fast !== undefined, hot, `fast path taken for ${JSON.stringify(argv)}`);
        if (fast === undefined) continue;
        const seen = fast.kind === "version" ? fast : {
          kind: fast.kind,
          command: fast.command,
          args: fast.args,
          opts: actionOpts(fast),
          globals: globalsFrom(fast.programOpts),
        };
        assertEquals(
          JSON.parse(JSON.stringify(seen)),
          JSON.parse(JSON.stringify(await viaCommander(argv))),
          JSON.stringify(argv),
        );
      }
    }
  } finally {
    if (saved === undefined) Deno.env.delete("TSBOX_ROOT");
    else Deno.env.set("TSBOX_ROOT", saved);
    if (savedRunroot === undefined) Deno.env.delete("TSBOX_RUNROOT");
    else Deno.env.set("TSBOX_RUNROOT", savedRunroot);
    await Deno.remove(envFile);
  }
});
