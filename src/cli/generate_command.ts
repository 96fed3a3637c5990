/**
 * `tsbox generate systemd [--name] [--new] [--restart-policy P] [--time S] [--files]
 * CONTAINER`: a systemd unit for a container, as podman's (container/systemd_unit.ts).
 *
 * @module
 */
import { type Command, InvalidArgumentError } from "commander";
import { globalsOf } from "./globals.ts";

function seconds(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n)) {
    throw new InvalidArgumentError(`invalid argument "${value}": not a number of seconds`);
  }
  return n;
}

/** The tsbox that runs now, as a unit must call it: the executable, or deno with main.ts. */
function tsboxCommand(): { argv: string[]; env: Record<string, string> } {
  const compiled = !import.meta.url.startsWith("file:") ||
    import.meta.url.includes("/deno-compile-");
  if (compiled) return { argv: [Deno.execPath()], env: {} };
  const main = new URL("../../main.ts", import.meta.url).pathname;
  return {
    argv: [Deno.execPath(), "run", "-A", "--quiet", main],
    env: { DENO_NO_UPDATE_CHECK: "1" },
  };
}

/** Defines `generate systemd` on the program. */
export function defineGenerateCommand(program: Command): void {
  const generate = program.command("generate").description("Generate structured data");
  generate.command("systemd")
    .description("Generate a systemd unit file for a container")
    .argument("<container>", "name or id")
    .option("--name", "use the container's name instead of its id")
    .option("--new", "create the container at start and remove it at stop")
    .option("--restart-policy <policy>", "systemd Restart= of the unit", "on-failure")
    .option("-t, --time <seconds>", "stop timeout of the container", seconds, 10)
    .option("--files", "write the unit to a file in the current directory and print its path")
    .action(async (ref, opts, cmd) => {
      const { Store } = await import("../store/mod.ts");
      const { requireContainer } = await import("../container/state.ts");
      const { supervisorPidFile } = await import("../container/pidfile.ts");
      const { systemdUnit } = await import("../container/systemd_unit.ts");
      const { VERSION } = await import("../version.ts");
      const g = globalsOf(cmd);
      const store = await Store.open(g.root);
      try {
        const container = requireContainer(store, ref);
        const root = Deno.realPathSync(g.root);
        const tsbox = tsboxCommand();
        const runroot = Deno.env.get("TSBOX_RUNROOT");
        const { fileName, text } = systemdUnit({
          container,
          useName: opts.name,
          recreate: opts.new,
          restartPolicy: opts.restartPolicy,
          stopTimeout: opts.time,
          tsbox: tsbox.argv,
          env: { ...tsbox.env, TSBOX_ROOT: root, ...(runroot ? { TSBOX_RUNROOT: runroot } : {}) },
          pidFile: supervisorPidFile(root, container.name),
          version: VERSION,
        });
        if (opts.files) {
          const path = `${Deno.cwd()}/${fileName}`;
          await Deno.writeTextFile(path, text);
          console.log(path);
        } else {
          console.log(text);
        }
      } finally {
        store.close();
      }
    });
  generate.commands.forEach((c) => c.exitOverride());
  generate.exitOverride();
}
