/**
 * `ADD` of a git repository (`ADD git://host/repo.git#ref:subdir /dst`, as BuildKit takes it),
 * through the host's `git`: the ref is resolved to a commit with `git ls-remote` first (the
 * commit is what the build cache keys, so an unchanged remote is a cache hit without a fetch),
 * and fetched (shallow when the server allows) into the build's own directory only when a step
 * needs the files. The `.git` directory is left out unless `ADD --keep-git-dir=true`.
 *
 * Only network transports are taken (git, ssh, http, https): `GIT_ALLOW_PROTOCOL` keeps a
 * Dockerfile from reaching `file://` or `ext::` helpers through git, and git never prompts.
 *
 * @module
 */
import { join } from "node:path";
import { TsboxError } from "../errors.ts";
import { resolveInRoot } from "../runtime/rootfs.ts";

/** A git source that cannot be resolved or fetched (the builder adds the file and line). */
export class AddGitError extends TsboxError {
  constructor(message: string) {
    super(message);
    this.name = "AddGitError";
  }
}

/** Whether an ADD source names a git repository rather than a URL or a context path. */
export function isGitUrl(source: string): boolean {
  return /^git:\/\//i.test(source) || /^ssh:\/\//i.test(source) ||
    /^git@[^:/]+:/.test(source) || /^https?:\/\/[^#]+\.git\/?(#.*)?$/i.test(source);
}

/** A git source parted: the remote, and from the fragment the ref and a subdirectory. */
export interface GitSource {
  readonly remote: string;
  readonly ref?: string;
  readonly subdir?: string;
}

/** Parses `REMOTE[#REF[:SUBDIR]]`. */
export function parseGitUrl(source: string): GitSource {
  const hash = source.indexOf("#");
  if (hash < 0) return { remote: source };
  const remote = source.slice(0, hash);
  const fragment = source.slice(hash + 1);
  const colon = fragment.indexOf(":");
  const ref = (colon < 0 ? fragment : fragment.slice(0, colon)) || undefined;
  const subdir = colon < 0 ? undefined : fragment.slice(colon + 1) || undefined;
  if (ref !== undefined && (ref.startsWith("-") || /[\s\\]|\.\./.test(ref))) {
    throw new AddGitError(`invalid git ref "${ref}" in ${source}`);
  }
  return { remote, ref, subdir };
}

const GIT_ENV = {
  GIT_TERMINAL_PROMPT: "0",
  GIT_ALLOW_PROTOCOL: "git:http:https:ssh",
  GIT_CONFIG_NOSYSTEM: "1",
  GIT_ASKPASS: "/bin/false",
};

async function git(args: string[], cwd?: string): Promise<string> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command("git", {
      args,
      cwd,
      env: GIT_ENV,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new AddGitError("ADD of a git repository needs git on this host (it is not in PATH)");
    }
    throw err;
  }
  if (!out.success) {
    const detail = new TextDecoder().decode(out.stderr).trim().split("\n").slice(-3).join("; ");
    throw new AddGitError(`git ${args[0]} failed: ${detail}`);
  }
  return new TextDecoder().decode(out.stdout);
}

/** The commit `ref` (default HEAD) names on the remote. */
export async function resolveGitRef(src: GitSource): Promise<string> {
  const ref = src.ref ?? "HEAD";
  if (/^[0-9a-f]{40}$/.test(ref)) return ref;
  // The peeled line of an annotated tag matches only a pattern of its own.
  const lines = (await git(["ls-remote", "--", src.remote, ref, `${ref}^{}`])).trim().split("\n")
    .filter(Boolean).map((l) => l.split("\t"));
  // An annotated tag's commit is its peeled line (`refs/tags/v1^{}`).
  const exact = (name: string) =>
    lines.find(([, r]) => r === `${name}^{}`) ?? lines.find(([, r]) => r === name);
  const hit = ref === "HEAD"
    ? exact("HEAD")
    : exact(`refs/heads/${ref}`) ?? exact(`refs/tags/${ref}`) ?? exact(ref);
  if (!hit) throw new AddGitError(`git ref "${ref}" not found in ${src.remote}`);
  return hit[0];
}

/** A fetched checkout: the directory a step copies from, and its commit. */
export interface GitCheckout {
  /** The checkout, or its subdirectory when the fragment named one. */
  readonly root: string;
  readonly commit: string;
}

/** Fetches `commit` of the remote into the new directory `dir`. */
async function checkout(
  src: GitSource,
  commit: string,
  dir: string,
  keepGitDir: boolean,
): Promise<GitCheckout> {
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  await git(["init", "-q", dir]);
  const want = src.ref ?? "HEAD";
  try {
    await git(["fetch", "-q", "--depth", "1", "--no-tags", "--", src.remote, want], dir);
  } catch {
    // A server that refuses shallow fetches of this name: the whole history.
    await git(["fetch", "-q", "--no-tags", "--", src.remote, want], dir);
  }
  await git(["-c", "advice.detachedHead=false", "checkout", "-q", "FETCH_HEAD"], dir);
  const head = (await git(["rev-parse", "HEAD"], dir)).trim();
  if (head !== commit) {
    throw new AddGitError(`${src.remote} moved while it was fetched (${commit} -> ${head})`);
  }
  if (!keepGitDir) await Deno.remove(join(dir, ".git"), { recursive: true });
  let root = dir;
  if (src.subdir) {
    root = resolveInRoot(dir, src.subdir);
    const info = await Deno.stat(root).catch(() => undefined);
    if (!info?.isDirectory) {
      throw new AddGitError(`${src.subdir} is not a directory in ${src.remote}#${want}`);
    }
  }
  return { root, commit };
}

/** The git sources of one build: each ref resolved once and each checkout fetched once. */
export class GitCheckouts {
  readonly #commits = new Map<string, Promise<string>>();
  readonly #checkouts = new Map<string, Promise<GitCheckout>>();

  constructor(private readonly dir: () => string) {}

  /** The commit `source` names (for the cache key; no fetch). */
  commit(source: string): Promise<string> {
    let c = this.#commits.get(source);
    if (!c) {
      c = Promise.resolve().then(() => resolveGitRef(parseGitUrl(source)));
      this.#commits.set(source, c);
      c.catch(() => {});
    }
    return c;
  }

  /** The checkout of `source`, fetched on first use. */
  get(source: string, keepGitDir: boolean): Promise<GitCheckout> {
    const key = `${source}\n${keepGitDir}`;
    let co = this.#checkouts.get(key);
    if (!co) {
      co = this.commit(source).then((commit) =>
        checkout(parseGitUrl(source), commit, this.dir(), keepGitDir)
      );
      this.#checkouts.set(key, co);
      co.catch(() => {});
    }
    return co;
  }
}
