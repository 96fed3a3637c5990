/**
 * The parser of Go's text/template, the subset docker's `--format` users write: text and
 * `{{actions}}` with trim markers and comments, pipelines, variables, if/else if/else, with,
 * range (with break and continue), parenthesized pipelines and field chains. Positions are
 * offsets into the template, as Go reports them in its messages.
 *
 * @module
 */

/** A template that does not parse; the message reads like Go's (`template: :1: ...`). */
export class TemplateParseError extends Error {
  constructor(readonly detail: string, readonly line: number) {
    super(`template: :${line}: ${detail}`);
    this.name = "TemplateParseError";
  }
}

/** An operand of a command. `text` is how Go prints the node in `executing ... at <...>`. */
export type Arg =
  | { kind: "dot"; pos: number; text: string }
  | { kind: "field"; pos: number; text: string; names: string[] }
  | { kind: "var"; pos: number; text: string; name: string; names: string[] }
  | { kind: "ident"; pos: number; text: string; name: string }
  | { kind: "pipe"; pos: number; text: string; pipe: Pipe; names: string[] }
  | { kind: "literal"; pos: number; text: string; value: string | number | boolean | null };

/** A command: a function or method with its arguments, or a single operand. */
export interface Cmd {
  pos: number;
  text: string;
  args: Arg[];
}

/** Commands joined by `|`, optionally declaring (`:=`) or assigning (`=`) variables. */
export interface Pipe {
  pos: number;
  text: string;
  decl: string[];
  assign: boolean;
  cmds: Cmd[];
}

/** `{{if}}`, `{{with}}` or `{{range}}` with its body and optional else branch. */
export interface ControlNode {
  kind: "if" | "with" | "range";
  pos: number;
  pipe: Pipe;
  list: Node[];
  elseList?: Node[];
}

/** A node of the parsed template. */
export type Node =
  | { kind: "text"; text: string }
  | { kind: "action"; pos: number; pipe: Pipe }
  | ControlNode
  | { kind: "break" | "continue"; pos: number };

type TokKind =
  | "field"
  | "var"
  | "ident"
  | "string"
  | "number"
  | "char"
  | "dot"
  | "pipe"
  | "lparen"
  | "rparen"
  | "declare"
  | "assign"
  | "comma"
  | "right";

interface Tok {
  kind: TokKind;
  value: string;
  pos: number;
  /** Whitespace came right before this token (Go separates arguments by spaces). */
  spaced: boolean;
}

const KEYWORDS = new Set(["if", "else", "end", "range", "with", "break", "continue"]);
const UNSUPPORTED = new Set(["define", "template", "block"]);

/** Parses `src` into nodes, or throws {@link TemplateParseError}. */
export function parseTemplate(src: string): Node[] {
  return new Parser(src).parse();
}

class Parser {
  private i = 0;
  private toks: Tok[] = [];
  private k = 0;
  /** How many {{range}} bodies enclose the parser, for break and continue. */
  private rangeDepth = 0;
  /** The last action ended with ` -}}`: trim the leading space of the text after it. */
  private lastTrimRight = false;

  constructor(private readonly src: string) {}

  private line(pos: number): number {
    let n = 1;
    for (let j = 0; j < pos && j < this.src.length; j++) if (this.src[j] === "\n") n++;
    return n;
  }

  private fail(detail: string, pos = this.i): never {
    throw new TemplateParseError(detail, this.line(pos));
  }

  parse(): Node[] {
    const { list, end } = this.parseList();
    if (end) this.fail(`unexpected {{${end.word}}}`, end.pos);
    return list;
  }

