/**
 * Dockerfile parsing on top of dockerfile-ast (line continuations, comments, the `# escape=`
 * directive, flags, heredoc ranges), checked the way docker's parser checks: unknown
 * instructions, instructions before the first FROM, missing arguments, unknown flags and
 * unterminated heredocs fail with the file, line and instruction named.
 *
 * @module
 */
import { DockerfileParser } from "dockerfile-ast";
import { TsboxError } from "../errors.ts";

/** A Dockerfile that cannot be parsed; the message names file, line and instruction. */
export class DockerfileSyntaxError extends TsboxError {
  constructor(
    readonly file: string,
    readonly line: number,
    readonly instruction: string,
    detail: string,
  ) {
    super(`${file}:${line}: ${instruction}: ${detail}`);
    this.name = "DockerfileSyntaxError";
  }
}

/** One heredoc of an instruction (`<<EOF ... EOF`). */
export interface Heredoc {
  readonly name: string;
  /** The body (leading tabs stripped for `<<-`), ending with a newline. */
  readonly body: string;
  /** False when the name was quoted: the body is taken literally. */
  readonly expand: boolean;
}

/** One instruction as written. */
export interface Instruction {
  /** Upper-case keyword: `RUN`, `COPY`, ... */
  readonly keyword: string;
  /** 1-based line of the keyword. */
  readonly line: number;
  /** Argument text without flags, continuations joined (first line only when heredocs follow). */
  readonly args: string;
  /** `--name=value` flags, in order; a flag without a value has "". */
  readonly flags: readonly { name: string; value: string }[];
  /** Heredocs that follow the instruction line. */
  readonly heredocs: readonly Heredoc[];
  /** The instruction as docker prints it in `Step N/M : ...`. */
  readonly text: string;
}

/** A build stage: its FROM and what follows until the next FROM. */
export interface Stage {
  /** 0-based position. */
  readonly index: number;
  /** `AS name`, lower-cased, if any. */
  readonly name?: string;
  readonly from: Instruction;
  readonly instructions: readonly Instruction[];
}

/** A parsed Dockerfile. */
export interface Dockerfile {
  /** The escape character (`\` or from `# escape=`). */
  readonly escape: string;
  /** ARG instructions before the first FROM. */
  readonly globalArgs: readonly Instruction[];
  readonly stages: readonly Stage[];
}

const FLAGS: Record<string, readonly string[]> = {
  FROM: ["platform"],
  RUN: ["network", "mount", "security"],
  COPY: ["from", "chown", "chmod", "link", "parents", "exclude"],
  ADD: ["chown", "chmod", "link", "checksum", "keep-git-dir", "exclude"],
  HEALTHCHECK: ["interval", "timeout", "start-period", "start-interval", "retries"],
};

const NEEDS_ARGS = new Set([
  "FROM",
  "RUN",
  "COPY",
  "ADD",
  "WORKDIR",
  "ENV",
  "ARG",
  "EXPOSE",
  "USER",
  "LABEL",
  "VOLUME",
  "STOPSIGNAL",
  "SHELL",
  "HEALTHCHECK",
  "ENTRYPOINT",
  "CMD",
  "ONBUILD",
  "MAINTAINER",
]);

const KNOWN = new Set([...NEEDS_ARGS]);

