/**
 * `POST /build`: docker's classic builder API over `tsbox build`'s code. The request body is
 * the context tar, streamed into the builder (which unpacks it into the build's own directory);
 * the answer is docker's JSON stream (`{"stream": ...}` lines, `{"aux": {"ID": ...}}`, and
 * `{"error": ...}` when a step fails).
 *
 * @module
 */
import type { BuildEvent } from "../builder/builder.ts";
import type { CacheSpec } from "../builder/cache_io.ts";
import { familiar } from "../image/images.ts";
import type { ApiContext } from "./context.ts";
import { badParameter } from "./errors.ts";
import type { ApiRequest, ApiResponse } from "./http.ts";
import { flag } from "./params.ts";
import { progressMessage } from "./images.ts";
import { RegistryClient } from "../../registry/client.ts";
import { credentialsFromConfig } from "../../registry/auth.ts";
import { VERSION } from "../version.ts";

/** Largest context accepted (spooled into the build directory as it is read). */
const MAX_CONTEXT = 8 * 1024 * 1024 * 1024;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A `buildargs`/`labels` parameter: a JSON object of strings (null values dropped). */
function stringMap(raw: string | null, name: string): Record<string, string> | undefined {
  if (raw === null || raw === "" || raw === "null") return undefined;
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

/**
 * The `X-Registry-Config` header (base64url JSON: registry address to auth config, docker's
 * config.json `auths`): a client that pulls base images with those credentials, or undefined
 * (then the credentials tsbox stores apply, as for the CLI).
 */
function clientForBuild(ctx: ApiContext, req: ApiRequest): RegistryClient | undefined {
  const header = req.headers.get("x-registry-config");
  if (!header) return undefined;
  let auths: unknown;
  try {
    const b64 = header.replaceAll("-", "+").replaceAll("_", "/");
    const padded = b64 + "=".repeat((4 - b64.length % 4) % 4);
    auths = JSON.parse(
      new TextDecoder().decode(Uint8Array.from(atob(padded), (c) => c.charCodeAt(0))),
    );
  } catch {
    throw badParameter("invalid X-Registry-Config header");
  }
  if (typeof auths !== "object" || auths === null || Array.isArray(auths)) {
    throw badParameter("invalid X-Registry-Config header: expected an object");
  }
  if (Object.keys(auths).length === 0) return undefined;
  return new RegistryClient({
    insecure: [...ctx.globals.insecureRegistries],
    userAgent: `tsbox/${VERSION}`,
    credentials: (host) => credentialsFromConfig({ auths }, host),
  });
}

/**
 * The context as a complete tar. docker's client rewrites the context to add a Dockerfile from
 * outside it (`build -f ../x`), and that rewrite (Go's ReplaceFileTarWrapper closes its pipe
 * before its tar writer) ends the stream right after the last file's bytes: no padding to the
 * block and no end-of-archive blocks. dockerd's tar reader takes such an end as the end; tsbox's
 * is strict, so an uncompressed context gets what is missing (zeros: the padding, then two empty
 * blocks; a complete tar's reader stops at its own end before them). Compressed contexts pass
 * as they are.
 */
function completeTar(body: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
  let length = 0;
  let first: Uint8Array | undefined;
  return body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, out) {
        if (first === undefined && chunk.length > 0) first = chunk.slice(0, 4);
        length += chunk.length;
        out.enqueue(chunk);
      },
      flush(out) {
        const compressed = first !== undefined && (
          (first[0] === 0x1f && first[1] === 0x8b) || // gzip
          (first[0] === 0x28 && first[1] === 0xb5 && first[2] === 0x2f && first[3] === 0xfd) ||
          (first[0] === 0x42 && first[1] === 0x5a && first[2] === 0x68) || // bzip2
          (first[0] === 0xfd && first[1] === 0x37 && first[2] === 0x7a) // xz
        );
        if (length === 0 || compressed) return;
        out.enqueue(new Uint8Array((512 - length % 512) % 512 + 1024));
      },
    }),
  );
}

/** A parameter given a value other than docker's client's default ("", 0, false, [], {}). */
function set(v: string | null): boolean {
  return v !== null && !["", "0", "-1", "false", "[]", "{}", "null"].includes(v);
}

/**
 * docker's classic build parameters tsbox's builder has nothing for: refused (docker's 400 with
 * the parameter named), never silently ignored, since each changes what the build does.
 */
const UNSUPPORTED: Record<string, string> = {
  squash: "squashing the layers is not supported by tsbox's builder",
  memory: "tsbox's builder does not limit the memory of RUN steps",
  memswap: "tsbox's builder does not limit the memory of RUN steps",
  cpushares: "tsbox's builder does not limit the CPU of RUN steps",
  cpusetcpus: "tsbox's builder does not limit the CPUs of RUN steps",
  cpusetmems: "tsbox's builder does not limit the memory nodes of RUN steps",
  cpuperiod: "tsbox's builder does not limit the CPU of RUN steps",
  cpuquota: "tsbox's builder does not limit the CPU of RUN steps",
  cgroupparent: "tsbox's builder does not place RUN steps in a cgroup parent",
  shmsize: "tsbox's builder does not size /dev/shm of RUN steps",
  ulimits: "tsbox's builder does not set ulimits of RUN steps",
};

/** The parameters of {@link UNSUPPORTED} that are text, not numbers or JSON. */
const TEXT_PARAMS = new Set(["cpusetcpus", "cpusetmems", "cgroupparent"]);

