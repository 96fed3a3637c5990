/**
 * Query parameters and bodies as dockerd reads them: booleans (`1`, `true`), the `filters`
 * JSON (`{"key":{"value":true}}`, or the older `{"key":["value"]}`) and JSON bodies.
 *
 * @module
 */
import { parseTimeFilter } from "../container/logs.ts";
import { badParameter } from "./errors.ts";
import type { ApiRequest } from "./http.ts";

/** docker's boolean query values: absent, "", "0", "false" and "no" are false. */
export function flag(value: string | null): boolean {
  if (value === null) return false;
  return !["", "0", "false", "no", "False", "FALSE"].includes(value.trim());
}

/** The `filters` parameter as the CLI's `KEY=VALUE` list (src/cli/filters.ts). */
export function filterValues(raw: string | null): string[] {
  if (raw === null || raw === "") return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw badParameter(`invalid filter: ${raw.slice(0, 200)}`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw badParameter("invalid filter: expected an object");
  }
  const out: string[] = [];
  for (const [key, values] of Object.entries(parsed)) {
    const list = Array.isArray(values)
      ? values
      : typeof values === "object" && values !== null
      ? Object.entries(values).filter(([, on]) => on === true).map(([v]) => v)
      : undefined;
    if (!list || list.some((v) => typeof v !== "string")) {
      throw badParameter(`invalid filter '${key}'`);
    }
    for (const v of list) out.push(`${key}=${v}`);
  }
  return out;
}

/** The request's JSON body (null when empty); 400 with docker's message when it is not JSON. */
export async function parseJsonBody(req: ApiRequest): Promise<unknown> {
  const bytes = await req.body();
  if (bytes.length === 0) return null;
  try {
    return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (err) {
    throw badParameter(`invalid JSON: ${(err as Error).message}`);
  }
}

/** `until=` values (Unix seconds, RFC 3339, or a Go duration before now) as ms. */
export function untilTimes(values: readonly string[] | undefined): number[] {
  return (values ?? []).map((v) => {
    try {
      return parseTimeFilter(v);
    } catch {
      throw badParameter(`invalid filter 'until=${v}'`);
    }
  });
}
