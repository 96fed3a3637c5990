/**
 * What the hot commands do once parsed, one function each, called both by commander's
 * declarations and by the fast path (hot.ts), so the two cannot do different things. Each loads
 * its work when it runs, by a computed name (src/lazy.ts), so that a short command reads only
 * the modules it runs; this module itself loads nothing but types.
 *
 * @module
 */
import type { RunFlags } from "../container/flags.ts";
import { lazyImport } from "../lazy.ts";
import type { psCommand } from "./ps_action.ts";
import type { ExecFlags } from "./exec_actions.ts";
import { setExitCode } from "./exit.ts";
import type { GlobalOptions } from "./globals.ts";

/** A hot command's work: the globals, the arguments as commander groups them, the options. */
export type HotAction = (
  g: GlobalOptions,
  args: unknown[],
  opts: Record<string, unknown>,
) => Promise<void>;

/** commander's `opts()` of one command, in the shape its declarations give them. */
const as = <T>(opts: Record<string, unknown>) => opts as T;

/** Loads module `path` of this directory when called (see src/lazy.ts). */
const load = <T>(path: string) => () => lazyImport<T>(new URL(path, import.meta.url));
const containers = load<typeof import("./container_actions.ts")>("./container_actions.ts");
const psAction = load<typeof import("./ps_action.ts")>("./ps_action.ts");
const inspectAction = load<typeof import("./inspect_action.ts")>("./inspect_action.ts");
const attachActions = load<typeof import("./attach_actions.ts")>("./attach_actions.ts");
const execActions = load<typeof import("./exec_actions.ts")>("./exec_actions.ts");
const imageActions = load<typeof import("./image_actions.ts")>("./image_actions.ts");
const runModule = load<typeof import("../container/run.ts")>("../container/run.ts");
const spawnModule = load<typeof import("../container/supervisor_spawn.ts")>(
  "../container/supervisor_spawn.ts",
);

/** The hot commands' work, by command name. */
export const HOT_ACTIONS = {
  ps: async (g, _args, opts) =>
    await (await psAction()).psCommand(g, as<Parameters<typeof psCommand>[1]>(opts)),
  inspect: async (g, [names], opts) => {
    const { inspectCommand } = await inspectAction();
    const { format } = as<{ format?: string }>(opts);
    setExitCode(await inspectCommand(g, names as string[], undefined, format));
  },
  start: async (g, [names], parsed) => {
    const opts = as<{ attach?: boolean; interactive?: boolean }>(parsed);
    setExitCode(
      opts.attach
        // Through the attach socket of a detached supervisor, so the user can detach.
        ? await (await attachActions()).startAttachCommand(
          g,
          names as string[],
          opts,
        )
        : await (await containers()).startCommand(g, names as string[], opts),
    );
  },
  stop: async (g, [names], opts) =>
    setExitCode(
      await (await containers()).stopCommand(
        g,
        names as string[],
        as<{ timeout?: string; time?: string; signal?: string }>(opts),
      ),
    ),
  pull: async (g, [name], opts) =>
    await (await imageActions()).pullCommand(
      g,
      name as string,
      as<{ quiet?: boolean; platform?: string }>(opts),
    ),
  rm: async (g, [names], opts) =>
    setExitCode(
      await (await containers()).rmCommand(
        g,
        names as string[],
        as<{ force?: boolean; volumes?: boolean }>(opts),
      ),
    ),
  exec: async (g, [container, command], flags) => {
    const { execCommand } = await execActions();
    setExitCode(
      await execCommand(g, container as string, command as string[], as<ExecFlags>(flags)),
    );
  },
  run: async (g, [image, command], flags) => {
    // `run -d`: the supervisor starts up while this process loads and creates the container.
    const early = as<RunFlags>(flags).detach
      ? new (await spawnModule()).PendingSupervisor(g.root)
      : undefined;
    const { runContainer } = await runModule();
    const result = await runContainer(
      image as string,
      command as string[],
      as<RunFlags>(flags),
      { ...g, notice: (line) => console.error(line), printId: (id) => console.log(id) },
      early,
    );
    if (result.exitCode === undefined) console.log(result.id);
    else setExitCode(result.exitCode);
  },
} satisfies Record<string, HotAction>;
