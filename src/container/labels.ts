/**
 * Container labels as docker takes them: `--label K=V` / `-l K` (an empty value) and
 * `--label-file F` (lines `K=V`, `#` comments), checked as docker's CLI checks them, then merged
 * with the image's labels at create time (the container's win), so that the record holds what
 * `inspect`, `ps --format '{{.Labels}}'` and `ps --filter label=` all read.
 *
 * @module
 */
import { UsageError } from "../errors.ts";

/** Docker's `whiteSpaces` (opts/opts.go): a label key may hold none of them. */
const WHITESPACE = /[ \t\n\v\f\r]/;

/**
 * Checks one `--label` value as docker's `opts.ValidateLabel`: the key (before the first `=`,
 * trimmed) must be non-empty and free of whitespace. Returns `[key, value]`; `K` alone has the
 * empty value, as docker stores it.
 */
export function parseLabel(value: string): [string, string] {
  const i = value.indexOf("=");
  const rawKey = i < 0 ? value : value.slice(0, i);
  const key = rawKey.trim();
  if (key === "") throw new UsageError(`invalid label '${value}': empty name`);
  if (WHITESPACE.test(key)) throw new UsageError(`label '${key}' contains whitespaces`);
  return [key, i < 0 ? "" : value.slice(i + 1)];
}

/**
 * The `K=V` strings of a label file, as docker's `parseKeyValueFile` reads it: leading
 * whitespace dropped, blank and `#` lines skipped, the key's leading whitespace trimmed and no
 * whitespace allowed inside it; the value is kept as written.
 */
export function parseLabelFile(text: string, path: string): string[] {
  const out: string[] = [];
  const lines = text.replace(/^\uFEFF/, "").split("\n");
  lines.forEach((raw, n) => {
    const line = raw.replace(/\r$/, "").trimStart();
    if (line === "" || line.startsWith("#")) return;
    const i = line.indexOf("=");
    const key = (i < 0 ? line : line.slice(0, i)).trimStart();
    if (WHITESPACE.test(key)) {
      throw new UsageError(`${path}:${n + 1}: label '${key}' contains whitespaces`);
    }
    if (key === "") throw new UsageError(`${path}:${n + 1}: no label name on line '${line}'`);
    out.push(i < 0 ? key : `${key}=${line.slice(i + 1)}`);
  });
  return out;
}

/** `--label-file` that cannot be read, named as docker names it (`open F: ...`). */
async function readLabelFile(path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (err) {
    const reason = err instanceof Deno.errors.NotFound
      ? "no such file or directory"
      : err instanceof Deno.errors.PermissionDenied
      ? "permission denied"
      : err instanceof Deno.errors.IsADirectory
      ? "is a directory"
      : (err as Error).message.replace(/ \(os error \d+\).*$/, "").toLowerCase();
    throw new UsageError(`open ${path}: ${reason}`);
  }
}

/**
 * The labels of `--label-file`s then `--label`s, later ones overriding earlier ones (docker reads
 * the files first). Empty when neither is given.
 */
export async function labelsFromFlags(
  labels: readonly string[] = [],
  files: readonly string[] = [],
): Promise<Record<string, string>> {
  const values: string[] = [];
  for (const file of files) values.push(...parseLabelFile(await readLabelFile(file), file));
  values.push(...labels);
  const out: Record<string, string> = {};
  for (const v of values) {
    const [k, val] = parseLabel(v);
    out[k] = val;
  }
  return out;
}

/**
 * docker's merge at create time (daemon/create.go): the image's labels, with the container's
 * own over them.
 */
export function mergeLabels(
  image: Readonly<Record<string, string>> | null | undefined,
  own: Readonly<Record<string, string>>,
): Record<string, string> {
  return { ...(image ?? {}), ...own };
}

/** docker's `k=v,k2=v2` of a `Labels` column (sorted: Go's map order is random anyway). */
export function labelsColumn(labels: Readonly<Record<string, string>>): string {
  return Object.keys(labels).sort().map((k) => `${k}=${labels[k]}`).join(",");
}
