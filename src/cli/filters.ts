/**
 * `--filter KEY=VALUE` as docker parses and checks it, shared by `ps`, `images` and `volume ls`:
 * the flag's format (client side, a usage error), the keys each command accepts (daemon side:
 * `invalid filter 'KEY'`, exit 1), and the checks several commands share (labels, booleans, Go's
 * `path.Match` globs, docker's regexp matching of names).
 *
 * @module
 */
import { ArgumentValueError } from "./arg_parsers.ts";
import { TsboxError } from "../errors.ts";

/** A filter docker's daemon refuses; docker's CLI exits 1 for these (not 125). */
export class FilterError extends TsboxError {
  override readonly exitCode: number = 1;
  constructor(message: string) {
    super(message);
    this.name = "FilterError";
  }
}

/** An unknown key (`invalid filter 'bogus'`) or a bad value (`invalid filter 'status=x'`). */
export class InvalidFilterError extends FilterError {
  constructor(readonly filter: string) {
    super(`invalid filter '${filter}'`);
    this.name = "InvalidFilterError";
  }
}

/** The `--filter` values of one command, grouped by key in the order given. */
export type Filters = ReadonlyMap<string, readonly string[]>;

/**
 * commander's parser of a repeatable `--filter`: docker's `filters.ParseFlag` (key lower-cased,
 * key and value trimmed); `KEY` without `=` is docker's usage error.
 */
export function collectFilter(value: string, previous: string[] = []): string[] {
  if (!value.includes("=")) {
    throw new ArgumentValueError("bad format of filter (expected name=value)");
  }
  return [...previous, value];
}

/**
 * Groups `values` (`KEY=VALUE`) by key and refuses a key outside `accepted` as docker's daemon
 * does (`invalid filter 'bogus'`, exit 1).
 */
export function parseFilters(values: readonly string[], accepted: readonly string[]): Filters {
  const byKey = new Map<string, string[]>();
  for (const f of values) {
    const i = f.indexOf("=");
    if (i < 0) throw new TsboxError(`bad format of filter (expected name=value): ${f}`);
    const key = f.slice(0, i).trim().toLowerCase();
    const value = f.slice(i + 1).trim();
    byKey.set(key, [...(byKey.get(key) ?? []), value]);
  }
  for (const key of byKey.keys()) {
    if (!accepted.includes(key)) throw new InvalidFilterError(key);
  }
  return byKey;
}

/**
 * `label=K`, `label=K=V`, `label!=K`, `label!=K=V` (and docker's `label=K!=V` spelling of the
 * last): every one must hold. `label!=K=V` holds when K is absent or has another value.
 */
export function matchLabels(filters: Filters, labels: Readonly<Record<string, string>>): boolean {
  const checks = [
    ...(filters.get("label") ?? []).map((v) => ({ v, negate: false })),
    ...(filters.get("label!") ?? []).map((v) => ({ v, negate: true })),
  ];
  return checks.every(({ v, negate }) => {
    const i = v.indexOf("=");
    let key = i < 0 ? v : v.slice(0, i);
    if (i >= 0 && key.endsWith("!")) {
      key = key.slice(0, -1);
      negate = !negate;
    }
    const has = Object.hasOwn(labels, key);
    const match = i < 0 ? has : has && labels[key] === v.slice(i + 1);
    return match !== negate;
  });
}

/**
 * docker's `GetBoolOrDefault`: `true`/`1` or `false`/`0`; anything else, or both, is
 * `invalid filter 'KEY=[values]'`. Undefined when the key is not given.
 */
export function boolFilter(filters: Filters, key: string): boolean | undefined {
  const values = filters.get(key);
  if (!values) return undefined;
  const isTrue = values.some((v) => v === "true" || v === "1");
  const isFalse = values.some((v) => v === "false" || v === "0");
  if (isTrue === isFalse) throw new InvalidFilterError(`${key}=[${values.join(" ")}]`);
  return isTrue;
}

/**
 * docker's `filters.Match`: the value equals the text or, as a regular expression, matches
 * somewhere in it. A value that is no valid expression matches only itself.
 */
export function matchesPattern(pattern: string, text: string): boolean {
  if (pattern === text) return true;
  try {
    return new RegExp(pattern).test(text);
  } catch {
    return false;
  }
}

/**
 * Go's `path.Match(pattern, name)`: `*` any run of non-`/` characters, `?` one, `[...]` a class
 * (`[^...]` negated, ranges, `\` escapes). A malformed pattern is docker's `syntax error in
 * pattern` error.
 */
export function globMatch(pattern: string, name: string): boolean {
  let re = "^";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else if (c === "\\") {
      if (i + 1 >= pattern.length) throw new FilterError("syntax error in pattern");
      re += escapeRe(pattern[++i]);
    } else if (c === "[") {
      const end = classEnd(pattern, i);
      let body = pattern.slice(i + 1, end);
      const negated = body.startsWith("^");
      if (negated) body = body.slice(1);
      if (body === "") throw new FilterError("syntax error in pattern");
      let cls = "";
      for (let j = 0; j < body.length; j++) {
        const ch = body[j] === "\\" ? body[++j] : body[j];
        cls += ch === "-" && j > 0 && j < body.length - 1 ? "-" : escapeRe(ch);
      }
      re += negated ? `[^/${cls}]` : `[${cls}]`;
      i = end;
    } else re += escapeRe(c);
  }
  try {
    return new RegExp(`${re}$`, "s").test(name);
  } catch {
    throw new FilterError("syntax error in pattern");
  }
}

/** The index of the `]` closing the class opened at `start`. */
function classEnd(pattern: string, start: number): number {
  for (let j = start + 1; j < pattern.length; j++) {
    if (pattern[j] === "\\") j++;
    else if (pattern[j] === "]") return j;
  }
  throw new FilterError("syntax error in pattern");
}

function escapeRe(c: string): string {
  return /[.*+?^${}()|[\]\\\/-]/.test(c) ? `\\${c}` : c;
}
