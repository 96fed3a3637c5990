/**
 * `tsbox system service [--socket PATH] [--timeout S]`: serves the Docker Engine API
 * (src/api/) on a unix socket, for the docker client, docker-compose and testcontainers.
 *
 * @module
 */
import { type Command, InvalidArgumentError } from "commander";
import { globalsOf } from "./globals.ts";

function seconds(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError("must be a whole number of seconds");
  return Number(value);
}

/** Adds `service` to the `system` command (system_commands.ts defines it). */
export function defineServiceCommand(program: Command): void {
  const found = program.commands.find((c) => c.name() === "system") as unknown as
    | Command
    | undefined;
  const system = found ?? program.command("system").description("Manage tsbox");
  system.command("service")
    .description("Serve the Docker Engine API (1.41) on a unix socket")
    .option("--socket <path>", "unix socket to listen on (default /run/tsbox/tsbox.sock)")
    .option("--group <group>", "group owning the socket (default root): its members may use it")
    .option(
      "-t, --timeout <seconds>",
      "end after this many idle seconds; 0 runs until stopped",
      seconds,
      5,
    )
    .exitOverride()
    .action(async (opts, self) => {
      const { serveApi, defaultSocket } = await import("../api/server.ts");
      const abort = new AbortController();
      const end = () => abort.abort();
      Deno.addSignalListener("SIGINT", end);
      Deno.addSignalListener("SIGTERM", end);
      try {
        await serveApi(globalsOf(self), {
          socket: opts.socket ?? defaultSocket(),
          timeout: opts.timeout,
          group: opts.group,
          signal: abort.signal,
          onListening: (path) => console.error(`tsbox: serving the Docker API on unix://${path}`),
          log: (line) => console.error(line),
        });
      } finally {
        Deno.removeSignalListener("SIGINT", end);
        Deno.removeSignalListener("SIGTERM", end);
      }
    });
}
