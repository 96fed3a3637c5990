/**
 * Image exchange commands: login, logout, push, save, load, history (and the `image ...`
 * spellings of the last four). Only flags live here; the work is loaded when a command runs.
 *
 * @module
 */
import { type Command, Option } from "commander";
import { FORMAT_HELP } from "./formats.ts";
import { globalsOf } from "./globals.ts";

/** Any command, as an action receives it. */
type Self = Parameters<typeof globalsOf>[0];

/** Defines login, logout, push, save, load and history on the program. */
export function defineExchangeCommands(program: Command): void {
  program.command("login")
    .description("Log in to a registry (Docker Hub by default)")
    .argument("[server]", "registry host[:port]")
    .option("-u, --username <name>", "user name")
    .option("-p, --password <password>", "password (prefer --password-stdin)")
    .option("--password-stdin", "read the password from stdin")
    .action(async (server: string | undefined, opts, self: Self) => {
      const { loginCommand } = await import("./exchange_actions.ts");
      await loginCommand(globalsOf(self), server, opts);
    });
  program.command("logout")
    .description("Log out from a registry (Docker Hub by default)")
    .argument("[server]", "registry host[:port]")
    .action(async (server: string | undefined, _opts: unknown, self: Self) => {
      const { logoutCommand } = await import("./exchange_actions.ts");
      await logoutCommand(globalsOf(self), server);
    });

  const push = (cmd: Command) =>
    cmd
      .description("Upload an image to a registry")
      .argument("<name>", "NAME[:TAG], e.g. 127.0.0.1:5000/app:1.0")
      .option("-q, --quiet", "suppress progress output")
      .action(async (name: string, opts: { quiet?: boolean }, self: Self) => {
        const { pushCommand } = await import("./exchange_actions.ts");
        await pushCommand(globalsOf(self), name, opts);
      });
  const save = (cmd: Command) =>
    cmd
      .description("Save images to a tar archive (streamed to stdout by default)")
      .argument("<images...>", "images by reference or id")
      .option("-o, --output <file>", "write to a file instead of stdout")
      .addOption(
        new Option("--format <format>", "archive format").choices(["docker", "oci"]).default(
          "docker",
        ),
      )
      .option(
        "--platform <platforms>",
        "save only these platforms (os/arch[/variant], comma-separated) of a multi-platform image",
      )
      .action(
        async (
          names: string[],
          opts: { output?: string; format: string; platform?: string },
          self: Self,
        ) => {
          const { saveCommand } = await import("./exchange_actions.ts");
          await saveCommand(globalsOf(self), names, {
            output: opts.output,
            format: opts.format === "oci" ? "oci" : "docker",
            platform: opts.platform,
          });
        },
      );
  const load = (cmd: Command) =>
    cmd
      .description("Load images from a docker-archive or OCI layout tar (stdin by default)")
      .option("-i, --input <file>", "read from a file instead of stdin")
      .option("-q, --quiet", "suppress the load output")
      .action(async (opts: { input?: string; quiet?: boolean }, self: Self) => {
        const { loadCommand } = await import("./exchange_actions.ts");
        await loadCommand(globalsOf(self), opts);
      });
  const history = (cmd: Command) =>
    cmd
      .description("Show the history of an image")
      .argument("<image>", "image by reference or id")
      .option("--no-trunc", "do not truncate output")
      .option("-q, --quiet", "only show image IDs")
      .option("-H, --human [bool]", "sizes and dates in human readable form (default true)")
      .option("--format <format>", FORMAT_HELP)
      .action(async (name: string, opts, self: Self) => {
        const { historyCommand } = await import("./exchange_actions.ts");
        await historyCommand(globalsOf(self), name, {
          trunc: opts.trunc,
          quiet: opts.quiet,
          format: opts.format,
          human: opts.human !== "false",
        });
      });

  push(program.command("push"));
  save(program.command("save"));
  load(program.command("load"));
  history(program.command("history"));
  // `image` exists when the image commands were defined first; it is shared, not redefined.
  const image = (program.commands.find((c) => c.name() === "image") as Command | undefined) ??
    program.command("image").description("Manage images");
  push(image.command("push"));
  save(image.command("save"));
  load(image.command("load"));
  history(image.command("history"));
}