  /** Parses nodes until EOF, or until `{{end}}` / `{{else ...}}`, which it returns. */
  private parseList(): {
    list: Node[];
    end?: { word: "end" | "else"; pos: number };
  } {
    const list: Node[] = [];
    // A body starts right after `{{if x -}}` or `{{else -}}`: that trim applies to its text.
    let trimNext = this.lastTrimRight;
    for (;;) {
      const open = this.src.indexOf("{{", this.i);
      let text = this.src.slice(this.i, open < 0 ? undefined : open);
      if (trimNext) text = text.replace(/^[ \t\r\n]+/, "");
      const trimLeft = open >= 0 && /^\{\{-[ \t\r\n]/.test(this.src.slice(open, open + 4));
      if (trimLeft) text = text.replace(/[ \t\r\n]+$/, "");
      if (text) list.push({ kind: "text", text });
      if (open < 0) {
        this.i = this.src.length;
        return { list };
      }
      this.i = open + (trimLeft ? 3 : 2);
      const node = this.action(open);
      trimNext = this.lastTrimRight;
      if (node === undefined) continue;
      if ("word" in node) {
        return { list, end: node };
      }
      list.push(node);
    }
  }

  /** Lexes one action's tokens (after `{{`), up to and including `}}`. */
  private lexAction(open: number): Tok[] {
    const toks: Tok[] = [];
    const s = this.src;
    let spaced = true;
    for (;;) {
      if (this.i >= s.length) this.fail("unclosed action", open);
      const c = s[this.i];
      if (/[ \t\r\n]/.test(c)) {
        // ` -}}` trims the text after the action.
        if (s.startsWith("-}}", this.i + 1) && /[ \t\r\n]/.test(c)) {
          this.i += 4;
          this.lastTrimRight = true;
          toks.push({ kind: "right", value: "}}", pos: this.i - 2, spaced: true });
          return toks;
        }
        this.i++;
        spaced = true;
        continue;
      }
      const start = this.i;
      const push = (kind: TokKind, value: string) => {
        toks.push({ kind, value, pos: start, spaced });
        spaced = false;
      };
      if (s.startsWith("}}", this.i)) {
        this.i += 2;
        this.lastTrimRight = false;
        push("right", "}}");
        return toks;
      }
      if (s.startsWith("/*", this.i)) {
        const close = s.indexOf("*/", this.i + 2);
        if (close < 0) this.fail("unclosed comment", start);
        this.i = close + 2;
        continue;
      }
      if (c === "|") {
        this.i++;
        push("pipe", c);
      } else if (c === "(") {
        this.i++;
        push("lparen", c);
      } else if (c === ")") {
        this.i++;
        push("rparen", c);
      } else if (c === ",") {
        this.i++;
        push("comma", c);
      } else if (s.startsWith(":=", this.i)) {
        this.i += 2;
        push("declare", ":=");
      } else if (c === "=") {
        this.i++;
        push("assign", "=");
      } else if (c === '"') {
        let j = this.i + 1;
        while (j < s.length && s[j] !== '"') {
          if (s[j] === "\\") j++;
          if (s[j] === "\n") this.fail("unterminated quoted string", start);
          j++;
        }
        if (j >= s.length) this.fail("unterminated quoted string", start);
        this.i = j + 1;
        push("string", s.slice(start, this.i));
      } else if (c === "`") {
        const close = s.indexOf("`", this.i + 1);
        if (close < 0) this.fail("unterminated raw quoted string", start);
        this.i = close + 1;
        push("string", s.slice(start, this.i));
      } else if (c === "'") {
        const m = /^'(\\.[^']*|[^\\'])'/u.exec(s.slice(this.i));
        if (!m) this.fail("unterminated character constant", start);
        this.i += m[0].length;
        push("char", m[0]);
      } else if (c === "." && !/[0-9]/.test(s[this.i + 1] ?? "")) {
        const m = /^\.[\p{L}_][\p{L}\p{N}_]*/u.exec(s.slice(this.i));
        if (m) {
          this.i += m[0].length;
          push("field", m[0].slice(1));
        } else {
          this.i++;
          push("dot", ".");
        }
      } else if (c === "$") {
        const m = /^\$[\p{L}\p{N}_]*/u.exec(s.slice(this.i))!;
        this.i += m[0].length;
        push("var", m[0]);
      } else if (/[-+0-9.]/.test(c)) {
        const m =
          /^[-+]?(0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+|(\d[\d_]*)?\.?\d*([eE][-+]?\d+)?)/
            .exec(s.slice(this.i));
        if (!m || m[0] === "" || m[0] === "-" || m[0] === "+") {
          this.fail(`bad number syntax: "${c}"`, start);
        }
        this.i += m[0].length;
        push("number", m[0]);
      } else if (/[\p{L}_]/u.test(c)) {
        const m = /^[\p{L}_][\p{L}\p{N}_]*/u.exec(s.slice(this.i))!;
        this.i += m[0].length;
        push("ident", m[0]);
      } else {
        this.fail(`unexpected "${c}" in command`, start);
      }
    }
  }

  private peek(): Tok {
    return this.toks[this.k];
  }

  private next(): Tok {
    return this.toks[this.k++];
  }

  /** Parses the action starting at `{{` (offset `open`); undefined for a comment-only one. */
  private action(open: number): Node | { word: "end" | "else"; pos: number } | undefined {
    this.toks = this.lexAction(open);
    this.k = 0;
    const first = this.peek();
    if (first.kind === "right") return undefined;
    if (first.kind === "ident" && UNSUPPORTED.has(first.value)) {
      this.fail(`{{${first.value}}} is not supported by tsbox's templates`, first.pos);
    }
    if (first.kind === "ident" && KEYWORDS.has(first.value)) {
      this.next();
      switch (first.value) {
        case "end":
          this.expectRight("end");
          return { word: "end", pos: first.pos };
        case "else":
          return { word: "else", pos: first.pos };
        case "break":
        case "continue":
          if (this.rangeDepth === 0) this.fail(`{{${first.value}}} outside {{range}}`, first.pos);
          this.expectRight(first.value);
          return { kind: first.value, pos: first.pos };
        default:
          return this.control(first.value as "if" | "with" | "range", first.pos);
      }
    }
    const pipe = this.pipeline("command", true);
    this.expectRight("command");
    return { kind: "action", pos: pipe.pos, pipe };
  }

  private expectRight(context: string): void {
    const t = this.next();
    if (t.kind !== "right") this.fail(`unexpected "${t.value}" in ${context}`, t.pos);
  }

  /** if/with/range: the pipeline, the body and an optional else (or `else if`/`else with`). */
  private control(kind: "if" | "with" | "range", pos: number): Node {
    const pipe = this.pipeline(kind, true, kind === "range");
    this.expectRight(kind);
    if (kind === "range") this.rangeDepth++;
    const body = this.parseList();
    if (kind === "range") this.rangeDepth--;
    if (!body.end) this.fail("unexpected EOF", this.src.length);
    const node: Node = { kind, pos, pipe, list: body.list };
    if (body.end.word === "end") return node;
    // {{else}}, {{else if ...}} or {{else with ...}}
    const after = this.peek();
    if (after.kind === "ident" && (after.value === "if" || after.value === "with")) {
      if (after.value !== kind && kind !== "if") {
        this.fail(`unexpected "${after.value}" after {{else}} in ${kind}`, after.pos);
      }
      this.next();
      // The chained control consumes the shared {{end}}.
      node.elseList = [this.control(after.value, after.pos)];
      return node;
    }
    this.expectRight("else");
    const rest = this.parseList();
    if (!rest.end) this.fail("unexpected EOF", this.src.length);
    if (rest.end.word !== "end") this.fail("expected end; found {{else}}", rest.end.pos);
    node.elseList = rest.list;
    return node;
  }

  /** A pipeline; `inRange` allows `$i, $e :=`. Stops before `}}` or `)`. */
  private pipeline(context: string, allowDecl: boolean, inRange = false): Pipe {
    const start = this.peek().pos;
    const decl: string[] = [];
    let assign = false;
    if (allowDecl && this.peek().kind === "var") {
      const save = this.k;
      const v = this.next();
      const after = this.peek();
      if (after.kind === "declare" || after.kind === "assign") {
        this.next();
        decl.push(v.value);
        assign = after.kind === "assign";
      } else if (after.kind === "comma" && inRange) {
        this.next();
        const v2 = this.next();
        if (v2.kind !== "var") this.fail(`range can only initialize variables`, v2.pos);
        const op = this.next();
        if (op.kind !== "declare" && op.kind !== "assign") {
          this.fail(`expected := or = in range`, op.pos);
        }
        decl.push(v.value, v2.value);
        assign = op.kind === "assign";
      } else {
        this.k = save;
      }
    }
    const cmds: Cmd[] = [];
    for (;;) {
      const cmd = this.command(context);
      cmds.push(cmd);
      const t = this.peek();
      if (t.kind === "pipe") {
        this.next();
        continue;
      }
      break;
    }
    const endPos = this.peek().pos;
    return { pos: start, text: this.src.slice(start, endPos).trim(), decl, assign, cmds };
  }

  private command(context: string): Cmd {
    const args: Arg[] = [];
    const start = this.peek().pos;
    for (;;) {
      const t = this.peek();
      if (t.kind === "right" || t.kind === "rparen" || t.kind === "pipe") break;
      if (args.length > 0 && !t.spaced) this.fail(`missing space?`, t.pos);
      args.push(this.operand());
    }
    if (args.length === 0) this.fail(`missing value for ${context}`, this.peek().pos);
    const endPos = this.peek().pos;
    return { pos: start, text: this.src.slice(start, endPos).trim(), args };
  }

  /** A term and the field chain right after it (`.A.B`, `$x.A`, `(pipe).A`). */
  private operand(): Arg {
    const t = this.next();
    const chain = (): string[] => {
      const names: string[] = [];
      while (this.peek().kind === "field" && !this.peek().spaced) names.push(this.next().value);
      return names;
    };
    const text = () => this.src.slice(t.pos, this.peek().pos).trim();
    switch (t.kind) {
      case "field": {
        const names = [t.value, ...chain()];
        return { kind: "field", pos: t.pos, text: text(), names };
      }
      case "dot":
        if (this.peek().kind === "field" && !this.peek().spaced) {
          this.fail(`unexpected . after term "."`, this.peek().pos);
        }
        return { kind: "dot", pos: t.pos, text: "." };
      case "var": {
        const names = chain();
        return { kind: "var", pos: t.pos, text: text(), name: t.value, names };
      }
      case "lparen": {
        const pipe = this.pipeline("parenthesized pipeline", true);
        const close = this.next();
        if (close.kind !== "rparen") this.fail(`unclosed left paren`, t.pos);
        const names = chain();
        return { kind: "pipe", pos: t.pos, text: text(), pipe, names };
      }
      case "ident":
        if (t.value === "true" || t.value === "false") {
          return { kind: "literal", pos: t.pos, text: t.value, value: t.value === "true" };
        }
        if (t.value === "nil") return { kind: "literal", pos: t.pos, text: "nil", value: null };
        if (KEYWORDS.has(t.value)) this.fail(`unexpected <${t.value}> in command`, t.pos);
        return { kind: "ident", pos: t.pos, text: t.value, name: t.value };
      case "string":
        return { kind: "literal", pos: t.pos, text: t.value, value: unquote(t.value) };
      case "char":
        return {
          kind: "literal",
          pos: t.pos,
          text: t.value,
          value: unquote(`"${t.value.slice(1, -1)}"`).codePointAt(0)!,
        };
      case "number": {
        const n = Number(t.value.replaceAll("_", ""));
        if (Number.isNaN(n)) this.fail(`bad number syntax: "${t.value}"`, t.pos);
        return { kind: "literal", pos: t.pos, text: t.value, value: n };
      }
      default:
        return this.fail(`unexpected "${t.value}" in operand`, t.pos);
    }
  }
}

/** Go's strconv.Unquote for "..." (escapes) and `...` (raw) literals. */
function unquote(lit: string): string {
  if (lit.startsWith("`")) return lit.slice(1, -1);
  return lit.slice(1, -1).replace(
    /\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{3}|.)/g,
    (_m, e: string) => {
      switch (e[0]) {
        case "x":
        case "u":
        case "U":
          return String.fromCodePoint(parseInt(e.slice(1), 16));
        case "n":
          return "\n";
        case "t":
          return "\t";
        case "r":
          return "\r";
        case "a":
          return "\x07";
        case "b":
          return "\b";
        case "f":
          return "\f";
        case "v":
          return "\v";
        default:
          return /[0-7]/.test(e[0]) ? String.fromCharCode(parseInt(e, 8)) : e;
      }
    },
  );
}
