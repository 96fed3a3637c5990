/**
 * `GET /events`: docker's event stream, derived from state changes. tsbox has no daemon that
 * sees every change happen (any tsbox process or supervisor may make one), so the service
 * watches the store: each poll compares containers and images with the last, and reports what
 * changed as docker's messages (create, start, die, pause, unpause, destroy; tag, untag,
 * delete). Events from before the stream opened are not kept.
 *
 * @module
 */
import { type ContainerRecord, listContainers } from "../container/state.ts";
import { familiar } from "../image/images.ts";
import type { ApiContext } from "./context.ts";
import { badParameter } from "./errors.ts";
import type { ApiRequest, ApiResponse } from "./http.ts";
import { filterValues } from "./params.ts";

const POLL_MS = 250;
const encoder = new TextEncoder();

interface Seen {
  readonly state: string;
  readonly startedAt?: number;
  readonly finishedAt?: number;
  readonly record: ContainerRecord;
}

/** One docker event message. */
interface EventMessage {
  readonly Type: "container" | "image";
  readonly Action: string;
  readonly id: string;
  readonly attributes: Record<string, string>;
  readonly from?: string;
}

function containerEvents(before: Map<string, Seen>, now: Map<string, Seen>): EventMessage[] {
  const out: EventMessage[] = [];
  const ev = (c: ContainerRecord, action: string, extra: Record<string, string> = {}) =>
    out.push({
      Type: "container",
      Action: action,
      id: c.id,
      from: c.imageName,
      attributes: { image: c.imageName, name: c.name, ...(c.config.labels ?? {}), ...extra },
    });
  for (const [id, s] of now) {
    const old = before.get(id);
    if (!old) ev(s.record, "create");
    if (old?.finishedAt !== s.finishedAt && s.finishedAt !== undefined && old !== undefined) {
      ev(s.record, "die", { exitCode: String(s.record.exitCode ?? 0) });
    }
    if (s.startedAt !== undefined && old?.startedAt !== s.startedAt) ev(s.record, "start");
    if (old && old.state !== "paused" && s.state === "paused") ev(s.record, "pause");
    if (old?.state === "paused" && s.state === "running") ev(s.record, "unpause");
  }
  for (const [id, s] of before) if (!now.has(id)) ev(s.record, "destroy");
  return out;
}

function imageEvents(before: Map<string, string[]>, now: Map<string, string[]>): EventMessage[] {
  const out: EventMessage[] = [];
  const ev = (id: string, action: string, name?: string) =>
    out.push({ Type: "image", Action: action, id: name ?? id, attributes: name ? { name } : {} });
  for (const [id, tags] of now) {
    const old = before.get(id);
    for (const t of tags) if (!old?.includes(t)) ev(id, old ? "tag" : "pull", t);
    for (const t of old ?? []) if (!tags.includes(t)) ev(id, "untag", t);
  }
  for (const [id, tags] of before) {
    if (now.has(id)) continue;
    for (const t of tags) ev(id, "untag", t);
    ev(id, "delete");
  }
  return out;
}

function snapshot(ctx: ApiContext) {
  const containers = new Map<string, Seen>(
    listContainers(ctx.store).map((c) => [c.id, {
      state: c.state,
      startedAt: c.startedAt,
      finishedAt: c.finishedAt,
      record: c,
    }]),
  );
  const images = new Map(ctx.store.listImages().map((i) => [i.id, i.tags.map(familiar)]));
  return { containers, images };
}

/** `GET /events?since&until&filters` (type, container, image, event). */
export function events(ctx: ApiContext, req: ApiRequest): ApiResponse {
  const filters = new Map<string, string[]>();
  for (const f of filterValues(req.query.get("filters"))) {
    const i = f.indexOf("=");
    const key = f.slice(0, i);
    if (!["type", "container", "image", "event"].includes(key)) {
      throw badParameter(`invalid filter '${key}'`);
    }
    filters.set(key, [...(filters.get(key) ?? []), f.slice(i + 1)]);
  }
  const untilRaw = req.query.get("until");
  const until = untilRaw && untilRaw !== "0" ? Number(untilRaw) * 1000 : undefined;
  if (until !== undefined && !Number.isFinite(until)) {
    throw badParameter(`invalid until: ${untilRaw}`);
  }
  const keep = (e: EventMessage) => {
    const any = (key: string, test: (v: string) => boolean) =>
      !filters.has(key) || filters.get(key)!.some(test);
    return any("type", (v) => v === e.Type) &&
      any("event", (v) => v === e.Action) &&
      any(
        "container",
        (v) => e.Type === "container" && (e.id.startsWith(v) || e.attributes.name === v),
      ) &&
      any("image", (v) => e.from === v || e.attributes.name === v || e.id.startsWith(v));
  };
  async function* body(): AsyncGenerator<Uint8Array> {
    let last = snapshot(ctx);
    while (!req.signal.aborted && (until === undefined || Date.now() < until)) {
      await new Promise((r) => setTimeout(r, POLL_MS));
      const now = snapshot(ctx);
      const found = [
        ...containerEvents(last.containers, now.containers),
        ...imageEvents(last.images, now.images),
      ];
      last = now;
      const nanos = BigInt(Date.now()) * 1_000_000n;
      for (const e of found.filter(keep)) {
        const message = {
          status: e.Action,
          id: e.id,
          ...(e.from ? { from: e.from } : {}),
          Type: e.Type,
          Action: e.Action,
          Actor: { ID: e.id, Attributes: e.attributes },
          scope: "local",
          time: Number(nanos / 1_000_000_000n),
          timeNano: Number(nanos),
        };
        yield encoder.encode(JSON.stringify(message) + "\n");
      }
    }
  }
  return { status: 200, headers: { "Content-Type": "application/json" }, body: body() };
}
