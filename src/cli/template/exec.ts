/**
 * The evaluator of Go's text/template for docker's `--format`, with Go's builtins (and, or, not,
 * len, index, slice-free, print, printf, println, eq, ne, lt, le, gt, ge) and docker's functions
 * (json, split, join, title, lower, upper, pad, truncate).
 *
 * Data is plain JavaScript, read the way docker's Go values behave:
 * - an object marked with {@link GO_TYPE} is a Go struct: an unknown field is an error naming the
 *   type, and a function-valued field is a method (`{{.Label "k"}}`);
 * - a {@link GoMap} is a Go map: a missing key prints `<no value>`;
 * - any other object is a map decoded from JSON under `missingkey=error`, which is how `docker
 *   inspect` reads its objects in the end: a missing key is an error.
 *
 * @module
 */
import {
  type Arg,
  type Cmd,
  type ControlNode,
  type Node,
  parseTemplate,
  type Pipe,
  TemplateParseError,
} from "./parse.ts";
import { GO_TYPE, GoMap } from "./values.ts";
import { goQuote } from "../format.ts";

export { GO_TYPE, GoMap, goQuote };

/** A function callable from templates. */
export type TemplateFunction = (...args: unknown[]) => unknown;

/** A failure while executing; the message reads like Go's `template: :1:2: executing ...`. */
export class TemplateExecError extends Error {
  constructor(readonly detail: string, readonly location: string, readonly at: string) {
    super(`template: ${location}: executing "" at <${at}>: ${detail}`);
    this.name = "TemplateExecError";
  }
}

/** An error raised inside a function or a field lookup, before its location is known. */
class Fault extends Error {}

class Break {}
class Continue {}

/** A parsed template, ready to run against data. */
export class Template {
  readonly nodes: Node[];
  constructor(readonly source: string, private readonly funcs: Record<string, TemplateFunction>) {
    this.nodes = parseTemplate(source);
    checkFunctions(this.nodes, (name) => name in funcs || name in BUILTINS, source);
  }

  /** Runs the template with `data` as dot; `funcs` replace functions of the same name. */
  execute(data: unknown, funcs: Record<string, TemplateFunction> = {}): string {
    const state = new State(this.source, { ...BUILTINS, ...this.funcs, ...funcs }, data);
    state.walkList(data, this.nodes);
    return state.out.join("");
  }

  /** Like {@link execute}, but a failure ends the output where it happened (as Go's writer). */
  executePartial(data: unknown, funcs: Record<string, TemplateFunction> = {}): string {
    const state = new State(this.source, { ...BUILTINS, ...this.funcs, ...funcs }, data);
    try {
      state.walkList(data, this.nodes);
    } catch (err) {
      if (!(err instanceof TemplateExecError)) throw err;
    }
    return state.out.join("");
  }
}

/** Parses `source` with docker's functions (and `extra`), or throws TemplateParseError. */
export function parse(source: string, extra: Record<string, TemplateFunction> = {}): Template {
  return new Template(source, { ...DOCKER_FUNCS, ...extra });
}

// ---------------------------------------------------------------------------------------------
// Values

/** How Go names a value's type in messages. */
export function goTypeName(v: unknown): string {
  if (v === null || v === undefined) return "<nil>";
  if (typeof v === "string") return "string";
  if (typeof v === "boolean") return "bool";
  if (typeof v === "number") return Number.isInteger(v) ? "int" : "float64";
  if (Array.isArray(v)) {
    return v.every((e) => typeof e === "string") ? "[]string" : "[]interface {}";
  }
  if (v instanceof Map) return "map[string]interface {}";
  if (typeof v === "object" && GO_TYPE in v) return String((v as Record<symbol, unknown>)[GO_TYPE]);
  return "map[string]interface {}";
}

function isStruct(v: unknown): v is Record<string | symbol, unknown> {
  return typeof v === "object" && v !== null && GO_TYPE in v;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Map);
}

