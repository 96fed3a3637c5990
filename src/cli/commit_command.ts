/**
 * `tsbox commit [-a AUTHOR] [-m MSG] [-c CHANGE]... [-p] CONTAINER [REPOSITORY[:TAG]]` (and
 * `container commit`), like `docker commit`: prints the new image's id. The work is in
 * src/container/commit.ts.
 *
 * @module
 */
import { type Command, InvalidArgumentError } from "commander";
import { globalsOf } from "./globals.ts";

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** A Go bool as pflag parses it (`--pause=false`); a bare `-p` is true. */
function goBool(value: string): boolean {
  if (["1", "t", "T", "true", "TRUE", "True"].includes(value)) return true;
  if (["0", "f", "F", "false", "FALSE", "False"].includes(value)) return false;
  throw new InvalidArgumentError(
    `strconv.ParseBool: parsing ${JSON.stringify(value)}: invalid syntax`,
  );
}

/** Defines `commit` and `container commit` on the program. */
export function defineCommitCommand(program: Command): void {
  const define = (cmd: Command) =>
    cmd.description("Create a new image from a container's changes")
      .argument("<container>", "name or id")
      .argument("[repository]", "REPOSITORY[:TAG] to name the image")
      .option("-a, --author <author>", 'author (e.g. "John Hannibal Smith <hannibal@a-team.com>")')
      .option("-m, --message <message>", "commit message")
      .option("-c, --change <instruction>", "apply a Dockerfile instruction (repeatable)", collect)
      .option("-p, --pause [bool]", "pause the container during commit (default true)", goBool)
      .action(async (container, repository, flags, self) => {
        const { commitContainer } = await import("../container/commit.ts");
        const { Store } = await import("../store/mod.ts");
        const store = await Store.open(globalsOf(self).root);
        try {
          const image = await commitContainer(store, container, {
            author: flags.author,
            message: flags.message,
            changes: flags.change,
            pause: flags.pause !== false,
            reference: repository,
          });
          console.log(image.id);
        } finally {
          store.close();
        }
      });
  define(program.command("commit"));
  const container = program.commands.find((c) => c.name() === "container");
  if (container) define(container.command("commit")).exitOverride().showHelpAfterError();
}