const HEREDOC_MARK = /<<(-?)(["']?)([A-Za-z_][A-Za-z0-9_]*)\2/g;

/**
 * The frontends `# syntax=` may name: BuildKit's Dockerfile frontend, which tsbox's own parser
 * stands in for (any version, tag or digest). Another frontend image would run code of its own
 * to read the file, which tsbox does not do: it is refused by name rather than misread.
 */
const BUILT_IN_FRONTEND = /^(docker\.io\/)?docker\/dockerfile(-upstream)?([:@].*)?$/i;

/**
 * Checks the parser directives at the top of the file (`# syntax=`, `# check=`, `# escape=`;
 * they end at the first line that is not one).
 */
function checkDirectives(text: string, file: string): void {
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const m = /^\s*#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.*?)\s*$/.exec(lines[i]);
    if (!m) return;
    if (m[1].toLowerCase() === "syntax" && !BUILT_IN_FRONTEND.test(m[2])) {
      throw new DockerfileSyntaxError(
        file,
        i + 1,
        "syntax",
        `the frontend ${m[2]} is not supported: tsbox builds with its built-in Dockerfile ` +
          `frontend only (# syntax=docker/dockerfile:1)`,
      );
    }
  }
}

/** Parses Dockerfile `text`; `file` names it in errors. */
export function parseDockerfile(text: string, file = "Dockerfile"): Dockerfile {
  checkDirectives(text, file);
  const df = DockerfileParser.parse(text);
  const escape = df.getEscapeCharacter();
  const globalArgs: Instruction[] = [];
  const stages: { index: number; name?: string; from: Instruction; instructions: Instruction[] }[] =
    [];
  for (const ins of df.getInstructions()) {
    const keyword = ins.getKeyword().toUpperCase();
    const line = ins.getRange().start.line + 1;
    const fail = (detail: string): never => {
      throw new DockerfileSyntaxError(file, line, keyword, detail);
    };
    if (!KNOWN.has(keyword)) fail(`unknown instruction: ${ins.getKeyword()}`);
    const flagNodes = (ins as unknown as {
      getFlags?: () => { getName(): string; getValue(): string | null }[];
    }).getFlags?.() ?? [];
    const flags = flagNodes.map((f) => ({ name: f.getName(), value: f.getValue() ?? "" }));
    for (const f of flags) {
      if (!(FLAGS[keyword] ?? []).includes(f.name)) fail(`unknown flag: --${f.name}`);
    }
    const content = joinContinuations(ins.getRawArgumentsContent() ?? "", escape);
    const { args, heredocs } = splitHeredocs(content, keyword, fail);
    if (NEEDS_ARGS.has(keyword) && args.trim() === "" && heredocs.length === 0) {
      fail(`${keyword} requires at least one argument`);
    }
    const shownFlags = flags.map((f) => f.value ? `--${f.name}=${f.value}` : `--${f.name}`);
    const instruction: Instruction = {
      keyword,
      line,
      args,
      flags,
      heredocs,
      text: [keyword, ...shownFlags, args.trim()].join(" "),
    };
    if (keyword === "FROM") {
      const words = args.trim().split(/\s+/);
      let name: string | undefined;
      if (words.length === 3 && words[1].toUpperCase() === "AS") {
        name = words[2].toLowerCase();
        if (!/^[a-z][a-z0-9-_.]*$/.test(name)) fail(`invalid name for build stage: "${words[2]}"`);
        if (stages.some((s) => s.name === name)) fail(`duplicate stage name "${words[2]}"`);
      } else if (words.length !== 1) fail(`expected "FROM <image> [AS <name>]"`);
      stages.push({ index: stages.length, name, from: instruction, instructions: [] });
    } else if (stages.length === 0) {
      if (keyword !== "ARG") fail("no build stage in current context (instruction before FROM)");
      globalArgs.push(instruction);
    } else {
      stages.at(-1)!.instructions.push(instruction);
    }
  }
  if (stages.length === 0) {
    throw new DockerfileSyntaxError(file, 1, "FROM", "the Dockerfile has no FROM instruction");
  }
  return { escape, globalArgs, stages };
}

/**
 * Joins continuation lines as docker does: the escape character at a line's end and the newline
 * go, comment and empty lines inside the continuation are dropped. Lines after the instruction
 * line ends (heredoc bodies) are kept as they are.
 */
function joinContinuations(raw: string, escape: string): string {
  const lines = raw.split("\n");
  const continued = new RegExp(`${escape.replace(/[\\^$.*+?()[\]{}|]/g, "\\$&")}[ \t]*$`);
  let first = "";
  let i = 0;
  for (; i < lines.length; i++) {
    const line = lines[i];
    if (i > 0 && (/^\s*#/.test(line) || line.trim() === "")) continue;
    if (continued.test(line)) {
      first += line.replace(continued, "");
      continue;
    }
    first += line;
    i++;
    break;
  }
  return [first, ...lines.slice(i)].join("\n");
}

/** Separates the instruction line from the heredoc bodies that follow it. */
function splitHeredocs(
  content: string,
  keyword: string,
  fail: (detail: string) => never,
): { args: string; heredocs: Heredoc[] } {
  if (!["RUN", "COPY", "ADD"].includes(keyword) || !content.includes("<<")) {
    return { args: content, heredocs: [] };
  }
  const lines = content.split("\n");
  const first = lines[0];
  const marks = [...first.matchAll(HEREDOC_MARK)];
  if (marks.length === 0) return { args: content, heredocs: [] };
  const heredocs: Heredoc[] = [];
  let at = 1;
  for (const m of marks) {
    const strip = m[1] === "-";
    const name = m[3];
    const body: string[] = [];
    let closed = false;
    for (; at < lines.length; at++) {
      const l = strip ? lines[at].replace(/^\t+/, "") : lines[at];
      if (l === name) {
        closed = true;
        at++;
        break;
      }
      body.push(l);
    }
    if (!closed) fail(`unterminated heredoc <<${name}`);
    heredocs.push({ name, body: body.map((l) => `${l}\n`).join(""), expand: m[2] === "" });
  }
  return { args: first, heredocs };
}
