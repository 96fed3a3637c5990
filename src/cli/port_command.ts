/**
 * `tsbox port CONTAINER [PRIVATE_PORT[/PROTO]]`: the container's published ports, as
 * `docker port` prints them (`80/tcp -> 0.0.0.0:8080`, or only the host addresses of one port).
 *
 * @module
 */
import type { Command } from "commander";
import { TsboxError } from "../errors.ts";
import { setExitCode } from "./exit.ts";
import { globalsOf } from "./globals.ts";

/** Defines `port` (and `container port`) on the program. */
export function definePortCommand(program: Command): void {
  program.command("port")
    .description("List port mappings or a specific mapping for the container")
    .argument("<container>", "name or id")
    .argument("[port]", "private port, optionally with /tcp or /udp")
    .action(async (name, port, _opts, cmd) => {
      const { Store } = await import("../store/mod.ts");
      const { requireContainer } = await import("../container/state.ts");
      const { portCommandLines } = await import("../net/publish.ts");
      const store = await Store.open(globalsOf(cmd).root);
      try {
        const c = requireContainer(store, name);
        const lines = portCommandLines(store, c, port);
        if (port !== undefined && lines.length === 0) {
          const key = port.includes("/") ? port : `${port}/tcp`;
          throw new PortNotPublishedError(key, name);
        }
        for (const line of lines) console.log(line);
        setExitCode(0);
      } finally {
        store.close();
      }
    });
}

/** `port CONTAINER PORT` for a port that is not published. */
export class PortNotPublishedError extends TsboxError {
  override readonly exitCode = 1;
  constructor(readonly port: string, readonly container: string) {
    super(`No public port '${port}' published for ${container}`);
    this.name = "PortNotPublishedError";
  }
}
