/**
 * docker's `--format` on top of the template evaluator: the `table` directive with its header
 * row and tabwriter columns, `json`, `\t`/`\n` escapes in list formats, `inspect -f` over each
 * object, and docker's messages and exit codes for a bad template.
 *
 * Loaded only when a command is given a template (see src/cli/formats.ts), so the plain listing
 * path does not pay for parsing templates.
 *
 * @module
 */
import { TsboxError } from "../../errors.ts";
import { tabwrite } from "../tabwriter.ts";
import { GoMap, HEADER_FUNCS, parse, type Template, TemplateExecError } from "./exec.ts";
import { TemplateParseError } from "./parse.ts";

/**
 * A template that does not parse or fails on the data. docker prints `template parsing error:
 * ...` in both cases and exits 1; `inspect` exits 64 for a template that does not parse.
 */
export class TemplateError extends TsboxError {
  override readonly exitCode: number;
  constructor(message: string, exitCode = 1) {
    super(`template parsing error: ${message}`);
    this.name = "TemplateError";
    this.exitCode = exitCode;
  }
}

function compile(source: string, exitCode: number): Template {
  try {
    return parse(source);
  } catch (err) {
    if (err instanceof TemplateParseError) throw new TemplateError(err.message, exitCode);
    throw err;
  }
}

/** docker's table header map: `{{.Label "a.b-c"}}` heads its column with `b c`. */
function headerData(headers: Record<string, string>): GoMap {
  return new GoMap(Object.entries(headers), {
    Label: (name: unknown) => String(name).split(".").pop()!.replace(/[-_]/g, " "),
  });
}

/**
 * Renders `rows` with a list format (docker's formatter.Context): `table ...` gets a header row
 * (each field's docker header, from `headers`) and aligned columns, `json` is `{{json .}}`, and
 * any other text is a template run once per row. Returns the whole output, each row ending
 * with a newline; nothing is returned when one row fails (docker prints nothing then either).
 */
export function formatList(
  format: string,
  rows: readonly unknown[],
  headers: Record<string, string>,
): string {
  const isTable = format.startsWith("table");
  let source = isTable ? format.slice("table".length) : format === "json" ? "{{json .}}" : format;
  source = source.replace(/^ +| +$/g, "").replaceAll("\\t", "\t").replaceAll("\\n", "\n");
  const tmpl = compile(source, 1);
  let body = "";
  for (const row of rows) {
    try {
      body += tmpl.execute(row) + "\n";
    } catch (err) {
      if (err instanceof TemplateExecError) throw new TemplateError(err.message);
      throw err;
    }
  }
  if (!isTable) return body;
  // docker runs the same template over the header names, with its text functions disabled.
  const header = tmpl.executePartial(headerData(headers), HEADER_FUNCS);
  return tabwrite(`${header}\n${body}`);
}

/**
 * `inspect -f`: each object through the template, one line each. Objects the template fails on
 * are reported in `errors` (docker prints them after the others and exits 1); an empty output
 * is one newline, as docker's. "" prints indented JSON and "json" compact JSON.
 */
export function formatInspect(
  format: string,
  objects: readonly unknown[],
): { out: string; errors: string[] } {
  const tmpl = compile(format, 64);
  let out = "";
  const errors: string[] = [];
  for (const obj of objects) {
    try {
      out += tmpl.execute(obj) + "\n";
    } catch (err) {
      if (!(err instanceof TemplateExecError)) throw err;
      errors.push(`template parsing error: ${err.message}`);
    }
  }
  return { out: out === "" ? "\n" : out, errors };
}

/**
 * `info -f` / `version -f`: one object through the template, then a newline. `json` is
 * `{{json .}}`. A template that does not parse exits 64, as docker's.
 */
export function formatOne(format: string, data: unknown): string {
  const tmpl = compile(format === "json" ? "{{json .}}" : format, 64);
  try {
    return tmpl.execute(data) + "\n";
  } catch (err) {
    if (err instanceof TemplateExecError) throw new TemplateError(err.message);
    throw err;
  }
}

/** Writes `text` to stdout as it is (no newline added). */
export function writeOut(text: string): void {
  const bytes = new TextEncoder().encode(text);
  let off = 0;
  while (off < bytes.length) off += Deno.stdout.writeSync(bytes.subarray(off));
}
