/**
 * `tsbox import [-c CHANGE]... [-m MSG] FILE|- [REPOSITORY[:TAG]]` (and `image import`), like
 * `docker import`: prints the new image's id. The work is in src/image/import.ts.
 *
 * @module
 */
import type { Command } from "commander";
import { UsageError } from "../errors.ts";
import { globalsOf } from "./globals.ts";

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** Opens the archive to import: a file, or stdin for `-`. */
async function openSource(source: string): Promise<ReadableStream<Uint8Array>> {
  if (source === "-") return Deno.stdin.readable;
  if (/^https?:\/\//i.test(source)) {
    throw new UsageError(`importing from a URL is not supported by tsbox: ${source}`);
  }
  try {
    return (await Deno.open(source)).readable;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new UsageError(`open ${source}: no such file or directory`);
    }
    throw err;
  }
}

/** Defines `import` and `image import` on the program. */
export function defineImportCommand(program: Command): void {
  const define = (cmd: Command) =>
    cmd.description("Import the contents from a tarball to create a filesystem image")
      .argument("<file>", "tar archive (plain, gzip or zstd), or - for stdin")
      .argument("[repository]", "REPOSITORY[:TAG] to name the image")
      .option("-c, --change <instruction>", "apply a Dockerfile instruction (repeatable)", collect)
      .option("-m, --message <message>", "commit message for the imported image")
      .action(async (source: string, repository: string | undefined, flags, self) => {
        const { importImage } = await import("../image/import.ts");
        const { Store } = await import("../store/mod.ts");
        const input = await openSource(source);
        const store = await Store.open(globalsOf(self).root);
        try {
          const image = await importImage(store, input, {
            changes: flags.change,
            message: flags.message,
            reference: repository,
            source,
          });
          console.log(image.id);
        } finally {
          store.close();
        }
      });
  define(program.command("import"));
  const image = program.commands.find((c) => c.name() === "image");
  if (image) define(image.command("import")).exitOverride().showHelpAfterError();
}
