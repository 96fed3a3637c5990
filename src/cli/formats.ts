/**
 * `--format` for the listing commands: the default table stays on the light path; any other
 * format (`json`, `table ...`, a template) loads the template engine on demand.
 *
 * @module
 */
import { lazyImport } from "../lazy.ts";

/** The template engine, loaded by a computed name (src/lazy.ts) when a format needs it. */
const templates = () =>
  lazyImport<typeof import("./template/docker.ts")>(
    new URL("./template/docker.ts", import.meta.url),
  );
const inspectData = () =>
  lazyImport<typeof import("./template/inspect_data.ts")>(
    new URL("./template/inspect_data.ts", import.meta.url),
  );

/** The help text of a listing command's `--format`. */
export const FORMAT_HELP =
  "format output: 'table', 'table TEMPLATE' (with a header), 'json', or a Go template";

/** No `--format`, or docker's `table` keyword alone: the command's own default table. */
export function isDefaultTable(format: string | undefined): boolean {
  return format === undefined || format === "" || format === "table";
}

/** Prints `rows` through `format` as docker's formatter does (see template/docker.ts). */
export async function printList(
  format: string,
  rows: readonly unknown[],
  headers: Record<string, string>,
): Promise<void> {
  const { formatList, writeOut } = await templates();
  writeOut(formatList(format, rows, headers));
}

/** Prints one object through `format` followed by a newline (`info`, `version`). */
export async function printOne(format: string, data: unknown): Promise<void> {
  const { formatOne, writeOut } = await templates();
  writeOut(formatOne(format, data));
}

/**
 * Prints inspect objects: indented JSON without a format, compact JSON for `json`, else each
 * object through the template. Returns 1 if the template failed on one (docker's code).
 */
export async function printInspect(
  format: string | undefined,
  objects: readonly unknown[],
): Promise<number> {
  if (format === undefined || format === "") {
    console.log(JSON.stringify(objects, null, 4));
    return 0;
  }
  if (format === "json") {
    console.log(JSON.stringify(objects));
    return 0;
  }
  const { formatInspect, writeOut } = await templates();
  const { inspectTemplateData } = await inspectData();
  const { out, errors } = formatInspect(format, objects.map((o) => inspectTemplateData(o)));
  writeOut(out);
  for (const e of errors) console.error(e);
  return errors.length > 0 ? 1 : 0;
}
