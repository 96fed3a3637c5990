/**
 * `tsbox import [-c CHANGE]... [-m MESSAGE] file|URL|- [REPOSITORY[:TAG]]` (and `image
 * import`): a filesystem tarball as a one-layer image. Prints the new image's id, as docker.
 *
 * @module
 */
import type { Command } from "commander";
import { TsboxError } from "../errors.ts";
import { globalsOf } from "./globals.ts";

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** Defines `import` and `image import` on the program. */
export function defineImportCommand(program: Command): void {
  const define = (cmd: Command) =>
    cmd.description("Import the contents from a tarball to create a filesystem image")
      .argument("<source>", "a tar file (plain, gzip or zstd), an http(s) URL, or - for stdin")
      .argument("[reference]", "REPOSITORY[:TAG] to tag the image with")
      .option("-c, --change <instruction>", "apply a Dockerfile instruction to the image", collect)
      .option("-m, --message <message>", "set the commit message for the imported image")
      .option("--platform <os/arch>", "the image's platform (the host's only)")
      .action(async (source, reference, opts, self) => {
        const { Store } = await import("../store/mod.ts");
        const { importImage } = await import("../image/import.ts");
        if (opts.platform !== undefined) {
          const { hostPlatform, parsePlatform } = await import("../../registry/platform.ts");
          const want = parsePlatform(opts.platform);
          const host = hostPlatform();
          if (want.os !== host.os || want.architecture !== host.architecture) {
            throw new TsboxError(`import: platform ${opts.platform} is not this host's`);
          }
        }
        const input = await openSource(source);
        const store = await Store.open(globalsOf(self).root);
        try {
          const image = await importImage(store, input, {
            source,
            changes: opts.change,
            message: opts.message,
            reference,
          });
          console.log(image.id);
        } finally {
          store.close();
        }
      });
  define(program.command("import"));
  const image = program.commands.find((c) => c.name() === "image") as Command | undefined;
  if (image) define(image.command("import"));
}

/** The bytes of `source`: stdin for `-`, the body of an http(s) URL, else a file. */
async function openSource(source: string): Promise<ReadableStream<Uint8Array>> {
  if (source === "-") {
    if (Deno.stdin.isTerminal()) throw new TsboxError("import: stdin is a terminal, not a tarball");
    return Deno.stdin.readable;
  }
  if (/^https?:\/\//i.test(source)) {
    let res: Response;
    try {
      res = await fetch(source);
    } catch (err) {
      throw new TsboxError(`import: ${source}: ${(err as Error).message}`);
    }
    if (!res.ok || !res.body) {
      await res.body?.cancel();
      throw new TsboxError(`import: ${source}: ${res.status} ${res.statusText}`);
    }
    return res.body;
  }
  try {
    return (await Deno.open(source)).readable;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new TsboxError(`open ${source}: no such file or directory`);
    }
    throw err;
  }
}