/** The fields of a struct, methods without arguments evaluated (docker's MarshalJSON). */
function structFields(v: Record<string, unknown>): [string, unknown][] {
  const out: [string, unknown][] = [];
  for (const [k, f] of Object.entries(v)) {
    if (typeof f === "function") {
      if (f.length === 0) out.push([k, f()]);
    } else out.push([k, f]);
  }
  return out;
}

/** Go's truth: false, 0, nil and empty strings, slices and maps are false. */
export function truth(v: unknown): boolean {
  if (v === null || v === undefined || v === false || v === 0 || v === "") return false;
  if (Array.isArray(v)) return v.length > 0;
  if (v instanceof Map) return v.size > 0;
  if (isPlainObject(v) && !isStruct(v)) return Object.keys(v).length > 0;
  return true;
}

function formatNumber(n: number): string {
  if (Number.isInteger(n) && Math.abs(n) < 1e21) return String(n);
  // Go's %v for floats: shortest form, exponent with at least two digits.
  return String(n).replace(/e([-+])(\d)$/, "e$10$2");
}

/** Go's `%v` (fmt.Sprint of one value), as text/template prints an action's result. */
export function printValue(v: unknown, nested = false): string {
  if (v === undefined) return nested ? "<nil>" : "<no value>";
  if (v === null) return "<nil>";
  if (typeof v === "string") return v;
  if (typeof v === "number") return formatNumber(v);
  if (typeof v === "boolean") return String(v);
  if (typeof v === "function") return "<func>";
  if (Array.isArray(v)) return `[${v.map((e) => printValue(e, true)).join(" ")}]`;
  if (v instanceof Map) {
    const keys = [...v.keys()].sort();
    return `map[${keys.map((k) => `${k}:${printValue(v.get(k), true)}`).join(" ")}]`;
  }
  if (isStruct(v)) {
    return `{${structFields(v).map(([, f]) => printValue(f, true)).join(" ")}}`;
  }
  const obj = v as Record<string, unknown>;
  const keys = Object.keys(obj).sort();
  return `map[${keys.map((k) => `${k}:${printValue(obj[k], true)}`).join(" ")}]`;
}

/** Go's json.Marshal with HTML escaping off, as docker's `json` function. */
export function goJson(v: unknown): string {
  const plain = (x: unknown): unknown => {
    if (x === undefined || typeof x === "function") return null;
    if (Array.isArray(x)) return x.map(plain);
    if (x instanceof GoMap && x.isNil) return null;
    if (x instanceof Map) {
      // Go sorts map keys.
      return Object.fromEntries([...x.keys()].sort().map((k) => [k, plain(x.get(k))]));
    }
    // docker's formatter contexts marshal as maps (sorted); inspect objects keep the field order
    // of docker's structs.
    if (isStruct(x)) {
      const fields = structFields(x).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      return Object.fromEntries(fields.map(([k, f]) => [k, plain(f)]));
    }
    if (isPlainObject(x)) {
      return Object.fromEntries(Object.keys(x).map((k) => [k, plain(x[k])]));
    }
    return x;
  };
  return JSON.stringify(plain(v)).replace(
    /[\u2028\u2029]/g,
    (c) => c === "\u2028" ? "\\u2028" : "\\u2029",
  );
}

// ---------------------------------------------------------------------------------------------
// Functions

function wantString(fn: string, v: unknown): string {
  if (typeof v !== "string") {
    throw new Fault(
      `error calling ${fn}: wrong type for value; expected string; got ${goTypeName(v)}`,
    );
  }
  return v;
}

function wantInt(fn: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isInteger(v)) {
    throw new Fault(
      `error calling ${fn}: wrong type for value; expected int; got ${goTypeName(v)}`,
    );
  }
  return v;
}

/** Go's strings.Title: the first letter of each word upper-cased. */
function title(s: string): string {
  return s.replace(/(?<![\p{L}\p{N}_])\p{L}/gu, (c) => c.toUpperCase());
}

