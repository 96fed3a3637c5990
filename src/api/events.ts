/**
 * `GET /events`: the store's event log (src/events/log.ts, written by whichever tsbox process
 * or supervisor made each change), as `tsbox events` reads it: the recorded events since
 * `since`, then new ones as they are appended, until `until` or the client goes away.
 *
 * @module
 */
import { eventMatches, parseEventFilters } from "../events/filter.ts";
import { followEvents, readEvents, type TsboxEvent } from "../events/log.ts";
import type { ApiContext } from "./context.ts";
import { badParameter } from "./errors.ts";
import type { ApiRequest, ApiResponse } from "./http.ts";
import { filterValues } from "./params.ts";

const encoder = new TextEncoder();

/** docker's `since`/`until`: Unix seconds (fractions allowed); "" and "0" are not given. */
function seconds(raw: string | null, name: string): number | undefined {
  if (raw === null || raw === "" || raw === "0") return undefined;
  if (!/^\d+(\.\d+)?$/.test(raw)) throw badParameter(`invalid ${name}: ${raw}`);
  return Number(raw) * 1000;
}

/** `GET /events?since&until&filters`. */
export function events(ctx: ApiContext, req: ApiRequest): ApiResponse {
  const since = seconds(req.query.get("since"), "since");
  const until = seconds(req.query.get("until"), "until");
  const filters = parseEventFilters(filterValues(req.query.get("filters")));
  const root = ctx.store.root;
  const line = (e: TsboxEvent) => encoder.encode(JSON.stringify(e) + "\n");
  const ms = (e: TsboxEvent) => e.timeNano / 1e6;
  async function* body(): AsyncGenerator<Uint8Array> {
    const { events, offset } = readEvents(root);
    // Without `since` only what happens from now on, as dockerd.
    if (since !== undefined) {
      for (const e of events) {
        if (ms(e) >= since && (until === undefined || ms(e) <= until) && eventMatches(e, filters)) {
          yield line(e);
        }
      }
    }
    if (until !== undefined && until <= Date.now()) return;
    const signals = [req.signal];
    if (until !== undefined) signals.push(AbortSignal.timeout(Math.max(0, until - Date.now())));
    for await (const e of followEvents(root, offset, AbortSignal.any(signals))) {
      if (until !== undefined && ms(e) > until) return;
      if (eventMatches(e, filters)) yield line(e);
    }
  }
  return { status: 200, headers: { "Content-Type": "application/json" }, body: body() };
}
