/**
 * `POST /build`: docker's classic builder API over `tsbox build`'s code. The request body is
 * the context tar, streamed into the builder (which unpacks it into the build's own directory);
 * the answer is docker's JSON stream (`{"stream": ...}` lines, `{"aux": {"ID": ...}}`, and
 * `{"error": ...}` when a step fails).
 *
 * @module
 */
import type { BuildEvent } from "../build/builder.ts";
import { familiar } from "../image/images.ts";
import type { ApiContext } from "./context.ts";
import { badParameter } from "./errors.ts";
import type { ApiRequest, ApiResponse } from "./http.ts";
import { flag } from "./params.ts";

/** Largest context accepted (spooled into the build directory as it is read). */
const MAX_CONTEXT = 8 * 1024 * 1024 * 1024;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A `buildargs`/`labels` parameter: a JSON object of strings (null values dropped). */
function stringMap(raw: string | null, name: string): Record<string, string> | undefined {
  if (raw === null || raw === "") return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw badParameter(`${name}: invalid JSON`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw badParameter(`${name}: expected an object`);
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(parsed)) {
    if (v === null) continue;
    if (typeof v !== "string") throw badParameter(`${name}.${k}: expected a string`);
    out[k] = v;
  }
  return out;
}

/** `POST /build?t&dockerfile&buildargs&labels&nocache&target&networkmode&q&platform`. */
export function build(ctx: ApiContext, req: ApiRequest): ApiResponse {
  const q = req.query;
  if (q.get("remote")) throw badParameter("remote build contexts are not supported by tsbox");
  const network = q.get("networkmode");
  if (network && !["default", "bridge", "host", "none"].includes(network)) {
    throw badParameter(`networkmode ${network}: tsbox builds with host or none`);
  }
  const buildArgs = stringMap(q.get("buildargs"), "buildargs");
  const labels = stringMap(q.get("labels"), "labels");
  const quiet = flag(q.get("q"));
  const lines: Uint8Array[] = [];
  let wake: (() => void) | undefined;
  let ended = false;
  const push = (value: unknown) => {
    lines.push(encoder.encode(JSON.stringify(value) + "\r\n"));
    wake?.();
  };
  const say = (text: string) => {
    if (!quiet) push({ stream: text });
  };
  const onProgress = (e: BuildEvent) => {
    switch (e.type) {
      case "warning":
        push({ stream: `WARNING: ${e.message}\n` });
        break;
      case "step":
        say(`Step ${e.step}/${e.total} : ${e.instruction}\n`);
        break;
      case "output":
        say(decoder.decode(e.data, { stream: true }));
        break;
      case "step-done":
        say(`${e.cached ? " ---> Using cache\n" : ""} ---> ${e.id}\n`);
        break;
      case "done":
        say(`Successfully built ${e.id.slice(7, 19)}\n`);
        for (const t of e.tags) say(`Successfully tagged ${familiar(t)}\n`);
        break;
    }
  };
  // Taken now, before this handler returns: the server drains a body nobody has claimed.
  const context = req.bodyStream(MAX_CONTEXT);
  const building = (async () => {
    const { buildImage } = await import("../build/builder.ts");
    const result = await buildImage(ctx.store, {
      contextArchive: context,
      dockerfile: q.get("dockerfile") || undefined,
      tags: q.getAll("t"),
      buildArgs,
      labels,
      noCache: flag(q.get("nocache")),
      target: q.get("target") || undefined,
      network: network === "none" ? "none" : "host",
      platform: q.get("platform") || undefined,
      insecure: ctx.globals.insecureRegistries,
      onProgress,
    });
    // This API sets no output: the result is always an image.
    const id = result.image!.id;
    push({ aux: { ID: id } });
    if (quiet) push({ stream: `${id}\n` });
  })().catch((err) => {
    const message = (err as Error).message ?? String(err);
    push({ errorDetail: { message }, error: message });
  }).finally(() => {
    ended = true;
    wake?.();
  });
  async function* body(): AsyncGenerator<Uint8Array> {
    for (;;) {
      while (lines.length > 0) yield lines.shift()!;
      if (ended) break;
      await new Promise<void>((r) => wake = r);
      wake = undefined;
    }
    await building;
  }
  return { status: 200, headers: { "Content-Type": "application/json" }, body: body() };
}
