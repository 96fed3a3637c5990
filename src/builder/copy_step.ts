/**
 * COPY and ADD: the step's sources and destination, its flags (`--from`, `--chown`, `--chmod`,
 * `--exclude`, `--parents`, ADD's `--checksum` and `--keep-git-dir`), heredocs, ADD's URLs, git
 * repositories and archives, written into an overlay of the stage's layers whose upper directory
 * is the step's layer.
 *
 * @module
 */
import { posix } from "node:path";
import { resolveInRoot } from "../runtime/rootfs.ts";
import { resolveUser } from "../runtime/user.ts";
import { AddUrlError, type Download, isUrl, placeDownload } from "./add_url.ts";
import { AddGitError, type GitCheckout, isGitUrl } from "./add_git.ts";
import type { SourceRoot } from "./context.ts";
import { writeInto } from "./copy.ts";
import { copySources, excludingRoot } from "./copy_flags.ts";
import type { Instruction } from "./dockerfile.ts";
import { execForm } from "./exec_form.ts";
import type { BuiltLayer } from "./layer.ts";
import { type BuildState, configOf, nextState } from "./state.ts";
import { expandOnly, type Lookup, processWord, processWords } from "./words.ts";

/** What a COPY/ADD step needs of the build it belongs to. */
export interface CopyStepContext {
  /** The build context (sources without `--from`). */
  readonly context: SourceRoot;
  /** The Dockerfile's escape character. */
  readonly escape: string;
  /** An ADD URL's download, fetched once per build and checked against `checksum`. */
  download(url: string, checksum: string | undefined): Promise<Download>;
  /** Mounts `state` with a fresh upper dir, runs `fn` on it, and commits the change set. */
  inRootfs(
    state: BuildState,
    alwaysLayer: boolean,
    fn: (rootfs: string, upper: string) => Promise<void>,
  ): Promise<BuiltLayer | undefined>;
  /** What `--from` names: a `--build-context` directory, or a stage (awaited) or image. */
  fromSource(name: string): Promise<FromSource>;
  /** An ADD git source's checkout, fetched once per build. */
  git(source: string, keepGitDir: boolean): Promise<GitCheckout>;
  /** Mounts a state's filesystem for reading (its upper dir is thrown away). */
  withReadOnly(state: BuildState, fn: (rootfs: string) => Promise<void>): Promise<void>;
  /** Throws the instruction's error (names the file and line). */
  fail(ins: Instruction, detail: string): never;
}

/** What a `--from` names: a state (a stage or an image), or a directory (a named context). */
export type FromSource =
  | { readonly state: BuildState; readonly root?: undefined }
  | { readonly state?: undefined; readonly root: SourceRoot };

/** A git step's result, its failure named by the instruction's line. */
export function gitStep<T>(
  ctx: Pick<CopyStepContext, "fail">,
  ins: Instruction,
  p: Promise<T>,
): Promise<T> {
  return p.catch((err) => {
    if (err instanceof AddGitError) ctx.fail(ins, err.message);
    throw err;
  });
}

