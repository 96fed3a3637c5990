/**
 * The `/volumes` endpoints, over the code of `tsbox volume create|ls|inspect|rm|prune`.
 *
 * @module
 */
import { inspectVolume, volumeFilter } from "../cli/volume_actions.ts";
import {
  createVolume,
  listVolumes,
  pruneVolumes,
  removeVolume,
  requireVolume,
} from "../container/volumes.ts";
import type { ApiContext } from "./context.ts";
import { badParameter } from "./errors.ts";
import { type ApiRequest, type ApiResponse, json } from "./http.ts";
import { filterValues, flag, parseJsonBody } from "./params.ts";

/** `GET /volumes?filters`. */
export function list(ctx: ApiContext, req: ApiRequest): ApiResponse {
  const keep = volumeFilter(ctx.store, filterValues(req.query.get("filters")));
  return json(200, {
    Volumes: listVolumes(ctx.store).filter(keep).map(inspectVolume),
    Warnings: [],
  });
}

/** `POST /volumes/create`: 201 with the volume (an existing one of that name is returned). */
export async function create(ctx: ApiContext, req: ApiRequest): Promise<ApiResponse> {
  const body = await parseJsonBody(req) ?? {};
  if (typeof body !== "object" || Array.isArray(body)) throw badParameter("volume config expected");
  const b = body as Record<string, unknown>;
  const name = b.Name ?? undefined;
  if (name !== undefined && typeof name !== "string") throw badParameter("Name: expected a string");
  if (b.Driver !== undefined && b.Driver !== null && b.Driver !== "" && b.Driver !== "local") {
    throw badParameter(`volume driver "${b.Driver}" is not supported (only local)`);
  }
  const labels = b.Labels ?? {};
  if (
    typeof labels !== "object" || labels === null || Array.isArray(labels) ||
    Object.values(labels).some((v) => typeof v !== "string")
  ) {
    throw badParameter("Labels: expected an object of strings");
  }
  const { volume } = createVolume(ctx.store, {
    name: name || undefined,
    labels: labels as Record<string, string>,
  });
  return json(201, inspectVolume(volume));
}

/** `GET /volumes/{name}`. */
export function inspect(ctx: ApiContext, _req: ApiRequest, name: string): ApiResponse {
  return json(200, inspectVolume(requireVolume(ctx.store, name)));
}

/** `DELETE /volumes/{name}?force`: 409 while a container uses it. */
export async function remove(ctx: ApiContext, req: ApiRequest, name: string) {
  requireVolume(ctx.store, name);
  await removeVolume(ctx.store, name, { force: flag(req.query.get("force")) });
  return { status: 204 };
}

/**
 * `POST /volumes/prune`: API 1.41 removes every unused volume (named ones too), as dockerd
 * before 23 did; `filters={"all":["false"]}` keeps named ones (1.42's default).
 */
export async function prune(ctx: ApiContext, req: ApiRequest) {
  const values = filterValues(req.query.get("filters"));
  const all = values.find((v) => v.startsWith("all="));
  if (values.some((v) => !v.startsWith("all="))) {
    throw badParameter("volume prune: only the all filter is supported by tsbox");
  }
  const { removed, bytes } = await pruneVolumes(ctx.store, {
    all: all === undefined ? true : flag(all.slice(4)),
  });
  return json(200, { VolumesDeleted: removed, SpaceReclaimed: bytes });
}