/** The functions docker adds to every template (cli/templates). */
export const DOCKER_FUNCS: Record<string, TemplateFunction> = {
  json: (v) => goJson(v),
  split: (s, sep) => {
    const str = wantString("split", s);
    const by = wantString("split", sep);
    return by === "" ? [...str] : str.split(by);
  },
  join: (list, sep) => {
    if (!Array.isArray(list)) {
      throw new Fault(
        `error calling join: wrong type for value; expected []string; got ${goTypeName(list)}`,
      );
    }
    return list.map((e) => printValue(e, true)).join(wantString("join", sep));
  },
  title: (s) => title(wantString("title", s)),
  lower: (s) => wantString("lower", s).toLowerCase(),
  upper: (s) => wantString("upper", s).toUpperCase(),
  pad: (s, prefix, suffix) => {
    const str = wantString("pad", s);
    return str === ""
      ? str
      : " ".repeat(wantInt("pad", prefix)) + str + " ".repeat(wantInt("pad", suffix));
  },
  truncate: (s, n) => {
    const str = wantString("truncate", s);
    const len = wantInt("truncate", n);
    return str.length < len ? str : str.slice(0, len);
  },
};

/** docker's functions as they render a table's header: the header text stays as it is. */
export const HEADER_FUNCS: Record<string, TemplateFunction> = {
  json: (v) => v,
  split: (v, _sep) => v,
  join: (v, _sep) => v,
  title: (v) => v,
  lower: (v) => v,
  upper: (v) => v,
  truncate: (v, _n) => v,
};

function basicKind(v: unknown): "bool" | "number" | "string" | "nil" | undefined {
  if (v === null || v === undefined) return "nil";
  if (typeof v === "boolean") return "bool";
  if (typeof v === "number") return "number";
  if (typeof v === "string") return "string";
  return undefined;
}

function eq(a: unknown, ...rest: unknown[]): boolean {
  if (rest.length === 0) throw new Fault("error calling eq: missing argument for comparison");
  const ka = basicKind(a);
  if (ka === undefined) throw new Fault("error calling eq: invalid type for comparison");
  for (const b of rest) {
    const kb = basicKind(b);
    if (kb === undefined) throw new Fault("error calling eq: invalid type for comparison");
    if (ka !== kb && ka !== "nil" && kb !== "nil") {
      throw new Fault("error calling eq: incompatible types for comparison");
    }
    if ((ka === "nil" || kb === "nil") ? ka === kb : a === b) return true;
  }
  return false;
}

function compare(fn: string, a: unknown, b: unknown): number {
  const ka = basicKind(a);
  const kb = basicKind(b);
  if ((ka !== "number" && ka !== "string") || (kb !== "number" && kb !== "string")) {
    throw new Fault(`error calling ${fn}: invalid type for comparison`);
  }
  if (ka !== kb) throw new Fault(`error calling ${fn}: incompatible types for comparison`);
  return (a as number | string) < (b as number | string) ? -1 : a === b ? 0 : 1;
}

function len(v: unknown): number {
  if (typeof v === "string") return new TextEncoder().encode(v).length;
  if (Array.isArray(v)) return v.length;
  if (v instanceof Map) return v.size;
  if (isPlainObject(v) && !isStruct(v)) return Object.keys(v).length;
  if (v === null || v === undefined) throw new Fault("error calling len: len of nil pointer");
  throw new Fault(`error calling len: len of type ${goTypeName(v)}`);
}

function index(item: unknown, ...keys: unknown[]): unknown {
  let v = item;
  for (const key of keys) {
    if (Array.isArray(v) || typeof v === "string") {
      if (typeof key !== "number" || !Number.isInteger(key)) {
        throw new Fault(
          `error calling index: cannot index slice/array with type ${goTypeName(key)}`,
        );
      }
      if (key < 0 || key >= v.length) {
        throw new Fault(`error calling index: index out of range: ${key}`);
      }
      v = typeof v === "string" ? new TextEncoder().encode(v)[key] : v[key];
    } else if (v === null || v === undefined) {
      // A nil map (an empty Labels in inspect) gives the zero value of its strings.
      v = "";
    } else if (v instanceof Map || (isPlainObject(v) && !isStruct(v))) {
      if (typeof key !== "string") {
        throw new Fault(`error calling index: value has type ${goTypeName(key)}; should be string`);
      }
      const found = v instanceof Map ? v.get(key) : (v as Record<string, unknown>)[key];
      v = found === undefined ? "" : found;
    } else {
      throw new Fault(`error calling index: can't index item of type ${goTypeName(v)}`);
    }
  }
  return v;
}