/** A COPY/ADD's sources and its destination, made absolute against the WORKDIR. */
export function copyArgs(
  ctx: Pick<CopyStepContext, "escape" | "fail">,
  state: BuildState,
  ins: Instruction,
  lookup: Lookup,
): { sources: string[]; dest: string } {
  const json = execForm(ins.args);
  const words = json
    ? json.map((w) => expandOnly(w, lookup))
    : processWords(ins.args, lookup, { escape: ctx.escape });
  const inline = words.filter((w) => /^<<-?["']?[A-Za-z_]/.test(w));
  const rest = words.filter((w) => !inline.includes(w));
  if (rest.length < 1 || (rest.length < 2 && inline.length === 0)) {
    ctx.fail(ins, `${ins.keyword} requires at least two arguments`);
  }
  const dest = rest.pop()!;
  const workdir = configOf(state).config?.WorkingDir || "/";
  const abs = dest.startsWith("/")
    ? dest
    : posix.join(workdir, dest) + (dest.endsWith("/") ? "/" : "");
  return { sources: rest, dest: abs };
}

/**
 * A COPY/ADD's sources parted into URLs and git repositories (ADD only) and local paths;
 * `--checksum` only with URLs, as BuildKit.
 */
export function splitUrls(
  ctx: Pick<CopyStepContext, "fail">,
  ins: Instruction,
  sources: readonly string[],
): { urls: string[]; local: string[]; gits: string[] } {
  // Git repositories only for ADD: for COPY such a name stays a (missing) context path.
  const gits = ins.keyword === "ADD" ? sources.filter(isGitUrl) : [];
  const urls = sources.filter((s) => isUrl(s) && !gits.includes(s));
  const local = sources.filter((s) => !isUrl(s) && !gits.includes(s));
  if (urls.length > 0 && ins.keyword === "COPY") ctx.fail(ins, "source can't be a URL for COPY");
  if (ins.flags.some((f) => f.name === "checksum") && (local.length > 0 || urls.length === 0)) {
    ctx.fail(ins, "--checksum can only be used with HTTP(S) sources");
  }
  return { urls, local, gits };
}

/** An ADD URL's download (checked against `--checksum`). */
export function download(
  ctx: Pick<CopyStepContext, "download" | "fail">,
  ins: Instruction,
  url: string,
  lookup: Lookup,
): Promise<Download> {
  const flag = ins.flags.find((f) => f.name === "checksum")?.value;
  const checksum = flag === undefined ? undefined : processWord(flag, lookup);
  return ctx.download(url, checksum).catch((err) => {
    if (err instanceof AddUrlError) ctx.fail(ins, err.message);
    throw err;
  });
}

/** `--exclude` patterns of a COPY/ADD, expanded. */
export function copyExcludes(ins: Instruction, lookup: Lookup): string[] {
  return ins.flags.filter((f) => f.name === "exclude").map((f) => processWord(f.value, lookup));
}

/** Reads the rootfs's passwd/group to resolve `--chown`; gid defaults to the uid. */
function owner(rootfs: string, spec: string): { uid: number; gid: number } {
  const read = (p: string) => {
    try {
      return Deno.readTextFileSync(resolveInRoot(rootfs, p));
    } catch {
      return "";
    }
  };
  const u = resolveUser(spec, read("/etc/passwd"), read("/etc/group"));
  return { uid: u.uid, gid: spec.includes(":") ? u.gid : u.uid };
}

/** Runs a COPY or ADD step on `state`; returns the state with its layer. */
export async function copyStep(
  ctx: CopyStepContext,
  state: BuildState,
  ins: Instruction,
  lookup: Lookup,
  created: string,
): Promise<BuildState> {
  const { sources, dest } = copyArgs(ctx, state, ins, lookup);
  const flag = (n: string) => {
    const v = ins.flags.find((f) => f.name === n)?.value;
    return v === undefined ? undefined : processWord(v, lookup);
  };
  const chown = flag("chown");
  const chmod = flag("chmod");
  if (chmod !== undefined && !/^[0-7]{3,4}$/.test(chmod)) {
    ctx.fail(ins, `invalid --chmod=${chmod}: only octal modes are supported`);
  }
  const from = flag("from");
  const excludes = copyExcludes(ins, lookup);
  const layer = await ctx.inRootfs(state, true, async (rootfs, upper) => {
    const opts = {
      owner: chown ? owner(rootfs, chown) : undefined,
      mode: chmod ? parseInt(chmod, 8) : undefined,
      extract: ins.keyword === "ADD" && !from,
      upper,
    };
    for (const h of ins.heredocs) {
      const body = h.expand ? expandOnly(h.body, lookup) : h.body;
      const target = dest.endsWith("/") || sources.length + ins.heredocs.length > 1
        ? posix.join(dest, h.name)
        : dest;
      await writeInto(rootfs, target, body, opts);
    }
    if (sources.length === 0) return;
    const { urls, local, gits } = splitUrls(ctx, ins, sources);
    const destIsDir = dest.endsWith("/") || sources.length + ins.heredocs.length > 1;
    const keepGitDir = ins.flags.some((f) => f.name === "keep-git-dir" && f.value !== "false");
    for (const g of gits) {
      // The repository's files into dest, as a directory (BuildKit's ADD of a git source).
      const co = await gitStep(ctx, ins, ctx.git(g, keepGitDir));
      const root = excludingRoot({ dir: co.root }, ["."], excludes);
      await copySources(rootfs, root, ["."], dest.endsWith("/") ? dest : `${dest}/`, opts, false);
    }
    for (const url of urls) {
      await placeDownload(rootfs, await download(ctx, ins, url, lookup), dest, destIsDir, opts);
    }
    if (local.length === 0) return;
    const parents = ins.flags.some((f) => f.name === "parents" && f.value !== "false");
    const copy = (root: SourceRoot) =>
      copySources(rootfs, excludingRoot(root, local, excludes), local, dest, opts, parents);
    if (from !== undefined) {
      const src = await ctx.fromSource(from);
      if (src.root) await copy(src.root);
      else await ctx.withReadOnly(src.state, (srcRoot) => copy({ dir: srcRoot }));
    } else await copy(ctx.context);
  });
  const shown = `${ins.keyword} ${
    [
      ...ins.flags.filter((f) => f.name !== "from").map((f) => `--${f.name}=${f.value}`),
      ...sources,
      dest,
    ].join(" ")
  } # buildkit`;
  return nextState(state, { createdBy: shown, created, layer });
}
