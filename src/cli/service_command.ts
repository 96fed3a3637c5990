/**
 * `tsbox system service [--socket PATH] [--timeout S] [-H tcp://HOST:PORT [--tlsverify ...]]`:
 * serves the Docker Engine API (src/api/) on a unix socket, and on TCP when asked (loopback
 * only unless client certificates are required), for the docker client, docker-compose and
 * testcontainers.
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
    .description("Serve the Docker Engine API (1.41) on a unix socket (and TCP when asked)")
    .option("--socket <path>", "unix socket to listen on (default /run/tsbox/tsbox.sock)")
    .option("--group <group>", "group owning the socket (default root): its members may use it")
    .option(
      "-H, --host <uri>",
      "also serve on tcp://HOST:PORT (loopback only without --tlsverify); unix:///PATH is --socket",
      (v: string, prev: string[] = []) => [...prev, v],
    )
    .option("--tlsverify", "require client certificates signed by --tlscacert on TCP (mutual TLS)")
    .option("--tlscacert <file>", "CA (PEM) that signs the client certificates admitted")
    .option("--tlscert <file>", "the service's TLS certificate (PEM)")
    .option("--tlskey <file>", "the service's TLS private key (PEM)")
    .option(
      "-t, --timeout <seconds>",
      "end after this many idle seconds; 0 runs until stopped",
      seconds,
      5,
    )
    .exitOverride()
    .action(async (opts, self) => {
      const { serveApi, defaultSocket } = await import("../api/server.ts");
      const { parseHosts, tcpAddresses, readTlsFiles, ListenAddressError } = await import(
        "../api/tcp_address.ts"
      );
      const hosts = parseHosts(opts.host ?? []);
      if (hosts.unix && opts.socket && hosts.unix !== opts.socket) {
        throw new ListenAddressError(`-H unix://${hosts.unix} and --socket ${opts.socket} differ`);
      }
      if (!opts.tlsverify && (opts.tlscacert || opts.tlscert || opts.tlskey)) {
        // TLS without client certificates would let anyone in: tsbox has no such mode.
        throw new ListenAddressError(
          "--tlscacert, --tlscert and --tlskey need --tlsverify (tsbox serves TLS only with client certificates)",
        );
      }
      const tls = opts.tlsverify ? await readTlsFiles(opts) : undefined;
      if (tls && hosts.tcp.length === 0) {
        throw new ListenAddressError("--tlsverify needs a TCP address (-H tcp://HOST:PORT)");
      }
      const tcp = tcpAddresses(hosts, tls);
      const abort = new AbortController();
      const end = () => abort.abort();
      Deno.addSignalListener("SIGINT", end);
      Deno.addSignalListener("SIGTERM", end);
      try {
        await serveApi(globalsOf(self), {
          socket: opts.socket ?? hosts.unix ?? defaultSocket(),
          tcp,
          timeout: opts.timeout,
          group: opts.group,
          signal: abort.signal,
          onListening: (where) => console.error(`tsbox: serving the Docker API on ${where}`),
          log: (line) => console.error(line),
        });
      } finally {
        Deno.removeSignalListener("SIGINT", end);
        Deno.removeSignalListener("SIGTERM", end);
      }
    });
}
