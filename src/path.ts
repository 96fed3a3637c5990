/**
 * POSIX path joining without `node:path`: importing any `node:` path module boots Deno's
 * node-compat layer (tens of millions of instructions), which the container start path would
 * pay only for string concatenation. Behaves as `node:path`'s posix `join` and `normalize`.
 *
 * @module
 */

/** Normalizes a POSIX path: collapses `//`, `.` and `dir/..`, keeps one trailing slash. */
export function normalize(path: string): string {
  if (path === "") return ".";
  const absolute = path.startsWith("/");
  const trailing = path.endsWith("/");
  const out: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (out.length > 0 && out[out.length - 1] !== "..") out.pop();
      else if (!absolute) out.push("..");
      continue;
    }
    out.push(part);
  }
  let result = out.join("/");
  if (result === "" && !absolute) result = ".";
  if (trailing && result !== "" && result !== ".") result += "/";
  else if (trailing && result === "." && !absolute) result = "./";
  return absolute ? `/${result}` : result;
}

/** Joins POSIX path segments and normalizes the result, as `node:path`'s `join` does. */
export function join(...parts: string[]): string {
  const joined = parts.filter((p) => p !== "").join("/");
  return joined === "" ? "." : normalize(joined);
}
