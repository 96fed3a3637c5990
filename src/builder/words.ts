/**
 * Docker's word processing for Dockerfile arguments: variable expansion (`$VAR`, `${VAR}`,
 * `${VAR:-default}`, `${VAR:+alt}`, `${VAR-default}`, `${VAR+alt}`, `${VAR:?msg}`), quote removal
 * and splitting on unquoted whitespace, with the Dockerfile's escape character.
 *
 * Single quotes keep everything literal; double quotes expand variables and let the escape
 * character protect `"`, `$` and itself; outside quotes the escape character protects any
 * character.
 *
 * @module
 */
import { TsboxError } from "../errors.ts";

/** A `${VAR:?message}` whose variable was unset or empty, or a malformed expansion. */
export class ExpansionError extends TsboxError {
  constructor(message: string) {
    super(message);
    this.name = "ExpansionError";
  }
}

/** Variable lookup: undefined for an unset variable. */
export type Lookup = (name: string) => string | undefined;

/** Options of {@link processWords} and {@link processWord}. */
export interface WordOptions {
  /** The escape character (`\` unless the `# escape=` directive says otherwise). */
  readonly escape?: string;
}

/** Expands and unquotes `text` as one word (whitespace kept), like docker's ProcessWord. */
export function processWord(text: string, lookup: Lookup, options: WordOptions = {}): string {
  return lex(text, lookup, options.escape ?? "\\", false).join("");
}

/** Expands, unquotes and splits `text` on unquoted whitespace, like docker's ProcessWords. */
export function processWords(text: string, lookup: Lookup, options: WordOptions = {}): string[] {
  return lex(text, lookup, options.escape ?? "\\", true);
}

/** Expands variables only (no quote removal): for exec-form JSON elements. */
export function expandOnly(text: string, lookup: Lookup): string {
  let out = "";
  let i = 0;
  while (i < text.length) {
    if (text[i] === "$") {
      const [value, next] = variable(text, i, lookup, "\\");
      out += value;
      i = next;
    } else out += text[i++];
  }
  return out;
}

function lex(text: string, lookup: Lookup, escape: string, split: boolean): string[] {
  const words: string[] = [];
  let word = "";
  let inWord = false;
  let i = 0;
  const n = text.length;
  while (i < n) {
    const ch = text[i];
    if (split && /\s/.test(ch)) {
      if (inWord) words.push(word);
      word = "";
      inWord = false;
      i++;
      continue;
    }
    inWord = true;
    if (ch === escape) {
      if (i + 1 < n) word += text[i + 1];
      i += 2;
    } else if (ch === "'") {
      const end = text.indexOf("'", i + 1);
      if (end < 0) {
        throw new ExpansionError(
          `unexpected end of statement while looking for matching single-quote`,
        );
      }
      word += text.slice(i + 1, end);
      i = end + 1;
    } else if (ch === '"') {
      i++;
      let closed = false;
      while (i < n) {
        const c = text[i];
        if (c === '"') {
          closed = true;
          i++;
          break;
        }
        if (c === escape && i + 1 < n && ['"', "$", escape].includes(text[i + 1])) {
          word += text[i + 1];
          i += 2;
        } else if (c === "$") {
          const [value, next] = variable(text, i, lookup, escape);
          word += value;
          i = next;
        } else {
          word += c;
          i++;
        }
      }
      if (!closed) {
        throw new ExpansionError(
          `unexpected end of statement while looking for matching double-quote`,
        );
      }
    } else if (ch === "$") {
      const [value, next] = variable(text, i, lookup, escape);
      word += value;
      i = next;
    } else {
      word += ch;
      i++;
    }
  }
  if (inWord) words.push(word);
  return split ? words : [words.join("")];
}

const NAME_START = /[A-Za-z_]/;
const NAME_CHAR = /[A-Za-z0-9_]/;

/** Expands the variable reference at `text[i] === "$"`; returns its value and the next index. */
function variable(text: string, i: number, lookup: Lookup, escape: string): [string, number] {
  const next = text[i + 1];
  if (next === "{") {
    let j = i + 2;
    const start = j;
    while (j < text.length && NAME_CHAR.test(text[j])) j++;
    const name = text.slice(start, j);
    if (!name) throw new ExpansionError(`bad substitution: ${text.slice(i)}`);
    if (text[j] === "}") return [lookup(name) ?? "", j + 1];
    let op = text[j];
    j++;
    if (op === ":" && "-+?".includes(text[j])) op += text[j++];
    if (!["-", "+", "?", ":-", ":+", ":?"].includes(op)) {
      throw new ExpansionError(`unsupported modifier (${op}) in substitution`);
    }
    // The word runs to the matching brace; it is itself expanded.
    let depth = 1;
    let k = j;
    while (k < text.length) {
      if (text[k] === escape) k++;
      else if (text[k] === "{") depth++;
      else if (text[k] === "}" && --depth === 0) break;
      k++;
    }
    if (k >= text.length) throw new ExpansionError(`missing '}' in ${text.slice(i)}`);
    const word = processWord(text.slice(j, k), lookup, { escape });
    const value = lookup(name);
    const set = op.startsWith(":") ? value !== undefined && value !== "" : value !== undefined;
    const kind = op.at(-1);
    if (kind === "-") return [set ? value! : word, k + 1];
    if (kind === "+") return [set ? word : "", k + 1];
    if (!set) throw new ExpansionError(`${name}: ${word || "parameter not set or null"}`);
    return [value!, k + 1];
  }
  if (next !== undefined && NAME_START.test(next)) {
    let j = i + 1;
    while (j < text.length && NAME_CHAR.test(text[j])) j++;
    return [lookup(text.slice(i + 1, j)) ?? "", j];
  }
  return ["$", i + 1];
}
