/**
 * What `build` does: run the builder with docker's classic output (numbered steps, RUN output,
 * "Using cache", the final id and tags), or only the id with `-q`.
 *
 * @module
 */
import { type BuildEvent, buildImage, type BuildOptions } from "../builder/builder.ts";
import { UsageError } from "../errors.ts";
import { Store } from "../store/mod.ts";
import type { GlobalOptions } from "./globals.ts";

/** The flags of `build`. */
export interface BuildFlags {
  tag?: string[];
  file?: string;
  buildArg?: string[];
  cache?: boolean;
  quiet?: boolean;
  target?: string;
  network?: string;
  platform?: string;
  iidfile?: string;
  label?: string[];
  jobs?: string;
  secret?: string[];
  buildContext?: string[];
  output?: string;
  cacheFrom?: string[];
  cacheTo?: string;
  progress?: string;
  ssh?: string[];
  noCacheFilter?: string[];
  allow?: string[];
  pull?: boolean;
}

/** Parses `--label` values; `KEY` alone is an empty value, as docker takes it. */
export function parseLabels(values: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of values) {
    const i = v.indexOf("=");
    if (i === 0 || v === "") throw new UsageError(`invalid label ${JSON.stringify(v)}: no name`);
    if (i < 0) out[v] = "";
    else out[v.slice(0, i)] = v.slice(i + 1);
  }
  return out;
}

/** Where the context and the Dockerfile come from, with `-` (stdin) resolved. */
async function sources(path: string, file: string | undefined): Promise<{
  context?: string;
  contextArchive?: ReadableStream<Uint8Array>;
  dockerfile?: string;
  dockerfileText?: string;
}> {
  if (path === "-") {
    if (file === "-") {
      throw new UsageError(
        "invalid argument: can't use stdin for both build context and dockerfile",
      );
    }
    const { classifyStdin } = await import("../builder/stdin_context.ts");
    const input = await classifyStdin(Deno.stdin.readable);
    // A Dockerfile alone on stdin is the Dockerfile whatever -f says, as docker takes it.
    return input.kind === "archive"
      ? { contextArchive: input.stream, dockerfile: file }
      : { dockerfileText: input.text };
  }
  if (file === "-") {
    return { context: path, dockerfileText: await new Response(Deno.stdin.readable).text() };
  }
  return { context: path, dockerfile: file };
}

/** Parses `--build-arg` values; `NAME` alone takes the value from tsbox's environment. */
export function parseBuildArgs(values: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of values) {
    const i = v.indexOf("=");
    if (i === 0) throw new UsageError(`invalid --build-arg ${v}`);
    if (i < 0) {
      const env = Deno.env.get(v);
      if (env !== undefined) out[v] = env;
    } else out[v.slice(0, i)] = v.slice(i + 1);
  }
  return out;
}

