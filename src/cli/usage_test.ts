import { Command } from "commander";
import { assertEquals } from "../../tests/assert.ts";
import { commandPath, dockerFlagMessage } from "./usage.ts";

const program = new Command("tsbox");
const ls = program.command("container").command("ls");

Deno.test("commander's messages in docker's words", () => {
  assertEquals(commandPath(ls), "tsbox container ls");
  const cases: [string, string][] = [
    ["error: unknown option '--bogus'\n(Did you mean --bogs?)", "unknown flag: --bogus"],
    ["error: unknown option '-x'", "unknown shorthand flag: 'x' in -x"],
    ["error: option '--name <name>' argument missing", "flag needs an argument: --name"],
    ["error: option '-e, --env <NAME[=value]>' argument missing", "flag needs an argument: --env"],
    [
      "error: option '--network <mode>' argument 'x' is invalid. Allowed choices are a, b.",
      'invalid argument "x" for "--network" flag: Allowed choices are a, b.',
    ],
    [
      "error: missing required argument 'image'",
      '"tsbox container ls" requires at least 1 argument.',
    ],
    ["error: unknown command 'bogus'", "tsbox container ls: 'bogus' is not a tsbox command."],
  ];
  for (const [commander, docker] of cases) assertEquals(dockerFlagMessage(ls, commander), docker);
});
