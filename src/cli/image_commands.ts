/**
 * Image commands: pull, images, tag, rmi, inspect (and their `image ...` spellings).
 *
 * @module
 */
import type { Command } from "commander";
import { FORMAT_HELP } from "./formats.ts";
import { collectFilter } from "./filters.ts";
import { setExitCode } from "./exit.ts";
import { globalsOf } from "./globals.ts";
import { HOT_ACTIONS } from "./hot_actions.ts";

/** Defines the image commands on the program. */
export function defineImageCommands(program: Command): void {
  const pull = (cmd: Command) =>
    cmd
      .description("Download an image from a registry")
      .argument("<name>", "image reference, e.g. busybox, host:5000/app:1.0, app@sha256:...")
      .option("-q, --quiet", "print only the image reference")
      .option("--platform <os/arch[/variant]>", "pull this platform from a multi-platform image")
      .action((name, opts, self) => HOT_ACTIONS.pull(globalsOf(self), [name], opts));
  const images = (cmd: Command) =>
    cmd
      .description("List images")
      .argument("[repository]", "only images of this repository[:tag]")
      .option("-q, --quiet", "only show image IDs")
      .option(
        "-a, --all",
        "show all images, a multi-platform image's other variants too (tsbox keeps no intermediate images)",
      )
      .option("--digests", "show digests")
      .option(
        "-f, --filter <key=value>",
        "filter: dangling=true|false, label=K[=V], label!=, reference=GLOB, before=, since= " +
          "(repeatable)",
        collectFilter,
      )
      .option("--no-trunc", "do not truncate output")
      .option("--format <format>", FORMAT_HELP)
      .action(async (repository, opts, self) => {
        const { imagesCommand } = await import("./image_actions.ts");
        await imagesCommand(globalsOf(self), repository, opts);
      });
  const tag = (cmd: Command) =>
    cmd
      .description("Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE")
      .argument("<source>", "SOURCE_IMAGE[:TAG] or image id")
      .argument("<target>", "TARGET_IMAGE[:TAG]")
      .action(async (source, target, _opts, self) => {
        const { tagCommand } = await import("./image_actions.ts");
        await tagCommand(globalsOf(self), source, target);
      });
  const rmi = (cmd: Command) =>
    cmd
      .description("Remove one or more images")
      .argument("<images...>", "images by reference or id")
      .option("-f, --force", "force removal of the image")
      .action(async (names, opts, self) => {
        const { rmiCommand } = await import("./image_actions.ts");
        setExitCode(await rmiCommand(globalsOf(self), names, opts));
      });
  const inspect = (cmd: Command, only?: "image") =>
    cmd
      .description("Display detailed information on containers or images")
      .argument("<names...>", "containers or images by name or id")
      .option("-f, --format <template>", "format the output using a Go template, or json")
      .action(async (names, opts, self) => {
        if (only === undefined) return HOT_ACTIONS.inspect(globalsOf(self), [names], opts);
        const { inspectCommand } = await import("./image_actions.ts");
        setExitCode(await inspectCommand(globalsOf(self), names, only, opts.format));
      });

  pull(program.command("pull"));
  images(program.command("images"));
  tag(program.command("tag"));
  rmi(program.command("rmi"));
  inspect(program.command("inspect"));

  const image = program.command("image").description("Manage images");
  pull(image.command("pull"));
  images(image.command("ls").alias("list"));
  tag(image.command("tag"));
  rmi(image.command("rm"));
  inspect(image.command("inspect"), "image");
}