/** `build`; returns the exit code. */
export async function buildCommand(
  g: GlobalOptions,
  path: string,
  flags: BuildFlags,
): Promise<number> {
  const started = Date.now();
  const labels = parseLabels(flags.label ?? []);
  const buildArgs = parseBuildArgs(flags.buildArg ?? []);
  // As docker: a failed build leaves no id of an earlier one behind.
  if (flags.iidfile) {
    await Deno.remove(flags.iidfile).catch((err) => {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    });
  }
  let jobs: number | undefined;
  if (flags.jobs !== undefined) {
    if (!/^\d+$/.test(flags.jobs)) {
      throw new UsageError(`invalid --jobs ${flags.jobs}: a whole number (0: no limit)`);
    }
    // 0 is no limit, as buildah takes it.
    jobs = Number(flags.jobs) || Number.MAX_SAFE_INTEGER;
  }
  const { loadSecrets, parseSecretFlag } = await import("../builder/secrets.ts");
  const secrets = await loadSecrets((flags.secret ?? []).map(parseSecretFlag));
  const { loadBuildContexts, parseBuildContextFlag } = await import(
    "../builder/build_context.ts"
  );
  const buildContexts = await loadBuildContexts(
    (flags.buildContext ?? []).map(parseBuildContextFlag),
  );
  const { parseOutputFlag } = await import("../builder/export.ts");
  const output = flags.output === undefined ? undefined : parseOutputFlag(flags.output);
  if (output && "dest" in output && output.dest === "-" && Deno.stdout.isTerminal()) {
    // As buildx: an archive is not written to a terminal.
    throw new UsageError(`--output ${flags.output}: refusing to write an archive to a terminal`);
  }
  const { parseCacheFlag } = await import("../builder/cache_io.ts");
  const cacheFrom = (flags.cacheFrom ?? []).map((v) => parseCacheFlag(v, "from"));
  const cacheTo = flags.cacheTo === undefined ? undefined : parseCacheFlag(flags.cacheTo, "to");
  // Several platforms: one build each, recorded as an image index (src/builder/platforms.ts).
  const platforms = flags.platform?.includes(",")
    ? (await import("../builder/platforms.ts")).parsePlatforms(flags.platform)
    : undefined;
  for (const a of flags.allow ?? []) {
    if (a !== "security.insecure") {
      throw new UsageError(
        `--allow ${a}: only security.insecure is known (network.host is the default)`,
      );
    }
  }
  const { loadSshAgents, parseSshFlag } = await import("../builder/ssh.ts");
  const ssh = await loadSshAgents((flags.ssh ?? []).map((v) => parseSshFlag(v)));
  const input = await sources(path, flags.file);
  const store = await Store.open(g.root);
  // A tar or archive sent to stdout owns it: the build's own output then goes to stderr.
  const toStdout = output !== undefined && "dest" in output && output.dest === "-";
  const mode = flags.quiet ? "quiet" : flags.progress ?? "auto";
  const { classicPrinter, plainPrinter, rawJsonPrinter } = await import("./build_progress.ts");
  // auto: BuildKit's live view when stderr is a terminal, else docker's classic output (what
  // scripts and logs read).
  const live = mode === "tty" || (mode === "auto" && Deno.stderr.isTerminal());
  // As docker: BuildKit's progress goes to stderr; tsbox's classic output to stdout.
  const printer = live
    ? (await import("./build_tty.ts")).ttyPrinter(Deno.stderr)
    : mode === "plain"
    ? plainPrinter(Deno.stderr)
    : mode === "rawjson"
    ? rawJsonPrinter(Deno.stderr)
    : classicPrinter(toStdout ? Deno.stderr : Deno.stdout, mode === "quiet");
  const onProgress = (e: BuildEvent) => printer.event(e);
  try {
    const options: Omit<BuildOptions, "platform"> = {
      ...input,
      tags: flags.tag,
      labels,
      buildArgs,
      noCache: flags.cache === false,
      noCacheStages: flags.noCacheFilter,
      pull: flags.pull,
      allowInsecure: flags.allow?.includes("security.insecure"),
      target: flags.target,
      network: flags.network === "none" ? "none" : "host",
      insecure: g.insecureRegistries,
      jobs,
      secrets,
      buildContexts,
      output,
      cacheFrom,
      cacheTo,
      ssh,
      // Plain and rawjson tell steps apart by vertex; the classic output by a line prefix.
      prefixOutput: !live && mode !== "plain" && mode !== "rawjson",
      onProgress,
    };
    if (platforms) {
      const { buildPlatforms } = await import("../builder/platforms.ts");
      const out = live || mode === "plain" || toStdout ? Deno.stderr : Deno.stdout;
      // The classic output (and quiet) tells platforms built at once apart by a prefix on
      // each line; BuildKit's plain, rawjson and live views number steps across one build,
      // so there the platforms are built one after the other.
      const classic = !live && mode !== "plain" && mode !== "rawjson";
      const { prefixedSink } = await import("./build_platform_output.ts");
      const sinks: { flush(): void }[] = [];
      const result = await buildPlatforms(store, platforms, options, {
        concurrent: classic ? jobs ?? navigator.hardwareConcurrency ?? 1 : 1,
        onPlatform: (p) => {
          if (mode !== "quiet" && mode !== "rawjson") {
            out.writeSync(new TextEncoder().encode(`Building for ${p}\n`));
          }
        },
        progressFor: classic
          ? (p) => {
            const sink = prefixedSink(out, p);
            sinks.push(sink);
            const own = classicPrinter(sink, mode === "quiet");
            return (e) => own.event(e);
          }
          : undefined,
      }).finally(() => sinks.forEach((s) => s.flush()));
      const ids = result.images.map((i) => `${i.platform} ${i.image.id}`);
      if (mode !== "quiet" && mode !== "rawjson") {
        const list = result.images.map((i) => i.platform).join(", ");
        for (const t of result.tags) {
          const name = (await import("../../registry/reference.ts")).parseReference(t).familiar();
          out.writeSync(new TextEncoder().encode(`Successfully tagged ${name} (${list})\n`));
        }
      }
      if (flags.iidfile) {
        await Deno.writeTextFile(flags.iidfile, result.images[0].image.id);
      }
      if (mode === "quiet") { for (const line of ids) console.log(line); }
      printer.finished(Date.now() - started);
      return 0;
    }
    const result = await buildImage(store, { ...options, platform: flags.platform });
    if (result.image) {
      if (flags.iidfile) await Deno.writeTextFile(flags.iidfile, result.image.id);
      if (mode === "quiet") console.log(result.image.id);
    }
    printer.finished(Date.now() - started);
    return 0;
  } catch (err) {
    printer.failed(err as Error);
    throw err;
  } finally {
    store.close();
  }
}