/** Go's fmt.Sprint: a space between operands when neither side is a string. */
function sprint(args: unknown[]): string {
  let out = "";
  args.forEach((a, i) => {
    if (i > 0 && typeof a !== "string" && typeof args[i - 1] !== "string") out += " ";
    out += printValue(a, true);
  });
  return out;
}

/** Go's fmt.Sprintf for the verbs templates use: %v %s %d %q %t %f %x %X %c %e %g %%. */
export function sprintf(format: string, args: unknown[]): string {
  let argi = 0;
  const out = format.replace(
    /%([-+# 0]*)(\d+)?(?:\.(\d+))?([a-zA-Z%])/g,
    (_m, flags: string, w?: string, p?: string, verb?: string) => {
      if (verb === "%") return "%";
      if (argi >= args.length) return `%!${verb}(MISSING)`;
      const a = args[argi++];
      const bad = () => `%!${verb}(${goTypeName(a)}=${printValue(a, true)})`;
      const prec = p === undefined ? undefined : Number(p);
      let s: string;
      switch (verb) {
        case "v":
          s = printValue(a, true);
          break;
        case "s":
          if (typeof a === "string") s = a;
          else if (Array.isArray(a) || a instanceof Map || isPlainObject(a)) {
            s = printValue(a, true);
          } else return bad();
          if (prec !== undefined) s = [...s].slice(0, prec).join("");
          break;
        case "q":
          if (typeof a === "string") s = goQuote(a);
          else if (typeof a === "number" && Number.isInteger(a)) {
            s = `'${String.fromCodePoint(a)}'`;
          } else return bad();
          break;
        case "d":
          if (typeof a !== "number" || !Number.isInteger(a)) return bad();
          s = String(a);
          if (flags.includes("+") && a >= 0) s = `+${s}`;
          break;
        case "t":
          if (typeof a !== "boolean") return bad();
          s = String(a);
          break;
        case "f":
        case "F":
        case "e":
        case "g":
          if (typeof a !== "number") return bad();
          s = verb === "e"
            ? a.toExponential(prec ?? 6).replace(/e([-+])(\d)$/, "e$10$2")
            : verb === "g"
            ? formatNumber(prec === undefined ? a : Number(a.toPrecision(prec)))
            : a.toFixed(prec ?? 6);
          if (flags.includes("+") && a >= 0) s = `+${s}`;
          break;
        case "x":
        case "X": {
          if (typeof a === "number" && Number.isInteger(a)) s = a.toString(16);
          else if (typeof a === "string") {
            s = [...new TextEncoder().encode(a)].map((b) => b.toString(16).padStart(2, "0")).join(
              "",
            );
          } else return bad();
          if (verb === "X") s = s.toUpperCase();
          break;
        }
        case "c":
          if (typeof a !== "number" || !Number.isInteger(a)) return bad();
          s = String.fromCodePoint(a);
          break;
        default:
          return `%!${verb}(${goTypeName(a)}=${printValue(a, true)})`;
      }
      const width = w === undefined ? 0 : Number(w);
      const n = [...s].length;
      if (n < width) {
        if (flags.includes("-")) s += " ".repeat(width - n);
        else if (flags.includes("0") && /^[-+]?\d/.test(s) && "dfFeg".includes(verb!)) {
          const sign = /^[-+]/.test(s) ? s[0] : "";
          s = sign + "0".repeat(width - n) + s.slice(sign.length);
        } else s = " ".repeat(width - n) + s;
      }
      return s;
    },
  );
  if (argi < args.length) {
    const extra = args.slice(argi).map((a) => `${goTypeName(a)}=${printValue(a, true)}`);
    return `${out}%!(EXTRA ${extra.join(", ")})`;
  }
  return out;
}

/** Go's builtins; `and` and `or` are handled by the evaluator (they short-circuit). */
const BUILTINS: Record<string, TemplateFunction> = {
  and: () => undefined,
  or: () => undefined,
  not: (v) => !truth(v),
  len: (v) => len(v),
  index: (item, ...keys) => index(item, ...keys),
  print: (...args) => sprint(args),
  println: (...args) => args.map((a) => printValue(a, true)).join(" ") + "\n",
  printf: (f, ...args) => sprintf(wantString("printf", f), args),
  eq: (a, ...rest) => eq(a, ...rest),
  ne: (a, b) => !eq(a, b),
  lt: (a, b) => compare("lt", a, b) < 0,
  le: (a, b) => compare("le", a, b) <= 0,
  gt: (a, b) => compare("gt", a, b) > 0,
  ge: (a, b) => compare("ge", a, b) >= 0,
};

/** Minimum and maximum argument counts of fixed-arity functions (Go checks them). */
const ARITY: Record<string, [number, number]> = {
  not: [1, 1],
  len: [1, 1],
  index: [1, Infinity],
  printf: [1, Infinity],
  eq: [1, Infinity],
  ne: [2, 2],
  lt: [2, 2],
  le: [2, 2],
  gt: [2, 2],
  ge: [2, 2],
  and: [1, Infinity],
  or: [1, Infinity],
  json: [1, 1],
  split: [2, 2],
  join: [2, 2],
  title: [1, 1],
  lower: [1, 1],
  upper: [1, 1],
  pad: [3, 3],
  truncate: [2, 2],
};

/** Go rejects a template naming an unknown function when it parses. */
function checkFunctions(nodes: Node[], known: (name: string) => boolean, source: string): void {
  const checkPipe = (p: Pipe) => {
    for (const c of p.cmds) {
      for (const a of c.args) {
        if (a.kind === "ident" && !known(a.name)) {
          const line = source.slice(0, a.pos).split("\n").length;
          throw new TemplateParseError(`function "${a.name}" not defined`, line);
        }
        if (a.kind === "pipe") checkPipe(a.pipe);
      }
    }
  };
  for (const n of nodes) {
    if (n.kind === "action") checkPipe(n.pipe);
    else if (n.kind === "if" || n.kind === "with" || n.kind === "range") {
      checkPipe(n.pipe);
      checkFunctions(n.list, known, source);
      if (n.elseList) checkFunctions(n.elseList, known, source);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Execution

/** The value of an empty slot: no previous command in a pipeline. */
const NONE: unique symbol = Symbol("none");

class State {
  out: string[] = [];
  private vars: { name: string; value: unknown }[];

  constructor(
    private readonly source: string,
    private readonly funcs: Record<string, TemplateFunction>,
    data: unknown,
  ) {
    this.vars = [{ name: "$", value: data }];
  }

  private location(pos: number): string {
    const before = this.source.slice(0, pos);
    const line = before.split("\n").length;
    const col = pos - (before.lastIndexOf("\n") + 1);
    return `:${line}:${col}`;
  }

  private fail(pos: number, at: string, detail: string): never {
    throw new TemplateExecError(detail, this.location(pos), at);
  }

  walkList(dot: unknown, nodes: Node[]): void {
    for (const n of nodes) this.walk(dot, n);
  }

  private walk(dot: unknown, node: Node): void {
    switch (node.kind) {
      case "text":
        this.out.push(node.text);
        return;
      case "action": {
        const v = this.evalPipe(dot, node.pipe);
        if (node.pipe.decl.length === 0) this.out.push(printValue(v));
        return;
      }
      case "break":
        throw new Break();
      case "continue":
        throw new Continue();
      case "if":
      case "with": {
        const mark = this.vars.length;
        const v = this.evalPipe(dot, node.pipe);
        if (truth(v)) this.walkList(node.kind === "with" ? v : dot, node.list);
        else if (node.elseList) this.walkList(dot, node.elseList);
        this.vars.length = mark;
        return;
      }
      case "range":
        return this.range(dot, node);
    }
  }

  private range(dot: unknown, node: ControlNode): void {
    const mark = this.vars.length;
    // The declared variables get each element, not the ranged value.
    const decl = node.pipe.decl;
    const v = this.evalPipe(dot, { ...node.pipe, decl: [] });
    let entries: [unknown, unknown][];
    if (Array.isArray(v)) entries = v.map((e, i) => [i, e]);
    else if (v instanceof Map) entries = [...v.keys()].sort().map((k) => [k, v.get(k)]);
    else if (typeof v === "number" && Number.isInteger(v)) {
      entries = Array.from({ length: Math.max(0, v) }, (_, i) => [i, i]);
    } else if (v === null || v === undefined) entries = [];
    else if (isPlainObject(v) && !isStruct(v)) {
      entries = Object.keys(v).sort().map((k) => [k, v[k]]);
    } else {
      this.fail(node.pos, node.pipe.text, `range can't iterate over ${printValue(v)}`);
    }
    if (entries.length === 0) {
      if (node.elseList) this.walkList(dot, node.elseList);
      this.vars.length = mark;
      return;
    }
    for (const [k, e] of entries) {
      const inner = this.vars.length;
      if (decl.length === 1) this.vars.push({ name: decl[0], value: e });
      if (decl.length === 2) {
        this.vars.push({ name: decl[0], value: k }, { name: decl[1], value: e });
      }
      try {
        this.walkList(e, node.list);
      } catch (err) {
        if (err instanceof Break) {
          this.vars.length = inner;
          break;
        }
        if (!(err instanceof Continue)) throw err;
      }
      this.vars.length = inner;
    }
    this.vars.length = mark;
  }

  private evalPipe(dot: unknown, pipe: Pipe): unknown {
    let value: unknown = NONE;
    for (const cmd of pipe.cmds) value = this.evalCommand(dot, cmd, value);
    for (const name of pipe.decl) {
      if (pipe.assign) {
        const slot = this.vars.findLast((v) => v.name === name);
        if (!slot) this.fail(pipe.pos, pipe.text, `undefined variable: ${name}`);
        slot.value = value;
      } else this.vars.push({ name, value });
    }
    return value;
  }

  private variable(pos: number, name: string): unknown {
    const slot = this.vars.findLast((v) => v.name === name);
    if (!slot) this.fail(pos, name, `undefined variable: ${name}`);
    return slot.value;
  }

  private evalCommand(dot: unknown, cmd: Cmd, final: unknown): unknown {
    const [first, ...rest] = cmd.args;
    switch (first.kind) {
      case "field":
        return this.fieldChain(dot, dot, first, first.names, rest, final);
      case "var": {
        const v = this.variable(first.pos, first.name);
        if (first.names.length === 0) return this.noArgs(first, rest, final, v);
        return this.fieldChain(dot, v, first, first.names, rest, final);
      }
      case "pipe": {
        const v = this.evalPipe(dot, first.pipe);
        if (first.names.length === 0) return this.noArgs(first, rest, final, v);
        return this.fieldChain(dot, v, first, first.names, rest, final);
      }
      case "ident":
        return this.call(dot, first, cmd, rest, final);
      case "dot":
        return this.noArgs(first, rest, final, dot);
      case "literal":
        return this.noArgs(first, rest, final, first.value);
    }
  }

  private noArgs(node: Arg, rest: Arg[], final: unknown, v: unknown): unknown {
    if (rest.length > 0 || final !== NONE) {
      this.fail(node.pos, node.text, `can't give argument to non-function ${node.text}`);
    }
    return v;
  }

  private evalArg(dot: unknown, arg: Arg): unknown {
    switch (arg.kind) {
      case "dot":
        return dot;
      case "literal":
        return arg.value;
      case "field":
        return this.fieldChain(dot, dot, arg, arg.names, [], NONE);
      case "var": {
        const v = this.variable(arg.pos, arg.name);
        return arg.names.length === 0 ? v : this.fieldChain(dot, v, arg, arg.names, [], NONE);
      }
      case "pipe": {
        const v = this.evalPipe(dot, arg.pipe);
        return arg.names.length === 0 ? v : this.fieldChain(dot, v, arg, arg.names, [], NONE);
      }
      case "ident":
        return this.call(dot, arg, { pos: arg.pos, text: arg.text, args: [arg] }, [], NONE);
    }
  }

  private fieldChain(
    dot: unknown,
    receiver: unknown,
    node: Arg,
    names: string[],
    args: Arg[],
    final: unknown,
  ): unknown {
    let v = receiver;
    for (let i = 0; i < names.length; i++) {
      const last = i === names.length - 1;
      v = this.field(dot, v, names[i], node, last ? args : [], last ? final : NONE);
    }
    return v;
  }

  private field(
    dot: unknown,
    receiver: unknown,
    name: string,
    node: Arg,
    args: Arg[],
    final: unknown,
  ): unknown {
    const hasArgs = args.length > 0 || final !== NONE;
    const fail = (detail: string): never => this.fail(node.pos, node.text, detail);
    const method = (fn: (...a: unknown[]) => unknown): unknown => {
      const values = args.map((a) => this.evalArg(dot, a));
      if (final !== NONE) values.push(final);
      if (values.length !== fn.length) {
        fail(`wrong number of args for ${name}: want ${fn.length} got ${values.length}`);
      }
      try {
        return fn(...values);
      } catch (err) {
        if (err instanceof Fault) return fail(`error calling ${name}: ${err.message}`);
        throw err;
      }
    };
    if (receiver === null || receiver === undefined) {
      return fail(`nil pointer evaluating interface {}.${name}`);
    }
    if (receiver instanceof GoMap && name in receiver.methods) {
      return method(receiver.methods[name]);
    }
    if (receiver instanceof Map) {
      if (hasArgs) fail(`${name} is not a method but has arguments`);
      return receiver.get(name);
    }
    if (isPlainObject(receiver) && !Array.isArray(receiver)) {
      if (Object.hasOwn(receiver, name)) {
        const v = receiver[name];
        if (typeof v === "function") return method(v as (...a: unknown[]) => unknown);
        if (hasArgs) fail(`${name} has arguments but cannot be invoked as function`);
        return v;
      }
      if (isStruct(receiver)) {
        return fail(`can't evaluate field ${name} in type ${goTypeName(receiver)}`);
      }
      return fail(`map has no entry for key "${name}"`);
    }
    return fail(`can't evaluate field ${name} in type ${goTypeName(receiver)}`);
  }

  private call(
    dot: unknown,
    ident: Arg & { kind: "ident" },
    cmd: Cmd,
    rest: Arg[],
    final: unknown,
  ) {
    const name = ident.name;
    const fn = this.funcs[name];
    if (!fn) this.fail(ident.pos, ident.text, `"${name}" is not a defined function`);
    const count = rest.length + (final !== NONE ? 1 : 0);
    const [min, max] = ARITY[name] ?? [0, Infinity];
    if (count < min || count > max) {
      const want = min === max ? `${min}` : `at least ${min}`;
      this.fail(cmd.pos, cmd.text, `wrong number of args for ${name}: want ${want} got ${count}`);
    }
    if (name === "and" || name === "or") {
      // Go evaluates these lazily and returns the deciding argument itself.
      let v: unknown;
      const all = rest.map((a) => () => this.evalArg(dot, a));
      if (final !== NONE) all.push(() => final);
      for (const get of all) {
        v = get();
        if (name === "and" ? !truth(v) : truth(v)) return v;
      }
      return v;
    }
    const values = rest.map((a) => this.evalArg(dot, a));
    if (final !== NONE) values.push(final);
    try {
      return fn(...values);
    } catch (err) {
      if (err instanceof Fault) {
        const detail = err.message.startsWith("error calling")
          ? err.message
          : `error calling ${name}: ${err.message}`;
        this.fail(cmd.pos, cmd.text, detail);
      }
      throw err;
    }
  }
}
