/**
 * The `/images/...` endpoints, over the code of `tsbox images|pull|tag|rmi|image inspect`.
 *
 * @module
 */
import { familiarRepository, parseReference } from "../../registry/reference.ts";
import { loadRegistriesConf, qualifyName } from "../../registry/registries_conf.ts";
import { containerUsingImage } from "../container/state.ts";
import {
  familiar,
  familiarDigest,
  inspectImage,
  removeImage,
  requireImage,
  tagImage,
} from "../image/images.ts";
import { type PullEvent, pullImage } from "../image/pull.ts";
import type { PushEvent } from "../image/push.ts";
import type { ImageRecord } from "../store/mod.ts";
import { imageFilter } from "../cli/image_filters.ts";
import { clientForRequest } from "./auth.ts";
import type { ApiContext } from "./context.ts";
import { errorResponse } from "./errors.ts";
import { badParameter } from "./errors.ts";
import { type ApiRequest, type ApiResponse, HttpError, json } from "./http.ts";
import { filterValues, flag } from "./params.ts";

const encoder = new TextEncoder();

function createdSeconds(image: ImageRecord): number {
  const t = image.created ? Date.parse(image.created) : NaN;
  return Number.isNaN(t) ? 0 : Math.floor(t / 1000);
}

/** `GET /images/json?all&filters`. */
export function list(ctx: ApiContext, req: ApiRequest): ApiResponse {
  const values = filterValues(req.query.get("filters"));
  // API < 1.25's `filter=NAME` is `reference=NAME`.
  const legacy = req.query.get("filter");
  if (legacy) values.push(`reference=${legacy}`);
  const filter = imageFilter(ctx.store, values);
  const out = [];
  const all = ["1", "true"].includes(req.query.get("all") ?? "");
  for (const image of ctx.store.listImages()) {
    if (!filter.keepImage(image)) continue;
    // A multi-platform build's other variants: listed under the index's name only.
    if (!all && image.tags.length === 0 && ctx.store.inIndex(image.id)) continue;
    const tags = image.tags.map(familiar).filter((t) => filter.keepTag(t));
    if (filter.byReference && tags.length === 0) continue;
    out.push(imageSummary(image, tags));
  }
  return json(200, out);
}

/** An image as `GET /images/json` lists it (`tags`: those the filters kept). */
export function imageSummary(
  image: ImageRecord,
  tags = image.tags.map(familiar),
): Record<string, unknown> {
  return {
    Id: image.id,
    ParentId: "",
    RepoTags: tags,
    RepoDigests: image.digests.map(familiarDigest),
    Created: createdSeconds(image),
    Size: image.size,
    VirtualSize: image.size,
    SharedSize: -1,
    Labels: image.config.config?.Labels ?? {},
    Containers: -1,
  };
}

/** `GET /images/{name}/json`. */
export function inspect(ctx: ApiContext, _req: ApiRequest, name: string): ApiResponse {
  const image = requireImage(ctx.store, name);
  const out = inspectImage(image);
  // API 1.41 (dockerd 20.10) still shows the config of the container that made the last layer;
  // compose 1.29 reads its Volumes when it recreates a container (a KeyError without it). The
  // image's own `container_config` where it has one, else a copy of Config.
  const raw = (image.config as { container_config?: Record<string, unknown> }).container_config;
  return json(200, {
    ...out,
    Container: "",
    ContainerConfig: raw && typeof raw === "object" ? raw : { ...out.Config },
    VirtualSize: out.Size,
    GraphDriver: { Name: "overlay2", Data: null },
  });
}

/** `POST /images/{name}/tag?repo&tag`: 201. */
export function tag(ctx: ApiContext, req: ApiRequest, name: string): ApiResponse {
  const repo = req.query.get("repo");
  if (!repo) throw badParameter("repository name must have at least one component");
  const t = req.query.get("tag");
  try {
    tagImage(ctx.store, name, t ? `${repo}:${t}` : repo);
  } catch (err) {
    if ((err as Error).name === "ReferenceError" || /invalid reference/i.test(String(err))) {
      throw badParameter((err as Error).message);
    }
    throw err;
  }
  return { status: 201 };
}

/** `DELETE /images/{name}?force`: what was untagged and deleted. */
export async function remove(ctx: ApiContext, req: ApiRequest, name: string) {
  const actions = await removeImage(ctx.store, name, {
    force: flag(req.query.get("force")),
    inUse: (id) => containerUsingImage(ctx.store, id),
  });
  return json(
    200,
    actions.map((a) => "untagged" in a ? { Untagged: a.untagged } : { Deleted: a.deleted }),
  );
}