/** `outputs` (docker's `[{"Type": ..., "Attrs": {...}}]`): only the image, the default, is made. */
function checkOutputs(raw: string | null): void {
  if (!set(raw)) return;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw!);
  } catch {
    throw badParameter("outputs: invalid JSON");
  }
  if (!Array.isArray(parsed)) throw badParameter("outputs: expected a list");
  for (const o of parsed) {
    const type = (o as { Type?: unknown })?.Type;
    const attrs = (o as { Attrs?: unknown })?.Attrs ?? {};
    const plain = typeof attrs === "object" && attrs !== null && Object.keys(attrs).length === 0;
    if ((type === "image" || type === "moby") && plain) continue;
    throw badParameter(
      `outputs: type ${JSON.stringify(type)} is not supported through the API: ` +
        "tsbox's builder makes an image here (tsbox build -o writes directories and tars)",
    );
  }
}

/** `cachefrom` (a JSON list): the caches `tsbox build --cache-from` reads. */
async function cacheFromParam(raw: string | null): Promise<CacheSpec[] | undefined> {
  if (!set(raw)) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw!);
  } catch {
    throw badParameter("cachefrom: invalid JSON");
  }
  if (!Array.isArray(parsed) || parsed.some((x) => typeof x !== "string")) {
    throw badParameter("cachefrom: expected a list of strings");
  }
  const { parseCacheFlag } = await import("../builder/cache_io.ts");
  return (parsed as string[]).map((v) => {
    try {
      return parseCacheFlag(v, "from");
    } catch (err) {
      throw badParameter(`cachefrom: ${(err as Error).message}`);
    }
  });
}

/** Refuses what tsbox cannot build as asked, naming the parameter (docker's 400). */
function refuseUnsupported(q: URLSearchParams): void {
  if (q.get("remote")) {
    throw badParameter("remote: remote build contexts are not supported by tsbox");
  }
  if (q.get("version") === "2") {
    throw badParameter(
      "BuildKit (version=2) is not supported by tsbox: use the classic builder (DOCKER_BUILDKIT=0)",
    );
  }
  for (const [key, why] of Object.entries(UNSUPPORTED)) {
    const v = q.get(key);
    // CPU and node lists and paths: "0" is a value, only "" is docker's client's default.
    const given = TEXT_PARAMS.has(key) ? v !== null && v !== "" : set(v);
    if (given) throw badParameter(`${key}: ${why}`);
  }
  const hosts = q.getAll("extrahosts").filter((h) => h !== "" && h !== "[]");
  if (hosts.length > 0) {
    throw badParameter(
      `extrahosts: tsbox's builder runs RUN steps in the host's network and /etc/hosts (${
        hosts.join(", ")
      } not added)`,
    );
  }
  // As dockerd on Linux.
  if (q.getAll("securityopt").some((o) => o !== "")) {
    throw badParameter(
      "The daemon on this platform does not support setting security options on build",
    );
  }
  const isolation = q.get("isolation");
  if (isolation && isolation !== "default") {
    throw badParameter(`Unsupported isolation: ${JSON.stringify(isolation)}`);
  }
  checkOutputs(q.get("outputs"));
}

/**
 * `POST /build?t&dockerfile&buildargs&labels&nocache&pull&target&networkmode&q&platform&cachefrom`,
 * the context tar as the body; base images with the credentials of `X-Registry-Config`. The
 * parameters tsbox's builder has nothing for are refused (see {@link refuseUnsupported}); `rm`
 * and `forcerm` need nothing (no intermediate containers are kept).
 */
export async function build(ctx: ApiContext, req: ApiRequest): Promise<ApiResponse> {
  const q = req.query;
  refuseUnsupported(q);
  const platform = q.get("platform") || undefined;
  // `platform=a,b`, as `build --platform a,b`: one build each, recorded as an image index.
  const platforms = platform?.includes(",")
    ? (await import("../builder/platforms.ts")).parsePlatforms(platform)
    : undefined;
  const cacheFrom = await cacheFromParam(q.get("cachefrom"));
  const client = clientForBuild(ctx, req);
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
      case "pull": {
        const m = quiet ? undefined : progressMessage(e.event);
        if (m) push(m);
        break;
      }
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
  const context = completeTar(req.bodyStream(MAX_CONTEXT));
  const building = (async () => {
    if (platforms) {
      const { buildPlatforms } = await import("../builder/platforms.ts");
      const { formatPlatform } = await import("../../registry/platform.ts");
      const result = await buildPlatforms(ctx.store, platforms, {
        contextArchive: context,
        dockerfile: q.get("dockerfile") || undefined,
        tags: q.getAll("t"),
        buildArgs,
        labels,
        noCache: flag(q.get("nocache")),
        pull: flag(q.get("pull")),
        client,
        target: q.get("target") || undefined,
        network: network === "none" ? "none" : "host",
        cacheFrom,
        insecure: ctx.globals.insecureRegistries,
        onProgress,
      }, { onPlatform: (p) => say(`Building for ${p}\n`) });
      const list = platforms.map(formatPlatform).join(", ");
      for (const t of result.tags) say(`Successfully tagged ${familiar(t)} (${list})\n`);
      // docker's client reads the image id from aux: the one the tags name (the host's).
      const id = ctx.store.findImage(result.tags[0] ?? "")?.id ?? result.images[0].image.id;
      push({ aux: { ID: id } });
      if (quiet) push({ stream: `${id}\n` });
      return;
    }
    const { buildImage } = await import("../builder/builder.ts");
    const result = await buildImage(ctx.store, {
      contextArchive: context,
      dockerfile: q.get("dockerfile") || undefined,
      tags: q.getAll("t"),
      buildArgs,
      labels,
      noCache: flag(q.get("nocache")),
      pull: flag(q.get("pull")),
      client,
      target: q.get("target") || undefined,
      network: network === "none" ? "none" : "host",
      platform,
      cacheFrom,
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
