/**
 * `tsbox completion`: the bash script is valid bash, registers itself, and completes the real
 * command tree (commands, subcommands, options) and names read from a real store, through a
 * `tsbox` on PATH as a user has it. The zsh and fish scripts are run by zsh and fish where those
 * are installed (Debian's `zsh` and `fish`; the tests skip otherwise).
 */
import { join } from "node:path";
import { buildProgram } from "../src/cli/mod.ts";
import { assertEquals, assertOk, assertStringIncludes } from "./assert.ts";
import { tempRoot, tsbox } from "./cli.ts";
import { seedStore } from "./busybox_store.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** The visible top-level commands, from the program itself. */
function topCommands(): string[] {
  const program = buildProgram();
  return program.createHelp().visibleCommands(program).map((c) => c.name())
    .filter((n) => n !== "help");
}

/** Runs `shell` with the script sourced and `tsbox` on PATH; returns stdout. */
async function inShell(
  shell: "bash" | "zsh" | "fish",
  script: string,
  body: string,
): Promise<{ code: number; out: string }> {
  const bin = await Deno.makeTempDir({ prefix: "tsbox-bin-" });
  try {
    await Deno.writeTextFile(
      join(bin, "tsbox"),
      `#!/bin/sh\nexec '${Deno.execPath()}' run -A --quiet '${MAIN}' "$@"\n`,
    );
    await Deno.chmod(join(bin, "tsbox"), 0o755);
    await Deno.writeTextFile(join(bin, "completion"), script);
    const flags = { bash: ["--norc"], zsh: ["-f"], fish: ["--no-config"] }[shell];
    const out = await new Deno.Command(shell, {
      args: [...flags, "-c", `source '${join(bin, "completion")}'\n${body}`],
      env: { PATH: `${bin}:${Deno.env.get("PATH")}` },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dec = new TextDecoder();
    assertEquals(dec.decode(out.stderr), "");
    return { code: out.code, out: dec.decode(out.stdout) };
  } finally {
    await Deno.remove(bin, { recursive: true });
  }
}

/** A bash function printing what `_tsbox` proposes for the words given (last one: current). */
const COMPLETE = `t() { COMP_WORDS=("$@"); COMP_CWORD=$((\${#COMP_WORDS[@]} - 1)); COMPREPLY=();
  _tsbox; printf '%s\\n' "\${COMPREPLY[*]}"; }\n`;

Deno.test("bash completion: valid, registered, and completes commands, options and names", async () => {
  const { root, cleanup } = await tempRoot();
  try {
    const r = await tsbox(["completion", "bash"], { root });
    assertEquals(r.code, 0, r.stderr);
    const script = r.stdout;
    const syntax = await new Deno.Command("bash", { args: ["-n"], stdin: "piped" }).spawn();
    const w = syntax.stdin.getWriter();
    await w.write(new TextEncoder().encode(script));
    await w.close();
    assertEquals((await syntax.status).code, 0, "bash -n accepts the script");

    await seedStore(root);
    assertEquals((await tsbox(["volume", "create", "vol-one"], { root })).code, 0);
    const lines = (await inShell(
      "bash",
      script,
      COMPLETE + [
        "complete -p tsbox",
        "t tsbox ''",
        "t tsbox ima",
        "t tsbox image pr",
        "t tsbox system prune --vo",
        "t tsbox builder prune -",
        `t tsbox --root '${root}' volume rm ''`,
        `t tsbox --root '${root}' rmi bu`,
        `t tsbox --root '${root}' run --name x ''`,
        `t tsbox --root '${root}' run busybox:latest ''`,
        `t tsbox completion ''`,
        `t tsbox completion z`,
      ].join("\n"),
    )).out.split("\n");
    assertEquals(lines[0], "complete -F _tsbox tsbox");
    const top = lines[1].split(" ");
    assertEquals(top.sort(), topCommands().sort());
    for (const c of ["system", "builder", "completion", "run", "volume"]) {
      assertOk(top.includes(c), c);
    }
    assertOk(!top.includes("__supervise") && !top.includes("__complete"), lines[1]);
    assertEquals(lines[2], "images image");
    assertEquals(lines[3], "prune");
    assertEquals(lines[4], "--volumes");
    assertEquals(lines[5].split(" ").sort(), ["--all", "--force", "--help", "-a", "-f", "-h"]);
    assertEquals(lines[6], "vol-one");
    assertEquals(lines[7], "busybox:latest");
    // run's first argument is an image, also after an option and its value.
    assertEquals(lines[8], "busybox:latest");
    // ... and what follows is the command: no names proposed.
    assertEquals(lines[9], "");
    // An argument with choices completes them.
    assertEquals(lines[10], "bash zsh fish");
    assertEquals(lines[11], "zsh");
  } finally {
    await cleanup();
  }
});

Deno.test("completion: names outside a store print nothing and create nothing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tsbox-nostore-" });
  try {
    const root = join(dir, "absent");
    const r = await tsbox(["__complete", "containers"], { root });
    assertEquals([r.code, r.stdout, r.stderr], [0, "", ""]);
    assertEquals([...Deno.readDirSync(dir)], []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

function installed(program: string): boolean {
  try {
    return new Deno.Command(program, { args: ["-c", "true"] }).outputSync().code === 0;
  } catch {
    return false;
  }
}

Deno.test({
  name: "zsh: the script loads through bashcompinit and completes commands and names",
  ignore: !installed("zsh"),
  fn: async () => {
    const { root, cleanup } = await tempRoot();
    try {
      const r = await tsbox(["completion", "zsh"], { root });
      assertEquals(r.code, 0, r.stderr);
      assertEquals((await tsbox(["volume", "create", "vol-z"], { root })).code, 0);
      // zsh filters the words by what is typed itself: the function proposes them all.
      const t = `t() { COMP_WORDS=("$@"); COMP_CWORD=$((\${#COMP_WORDS} - 1)); COMPREPLY=();
        _tsbox; print -r -- "\${COMPREPLY[*]}"; }\n`;
      const lines = (await inShell(
        "zsh",
        r.stdout,
        t + [
          "print -r -- $_comps[tsbox]",
          "t tsbox ''",
          "t tsbox system prune -",
          `t tsbox --root '${root}' volume rm ''`,
        ].join("\n"),
      )).out.split("\n");
      assertEquals(lines[0], "_bash_complete -F _tsbox");
      assertEquals(lines[1].split(" ").sort(), topCommands().sort());
      assertEquals(lines[2].split(" ").sort(), [
        "--all",
        "--force",
        "--help",
        "--volumes",
        "-a",
        "-f",
        "-h",
      ]);
      assertEquals(lines[3], "vol-z");
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name: "fish: the script loads and completes commands, options, choices and names",
  ignore: !installed("fish"),
  fn: async () => {
    const { root, cleanup } = await tempRoot();
    try {
      const r = await tsbox(["completion", "fish"], { root });
      assertEquals(r.code, 0, r.stderr);
      assertEquals((await tsbox(["volume", "create", "vol-f"], { root })).code, 0);
      const out = (await inShell(
        "fish",
        r.stdout,
        [
          "complete -C'tsbox '",
          "echo ---",
          "complete -C'tsbox image pr'",
          "echo ---",
          "complete -C'tsbox system prune --v'",
          "echo ---",
          "complete -C'tsbox completion z'",
          "echo ---",
          `complete -C'tsbox --root ${root} volume rm '`,
        ].join("\n"),
      )).out.split("---\n").map((part) =>
        part.trim().split("\n").map((line) => line.split("\t")[0])
      );
      assertEquals(out[0].sort(), topCommands().sort());
      assertEquals(out[1], ["prune"]);
      assertEquals(out[2], ["--volumes"]);
      assertEquals(out[3], ["zsh"]);
      assertEquals(out[4], ["vol-f"]);
    } finally {
      await cleanup();
    }
  },
});

Deno.test("zsh and fish scripts list every command", async () => {
  const { root, cleanup } = await tempRoot();
  try {
    const zsh = await tsbox(["completion", "zsh"], { root });
    assertEquals(zsh.code, 0, zsh.stderr);
    assertOk(zsh.stdout.startsWith("#compdef tsbox\n"));
    assertStringIncludes(zsh.stdout, "bashcompinit");
    const fish = await tsbox(["completion", "fish"], { root });
    assertEquals(fish.code, 0, fish.stderr);
    for (const c of topCommands()) {
      assertStringIncludes(fish.stdout, `-n '__tsbox_at' -a '${c}'`);
    }
    assertStringIncludes(fish.stdout, `-n '__tsbox_at system' -a 'prune'`);
    assertStringIncludes(fish.stdout, `-n '__tsbox_at system prune' -l volumes`);
    assertStringIncludes(fish.stdout, `-n '__tsbox_at completion' -a 'bash zsh fish'`);
    const bad = await tsbox(["completion", "tcsh"], { root });
    assertEquals(bad.code, 125);
  } finally {
    await cleanup();
  }
});