/** docker's progress bar text for a layer's download. */
function bar(current: number, total: number): string {
  const width = 50;
  const done = total > 0 ? Math.min(width, Math.floor((current / total) * width)) : 0;
  const arrow = done < width ? ">" : "";
  return `[${"=".repeat(Math.max(0, done - (arrow ? 1 : 0)))}${arrow}${
    " ".repeat(width - done)
  }] ${current}B/${total}B`;
}

/** A pull event as one of docker's JSON progress messages. */
export function progressMessage(e: PullEvent): Record<string, unknown> | undefined {
  if (e.type !== "layer") return undefined;
  const detail = e.current !== undefined && e.total !== undefined
    ? { current: e.current, total: e.total }
    : {};
  return {
    status: e.status,
    progressDetail: detail,
    ...(e.status === "Downloading" && e.total ? { progress: bar(e.current ?? 0, e.total) } : {}),
    id: e.id,
  };
}

/** A small queue from the pull's callbacks to the response stream. */
class Lines {
  #items: Uint8Array[] = [];
  #wake?: () => void;
  #ended = false;
  push(value: unknown): void {
    this.#items.push(encoder.encode(JSON.stringify(value) + "\r\n"));
    this.#wake?.();
  }
  end(): void {
    this.#ended = true;
    this.#wake?.();
  }
  async *drain(): AsyncGenerator<Uint8Array> {
    for (;;) {
      while (this.#items.length > 0) yield this.#items.shift()!;
      if (this.#ended) return;
      await new Promise<void>((r) => this.#wake = r);
      this.#wake = undefined;
    }
  }
}

/**
 * `POST /images/create?fromImage&tag&platform`: a pull, answered with docker's JSON progress
 * stream. A pull that fails before its first message (an unknown image, a registry that does
 * not answer) gets a plain error status, as dockerd's; later failures end the stream with
 * docker's `{"error": ...}` message.
 */
export async function create(ctx: ApiContext, req: ApiRequest): Promise<ApiResponse> {
  const from = req.query.get("fromImage");
  if (!from) {
    if (req.query.get("fromSrc")) {
      throw new HttpError(501, "image import is not supported by tsbox");
    }
    throw badParameter("fromImage or fromSrc is required");
  }
  const t = req.query.get("tag") ?? "";
  let name = from;
  if (t && !/@/.test(from)) name = t.startsWith("sha256:") ? `${from}@${t}` : `${from}:${t}`;
  const registries = await loadRegistriesConf();
  let ref;
  try {
    ref = parseReference(qualifyName(registries, name));
  } catch (err) {
    throw badParameter((err as Error).message);
  }
  const lines = new Lines();
  lines.push({ status: `Pulling from ${familiarRepository(ref)}`, id: ref.digest ?? ref.tag });
  let failure: unknown;
  const progressed = Promise.withResolvers<string>();
  const client = clientForRequest(ctx, req);
  const pulling = pullImage(ctx.store, name, {
    client,
    insecure: ctx.globals.insecureRegistries,
    registries,
    platform: req.query.get("platform") || undefined,
    onProgress: (e) => {
      progressed.resolve("progress");
      const m = progressMessage(e);
      if (m) lines.push(m);
    },
  }).then((result) => {
    lines.push({ status: `Digest: ${result.digest}` });
    lines.push({
      status: result.upToDate
        ? `Status: Image is up to date for ${ref.familiar()}`
        : `Status: Downloaded newer image for ${ref.familiar()}`,
    });
  }, (err) => {
    failure = err;
  }).finally(() => lines.end());
  // Wait for the registry's first answer: a failure before it gets its own status code.
  const first = await Promise.race([pulling.then(() => "done"), progressed.promise]);
  if (first === "done" && failure !== undefined) return errorResponse(failure);
  async function* body(): AsyncGenerator<Uint8Array> {
    yield* lines.drain();
    await pulling;
    if (failure !== undefined) {
      const message = (failure as Error).message ?? String(failure);
      yield encoder.encode(JSON.stringify({ errorDetail: { message }, error: message }) + "\r\n");
    }
  }
  return { status: 200, headers: { "Content-Type": "application/json" }, body: body() };
}

/** `GET /images/{name}/history`: newest step first, as `tsbox history`. */
export async function history(ctx: ApiContext, _req: ApiRequest, name: string) {
  const { imageHistory } = await import("../image/history.ts");
  const image = requireImage(ctx.store, name);
  return json(
    200,
    imageHistory(image).map((h) => ({
      Id: h.id,
      Created: h.created ? Math.floor(Date.parse(h.created) / 1000) || 0 : 0,
      CreatedBy: h.createdBy,
      Tags: h.id === image.id ? image.tags.map(familiar) : null,
      Size: h.size,
      Comment: h.comment,
    })),
  );
}

/** A push event as one of docker's JSON progress messages. */
function pushMessage(e: PushEvent): Record<string, unknown> {
  const detail = e.current !== undefined && e.total !== undefined
    ? { current: e.current, total: e.total }
    : {};
  return {
    status: e.status === "Mounted from" ? `Mounted from ${e.from}` : e.status,
    progressDetail: detail,
    ...(e.status === "Pushing" && e.total ? { progress: bar(e.current ?? 0, e.total) } : {}),
    id: e.id,
  };
}

/**
 * `POST /images/{name}/push?tag`: `tsbox push` with docker's JSON progress stream; without a
 * tag, every tag of the repository the store has. Credentials: the client's X-Registry-Auth,
 * else those tsbox stores (`tsbox login`).
 */
export async function push(ctx: ApiContext, req: ApiRequest, name: string): Promise<ApiResponse> {
  let repo;
  try {
    repo = parseReference(name);
  } catch (err) {
    throw badParameter((err as Error).message);
  }
  const tag = req.query.get("tag");
  let names: string[];
  if (tag) {
    names = [`${repo.repository}:${tag}`];
  } else {
    names = ctx.store.listImages().flatMap((i) => i.tags).filter((t) =>
      parseReference(t).repository === repo.repository
    );
  }
  for (const n of names) requireImage(ctx.store, n);
  if (names.length === 0) {
    throw new HttpError(404, `An image does not exist locally with the tag: ${name}`);
  }
  const { pushImage } = await import("../image/push.ts");
  const client = clientForRequest(ctx, req);
  const lines = new Lines();
  lines.push({ status: `The push refers to repository [${repo.repository}]` });
  const pushing = (async () => {
    for (const n of names) {
      const result = await pushImage(ctx.store, n, {
        client,
        insecure: ctx.globals.insecureRegistries,
        onProgress: (e) => lines.push(pushMessage(e)),
      });
      const t = result.reference.tag ?? "latest";
      lines.push({ status: `${t}: digest: ${result.digest} size: ${result.size}` });
      lines.push({
        progressDetail: {},
        aux: { Tag: t, Digest: result.digest, Size: result.size },
      });
    }
  })().catch((err) => {
    const message = (err as Error).message ?? String(err);
    lines.push({ errorDetail: { message }, error: message });
  }).finally(() => lines.end());
  async function* body(): AsyncGenerator<Uint8Array> {
    yield* lines.drain();
    await pushing;
  }
  return { status: 200, headers: { "Content-Type": "application/json" }, body: body() };
}

/** Largest archive `images/load` accepts (its layers are spooled to disk as it is read). */
const MAX_LOAD = 64 * 1024 * 1024 * 1024;

/** `GET /images/{name}/get` and `GET /images/get?names=...`: a docker-archive tar stream. */
export async function save(ctx: ApiContext, req: ApiRequest, name?: string) {
  const names = name !== undefined ? [name] : req.query.getAll("names");
  if (names.length === 0) throw badParameter("names is required");
  const { saveImages } = await import("../image/save.ts");
  // Every name is resolved first: an unknown image is a 404 before any byte.
  for (const n of names) requireImage(ctx.store, n);
  // API 1.48: `platform`, each a JSON OCI platform, picks a multi-platform image's variants.
  const platforms = req.query.getAll("platform").filter((v) => v !== "").map((v) => {
    try {
      const p = JSON.parse(v) as { os?: unknown; architecture?: unknown; variant?: unknown };
      if (typeof p.os !== "string" || typeof p.architecture !== "string") throw new Error();
      return {
        os: p.os,
        architecture: p.architecture,
        variant: typeof p.variant === "string" ? p.variant : undefined,
      };
    } catch {
      throw badParameter(`invalid platform ${JSON.stringify(v)}: a JSON OCI platform`);
    }
  });
  const stream = saveImages(ctx.store, names, {
    platforms: platforms.length > 0 ? platforms : undefined,
  });
  async function* body(): AsyncGenerator<Uint8Array> {
    const reader = stream.getReader();
    try {
      for (;;) {
        if (req.signal.aborted) return;
        const { value, done } = await reader.read();
        if (done) return;
        yield value;
      }
    } finally {
      await reader.cancel().catch(() => {});
    }
  }
  return { status: 200, headers: { "Content-Type": "application/x-tar" }, body: body() };
}

/** `POST /images/load?quiet`: a docker-archive or OCI layout tar, all or nothing. */
export async function load(ctx: ApiContext, req: ApiRequest): Promise<ApiResponse> {
  const { loadImages } = await import("../image/load.ts");
  const loaded = await loadImages(ctx.store, req.bodyStream(MAX_LOAD));
  const lines = loaded.flatMap((image) =>
    image.tags.length === 0
      ? [`Loaded image ID: ${image.id}`]
      : image.tags.map((t) => `Loaded image: ${familiar(t)}`)
  );
  return {
    status: 200,
    headers: { "Content-Type": "application/json" },
    body: lines.map((l) => JSON.stringify({ stream: `${l}\n` })).join("\r\n") + "\r\n",
  };
}
