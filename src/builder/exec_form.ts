/**
 * The JSON exec form of an instruction's arguments (`["sh", "-c", "..."]`).
 *
 * @module
 */

/** Parses a JSON exec form; undefined when `args` is shell form. */
export function execForm(args: string): string[] | undefined {
  const t = args.trim();
  if (!t.startsWith("[")) return undefined;
  try {
    const v = JSON.parse(t);
    if (Array.isArray(v) && v.every((x) => typeof x === "string")) return v;
  } catch { /* shell form after all */ }
  return undefined;
}
