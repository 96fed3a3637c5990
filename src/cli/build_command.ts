/**
 * `tsbox build [OPTIONS] PATH`: build an image from a Dockerfile, like `docker build`. The
 * Dockerfile parser and the builder load only when the command runs.
 *
 * @module
 */
import { type Command, Option } from "commander";
import { setExitCode } from "./exit.ts";
import { globalsOf } from "./globals.ts";

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/**
 * `--no-cache-filter STAGE`: commander reads a `--no-` name as the negation of another option
 * (here `--cache-filter`), so this one is marked as not negating: it takes stage names.
 */
function noCacheFilter(): Option {
  const opt = new Option(
    "--no-cache-filter <stage>",
    "do not use the cache for this stage's steps (repeatable)",
  ).argParser(collect);
  opt.negate = false;
  return opt;
}

/** Defines `build` (and `image build`) on the program. */
export function defineBuildCommand(program: Command): void {
  const build = (cmd: Command) =>
    cmd
      .description("Build an image from a Dockerfile")
      .argument("<path>", "build context directory, or - to read a tar context or a Dockerfile")
      .option("-t, --tag <name:tag>", "name and optionally a tag (repeatable)", collect)
      .option("-f, --file <path>", "the Dockerfile (default: PATH/Dockerfile; - for stdin)")
      .option("--build-arg <NAME[=value]>", "set a build-time variable (repeatable)", collect)
      .option("--no-cache", "do not use the cache when building the image")
      .addOption(noCacheFilter())
      .option("--pull", "always pull base images, even ones the store has")
      .option(
        "--allow <entitlement>",
        "security.insecure: let RUN --security=insecure steps run privileged (repeatable)",
        collect,
      )
      .option("-q, --quiet", "print only the image id")
      .option("--target <stage>", "build up to this stage")
      .addOption(
        new Option("--network <mode>", "network for RUN instructions")
          .choices(["host", "none", "default"]).default("host"),
      )
      .option("--platform <os/arch[/variant]>", "platform of base images to pull")
      .option("--iidfile <file>", "write the image id to the file")
      .option("--label <key=value>", "set metadata on the image (repeatable)", collect)
      .option(
        "--jobs <n>",
        "stages built at the same time at most (default: the number of CPUs; 0: no limit)",
      )
      .option(
        "--secret <id=ID,src=FILE|env=VAR>",
        "a secret for RUN --mount=type=secret (repeatable; never stored in the image)",
        collect,
      )
      .option(
        "--build-context <name=DIR|docker-image://REF>",
        "a named context for FROM, COPY --from and RUN --mount from= (repeatable)",
        collect,
      )
      .option(
        "--ssh <default|ID[=SOCKET]>",
        "an ssh agent socket for RUN --mount=type=ssh (repeatable; default: $SSH_AUTH_SOCK)",
        collect,
      )
      .option(
        "-o, --output <type=local,dest=DIR|type=tar,dest=FILE|DIR|->",
        "where the result goes: an image (default), a directory, a tar, a docker or oci archive",
      )
      .option(
        "--cache-from <type=local,src=DIR|type=registry,ref=REF>",
        "import build cache from a directory or a registry (repeatable)",
        collect,
      )
      .option(
        "--cache-to <type=local,dest=DIR|type=registry,ref=REF>",
        "export this build's cache to a directory or a registry",
      )
      .addOption(
        new Option(
          "--progress <mode>",
          "output: auto (tty on a terminal, else classic), tty, plain, rawjson, quiet",
        )
          .choices(["auto", "plain", "tty", "quiet", "rawjson", "classic"]).default("auto"),
      )
      .action(async (path, opts, self) => {
        const { buildCommand } = await import("./build_actions.ts");
        setExitCode(await buildCommand(globalsOf(self), path, opts));
      });
  build(program.command("build"));
  const image = program.commands.find((c) => c.name() === "image");
  if (image) build(image.command("build"));
}
