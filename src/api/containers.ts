/**
 * The `/containers/...` endpoints. Each calls the code `tsbox create|start|stop|...` runs
 * (src/container/*), so a container made through the API is recorded and supervised as any
 * other, and the service itself holds nothing a kill would lose.
 *
 * @module
 */
import { createFromFlags } from "../container/create.ts";
import { inspectContainer } from "../container/inspect.ts";
import {
  killContainer,
  pauseContainer,
  removeContainer,
  restartContainer,
  startDetached,
  stopContainer,
  unpauseContainer,
} from "../container/lifecycle.ts";
import { followLogs, type LogEntry, parseTimeFilter, readLogs } from "../container/logs.ts";
import { logPath } from "../container/paths.ts";
import { parseSignal } from "../container/signals.ts";
import {
  type ContainerRecord,
  getContainer,
  isActive,
  listContainers,
  reconcile,
  requireContainer,
} from "../container/state.ts";
import { inspectPorts } from "../net/publish.ts";
import { inspectNetworkSettings } from "../network/inspect.ts";
import { networkModeName } from "../network/endpoints.ts";
import { containerFilter } from "../cli/container_filters.ts";
import { statusText } from "../cli/container_actions.ts";
import type { ApiContext } from "./context.ts";
import { createRequest } from "./create_body.ts";
import { badParameter } from "./errors.ts";
import { type ApiRequest, type ApiResponse, HttpError, json } from "./http.ts";
import { bridgeAttach, reachSupervisor, stdFrame } from "./stream.ts";
import { filterValues, flag, parseJsonBody } from "./params.ts";

const encoder = new TextEncoder();

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** docker's `Ports` list of a container summary. */
function portList(ctx: ApiContext, c: ContainerRecord): unknown[] {
  const out: unknown[] = [];
  for (const [key, bindings] of Object.entries(inspectPorts(ctx.store, c))) {
    const [port, proto] = key.split("/");
    if (!bindings) {
      out.push({ PrivatePort: Number(port), Type: proto });
      continue;
    }
    for (const b of bindings) {
      out.push({
        IP: b.HostIp || "0.0.0.0",
        PrivatePort: Number(port),
        PublicPort: Number(b.HostPort),
        Type: proto,
      });
    }
  }
  return out;
}

/** A container as `GET /containers/json` lists it. */
export function summary(ctx: ApiContext, c: ContainerRecord): Record<string, unknown> {
  return {
    Id: c.id,
    Names: [`/${c.name}`],
    Image: c.imageName,
    ImageID: c.imageId,
    Command: c.config.argv.join(" "),
    Created: Math.floor(c.createdAt / 1000),
    Ports: portList(ctx, c),
    Labels: c.config.labels ?? {},
    State: c.state,
    Status: statusText(c),
    HostConfig: { NetworkMode: networkModeName(c.config.network, c.config.net) },
    NetworkSettings: {
      Networks: inspectNetworkSettings(ctx.store, {
        id: c.id,
        name: c.name,
        mode: c.config.network,
        net: c.config.net,
      }).Networks,
    },
    Mounts: [],
  };
}

/** `GET /containers/json?all&limit&filters`. */
export function list(ctx: ApiContext, req: ApiRequest): ApiResponse {
  const limit = Number(req.query.get("limit") ?? "0");
  if (!Number.isInteger(limit)) throw badParameter(`invalid limit: ${req.query.get("limit")}`);
  const filter = containerFilter(ctx.store, filterValues(req.query.get("filters")), {
    all: flag(req.query.get("all")),
    limit,
  });
  return json(200, filter.apply(listContainers(ctx.store)).map((c) => summary(ctx, c)));
}

/** `POST /containers/create?name=`. */
export async function create(ctx: ApiContext, req: ApiRequest): Promise<ApiResponse> {
  const body = await parseJsonBody(req);
  const r = createRequest(
    body,
    req.query.get("name") ?? undefined,
    req.query.get("platform") ?? undefined,
  );
  if (r.links.length > 0) {
    const { linkHosts } = await import("./links.ts");
    const hosts = linkHosts(ctx.store, r.links, r.flags.network ?? "default", r.flags.name);
    r.flags.addHost = [...r.flags.addHost ?? [], ...hosts];
  }
  // What docker's daemon warns about (a limit the kernel cannot apply, discarded) goes back in
  // Warnings, which docker's client prints; the CLI prints the same lines on stderr.
  const warnings: string[] = [];
  const notice = (line: string) => {
    if (line.startsWith("WARNING: ")) warnings.push(line.slice("WARNING: ".length));
  };
  const c = await createFromFlags(ctx.store, r.image, r.command, r.flags, {
    ...ctx.globals,
    notice,
  });
  return json(201, { Id: c.id, Warnings: warnings });
}

/** The container named in the path, reconciled with its processes. */
function named(ctx: ApiContext, name: string): ContainerRecord {
  return reconcile(ctx.store, requireContainer(ctx.store, name));
}

function seconds(req: ApiRequest): number | undefined {
  const t = req.query.get("t") ?? req.query.get("timeout");
  if (t === null || t === "") return undefined;
  if (!/^-?\d+$/.test(t)) throw badParameter(`invalid timeout: ${t}`);
  return Number(t);
}

/** `POST /containers/{id}/start`: 304 when it runs already. */
export async function start(ctx: ApiContext, _req: ApiRequest, name: string) {
  const c = named(ctx, name);
  if (isActive(c.state)) return { status: 304 };
  try {
    await startDetached(ctx.store, c);
  } catch (err) {
    // As `run --rm` (and dockerd): a container to be removed at exit that could not start is
    // removed now; docker's client waits for that removal before it reports the error.
    if (c.config.autoRemove) {
      const now = getContainer(ctx.store, c.id);
      if (now) await removeContainer(ctx.store, now, true, true).catch(() => {});
    }
    const code = (err as { exitCode?: number }).exitCode;
    if (code === 126 || code === 127) throw new HttpError(400, (err as Error).message);
    throw err;
  }
  return { status: 204 };
}

/** `POST /containers/{id}/stop?t=&signal=`: 304 when it is not running. */
export async function stop(ctx: ApiContext, req: ApiRequest, name: string) {
  const c = named(ctx, name);
  if (!isActive(c.state)) return { status: 304 };
  const sig = req.query.get("signal");
  await stopContainer(ctx.store, c, seconds(req), sig ? parseSignal(sig) : undefined);
  return { status: 204 };
}

/** `POST /containers/{id}/restart?t=`. */
export async function restart(ctx: ApiContext, req: ApiRequest, name: string) {
  await restartContainer(ctx.store, named(ctx, name), seconds(req));
  return { status: 204 };
}

/** `POST /containers/{id}/kill?signal=`. */
export async function kill(ctx: ApiContext, req: ApiRequest, name: string) {
  const c = named(ctx, name);
  const signal = parseSignal(req.query.get("signal") || "KILL");
  if (c.state !== "running" && c.state !== "paused") {
    throw new HttpError(409, `Container ${c.id} is not running`);
  }
  await killContainer(ctx.store, c, signal);
  return { status: 204 };
}

/** `DELETE /containers/{id}?force&v`. */
export async function remove(ctx: ApiContext, req: ApiRequest, name: string) {
  const c = named(ctx, name);
  if (isActive(c.state) && !flag(req.query.get("force"))) {
    throw new HttpError(
      409,
      `You cannot remove a ${c.state} container ${c.id}. Stop the container before attempting removal or force remove`,
    );
  }
  await removeContainer(ctx.store, c, flag(req.query.get("force")), flag(req.query.get("v")));
  return { status: 204 };
}

/**
 * `GET /containers/{id}/json`: the CLI's inspect object with the fields dockerd 20.10 always
 * has and clients index without looking (compose's `run` reads Config.AttachStdin and fails
 * with a KeyError without it). tsbox records no Attach* of its own: stdin is attached where it
 * is open, the output streams always, as the docker client and docker-py create them.
 */
export function inspect(ctx: ApiContext, _req: ApiRequest, name: string): ApiResponse {
  const out = inspectContainer(ctx.store, named(ctx, name));
  const config = out.Config as Record<string, unknown>;
  return json(200, {
    Platform: "linux",
    MountLabel: "",
    ProcessLabel: "",
    AppArmorProfile: "",
    ExecIDs: null,
    ...out,
    Config: {
      Domainname: "",
      AttachStdin: config.OpenStdin === true,
      AttachStdout: true,
      AttachStderr: true,
      StdinOnce: false,
      Volumes: null,
      OnBuild: null,
      ...config,
    },
  });
}

/** `GET /containers/{id}/top`: docker's `ps -ef` columns. */
export async function top(ctx: ApiContext, _req: ApiRequest, name: string) {
  const c = named(ctx, name);
  if (!isActive(c.state)) throw new HttpError(409, `Container ${c.id} is not running`);
  const { containerProcesses } = await import("../container/stats.ts");
  const procs = await containerProcesses({ id: c.id, parent: c.config.resources.cgroupParent });
  return json(200, {
    Titles: ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"],
    Processes: procs.map((p) => [
      String(p.uid),
      String(p.pid),
      String(p.ppid),
      "0",
      p.stime,
      "?",
      p.time,
      p.cmd,
    ]),
  });
}

/**
 * `POST /containers/{id}/wait?condition=not-running|next-exit|removed`. The head goes out at
 * once (docker's client asks before it starts the container); the body when the condition
 * holds. The exit code of a container removed on exit comes from an attach bridge or from a
 * passive client of its supervisor, which reports it before the row is gone.
 */
export function wait(ctx: ApiContext, req: ApiRequest, name: string): ApiResponse {
  const condition = req.query.get("condition") || "not-running";
  if (!["not-running", "next-exit", "removed"].includes(condition)) {
    throw badParameter(`invalid condition: "${condition}"`);
  }
  const first = named(ctx, name);
  async function* body(): AsyncGenerator<Uint8Array> {
    let code: number | undefined = first.exitCode;
    let finished = first.finishedAt;
    let listening = false;
    for (let delay = 10;; delay = Math.min(delay * 2, 100)) {
      if (req.signal.aborted) return; // the client went away
      const row = getContainer(ctx.store, first.id);
      if (!row) {
        code = ctx.exitCodes.get(first.id) ?? code;
        break;
      }
      const c = reconcile(ctx.store, row);
      if (isActive(c.state) && !listening) {
        listening = true;
        void listenForExit(ctx, first.id);
      }
      if (!isActive(c.state)) {
        code = c.exitCode ?? code;
        const ended = c.finishedAt !== finished;
        if (condition === "not-running" || condition === "next-exit" && ended) break;
      } else if (condition === "next-exit") finished = -1; // any end from now on is the next
      await sleep(delay);
    }
    yield encoder.encode(JSON.stringify({ StatusCode: code ?? 0, Error: null }) + "\n");
  }
  return { status: 200, headers: { "Content-Type": "application/json" }, body: body() };
}

/** Reads the supervisor's exit report of `id` into `ctx.exitCodes` (for `wait`). */
async function listenForExit(ctx: ApiContext, id: string): Promise<void> {
  const conn = await reachSupervisor(ctx.store, id).catch(() => undefined);
  if (!conn) return;
  const { FrameDecoder, FRAME, decodeExit } = await import("../container/attach.ts");
  const decoder = new FrameDecoder();
  const buf = new Uint8Array(65536);
  try {
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) return;
      for (const f of decoder.push(buf.subarray(0, n))) {
        if (f.type === FRAME.exit) rememberExit(ctx, id, decodeExit(f.payload) ?? 0);
      }
    }
  } catch {
    /* the supervisor went away */
  } finally {
    try {
      conn.close();
    } catch { /* closed */ }
  }
}

/** Keeps an exit code for a while after the run (for a `wait` on a container removed at exit). */
function rememberExit(ctx: ApiContext, id: string, code: number): void {
  ctx.exitCodes.set(id, code);
  setTimeout(() => ctx.exitCodes.delete(id), 60_000);
}

/** `GET /containers/{id}/logs`: stdcopy frames without a tty, raw bytes with one. */
export function logs(ctx: ApiContext, req: ApiRequest, name: string): ApiResponse {
  const c = named(ctx, name);
  const q = req.query;
  const stdout = flag(q.get("stdout")), stderr = flag(q.get("stderr"));
  if (!stdout && !stderr) throw badParameter("Bad parameters: you must choose at least one stream");
  const tail = q.get("tail");
  const time = (v: string | null) => {
    if (v === null || v === "" || v === "0") return undefined;
    try {
      return parseTimeFilter(v);
    } catch {
      throw badParameter(`invalid time value: ${v}`);
    }
  };
  const filter = {
    tail: tail === null || tail === "" || tail === "all" ? undefined : Number(tail),
    since: time(q.get("since")),
    until: time(q.get("until")),
  };
  if (filter.tail !== undefined && !Number.isInteger(filter.tail)) {
    throw badParameter(`invalid tail: ${tail}`);
  }
  const timestamps = flag(q.get("timestamps"));
  const tty = c.config.tty;
  const frame = (e: LogEntry): Uint8Array | undefined => {
    if (e.stream === "stdout" ? !stdout : !stderr) return undefined;
    const bytes = encoder.encode(timestamps ? `${e.time} ${e.log}` : e.log);
    return tty ? bytes : stdFrame(e.stream === "stderr" ? 2 : 1, bytes);
  };
  const path = logPath(ctx.store.root, c.id);
  const follow = flag(q.get("follow"));
  async function* body(): AsyncGenerator<Uint8Array> {
    if (!follow) {
      for (const e of await readLogs(path, filter)) {
        const f = frame(e);
        if (f) yield f;
      }
      return;
    }
    const done = () => {
      if (req.signal.aborted) return true; // the client went away
      const row = getContainer(ctx.store, c.id);
      return !row || !isActive(reconcile(ctx.store, row).state);
    };
    for await (const e of followLogs(path, filter, done)) {
      const f = frame(e);
      if (f) yield f;
    }
  }
  return {
    status: 200,
    headers: {
      "Content-Type": tty
        ? "application/vnd.docker.raw-stream"
        : "application/vnd.docker.multiplexed-stream",
    },
    body: body(),
  };
}

/** `POST /containers/{id}/attach?stream&stdin&stdout&stderr`: a hijacked connection. */
export function attach(ctx: ApiContext, req: ApiRequest, name: string): ApiResponse {
  const c = named(ctx, name);
  const q = req.query;
  if (!flag(q.get("stream")) && !flag(q.get("logs"))) {
    throw badParameter("Bad parameters: you must choose at least one of stream or logs");
  }
  const options = {
    stdin: flag(q.get("stdin")) && c.config.interactive,
    stdout: flag(q.get("stdout")),
    stderr: flag(q.get("stderr")),
    tty: c.config.tty,
    onExit: (code: number) => rememberExit(ctx, c.id, code),
  };
  return {
    contentType: c.config.tty
      ? "application/vnd.docker.raw-stream"
      : "application/vnd.docker.multiplexed-stream",
    hijack: (h) => bridgeAttach(ctx.store, c.id, h, options),
  };
}

/** `POST /containers/{id}/resize?h&w`: the window size, through the supervisor. */
export async function resize(ctx: ApiContext, req: ApiRequest, name: string) {
  const c = named(ctx, name);
  const h = Number(req.query.get("h")), w = Number(req.query.get("w"));
  if (!Number.isInteger(h) || !Number.isInteger(w) || h < 0 || w < 0 || h > 65535 || w > 65535) {
    throw badParameter("invalid window size");
  }
  if (!isActive(c.state)) throw new HttpError(409, `Container ${c.id} is not running`);
  const { connectAttach, resizeFrame } = await import("../container/attach.ts");
  const conn = await connectAttach(ctx.store.root, c.id).catch(() => undefined);
  if (conn) {
    try {
      await conn.write(resizeFrame({ rows: h, cols: w }));
    } catch { /* gone */ }
    conn.close();
  }
  return { status: 200 };
}

/** `POST /containers/{id}/pause`. */
export async function pause(ctx: ApiContext, _req: ApiRequest, name: string) {
  const c = named(ctx, name);
  if (c.state === "paused") throw new HttpError(409, `Container ${c.id} is already paused`);
  if (c.state !== "running") throw new HttpError(409, `Container ${c.id} is not running`);
  await pauseContainer(ctx.store, c);
  return { status: 204 };
}

/** `POST /containers/{id}/unpause`. */
export async function unpause(ctx: ApiContext, _req: ApiRequest, name: string) {
  const c = named(ctx, name);
  if (c.state !== "paused") throw new HttpError(409, `Container ${c.id} is not paused`);
  await unpauseContainer(ctx.store, c);
  return { status: 204 };
}

/** `GET /containers/{id}/changes`: docker's Kind 0 changed, 1 added, 2 deleted. */
export async function changes(ctx: ApiContext, _req: ApiRequest, name: string) {
  const { containerChanges } = await import("../container/diff.ts");
  const kinds = { C: 0, A: 1, D: 2 } as const;
  const list = await containerChanges(ctx.store, named(ctx, name));
  return json(200, list.map((ch) => ({ Path: ch.path, Kind: kinds[ch.kind] })));
}

/** `GET /containers/{id}/export`: the container's filesystem as a tar stream. */
export async function exportTar(ctx: ApiContext, req: ApiRequest, name: string) {
  const c = named(ctx, name);
  const { exportContainer } = await import("../container/export.ts");
  const pipe = new TransformStream<Uint8Array, Uint8Array>();
  const writing = exportContainer(ctx.store, c, pipe.writable).catch(async (err) => {
    await pipe.writable.abort(err).catch(() => {});
  });
  async function* body(): AsyncGenerator<Uint8Array> {
    const reader = pipe.readable.getReader();
    try {
      for (;;) {
        if (req.signal.aborted) return;
        const { value, done } = await reader.read();
        if (done) return;
        yield value;
      }
    } finally {
      await reader.cancel().catch(() => {});
      await writing;
    }
  }
  return { status: 200, headers: { "Content-Type": "application/x-tar" }, body: body() };
}

/**
 * `GET /containers/{id}/stats?stream=false`: one sample (`tsbox stats --no-stream`), shaped so
 * that docker's client computes the same CPU percentage from it (a zero previous sample and a
 * system total scaled to the measured share).
 */
export async function stats(ctx: ApiContext, req: ApiRequest, name: string) {
  const c = named(ctx, name);
  const { sampleStats } = await import("../container/stats.ts");
  const online = navigator.hardwareConcurrency;
  const sample = async () => {
    const s = isActive(c.state)
      ? await sampleStats({ id: c.id, parent: c.config.resources.cgroupParent })
      : undefined;
    const system = 1e9;
    return {
      read: new Date().toISOString(),
      preread: "0001-01-01T00:00:00Z",
      id: c.id,
      name: `/${c.name}`,
      pids_stats: { current: s?.pids ?? 0 },
      cpu_stats: {
        cpu_usage: { total_usage: Math.round((s?.cpuPercent ?? 0) / 100 / online * system) },
        system_cpu_usage: system,
        online_cpus: online,
      },
      precpu_stats: { cpu_usage: { total_usage: 0 }, system_cpu_usage: 0, online_cpus: online },
      memory_stats: s ? { usage: s.memoryUsage, limit: s.memoryLimit, stats: {} } : {},
      blkio_stats: {},
      networks: {},
    };
  };
  const streaming = req.query.get("stream") === null || flag(req.query.get("stream"));
  if (!streaming) return json(200, await sample());
  async function* body(): AsyncGenerator<Uint8Array> {
    while (!req.signal.aborted) {
      yield encoder.encode(JSON.stringify(await sample()) + "\n");
      await sleep(1000);
      const row = getContainer(ctx.store, c.id);
      if (!row) return;
    }
  }
  return { status: 200, headers: { "Content-Type": "application/json" }, body: body() };
}

/**
 * `POST /containers/{id}/update`: `tsbox update`'s code. docker's client sends every resource
 * field, 0 (or "") for those not given, which leave the container's value alone.
 */
export async function update(ctx: ApiContext, req: ApiRequest, name: string) {
  const body = await parseJsonBody(req);
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw badParameter("update config expected");
  }
  const b = body as Record<string, unknown>;
  const num = (key: string): string | undefined => {
    const v = b[key];
    if (v === undefined || v === null || v === 0) return undefined;
    if (typeof v !== "number" || !Number.isSafeInteger(v)) {
      throw badParameter(`${key}: expected an integer`);
    }
    return String(v);
  };
  const str = (key: string): string | undefined => {
    const v = b[key];
    if (v === undefined || v === null || v === "") return undefined;
    if (typeof v !== "string") throw badParameter(`${key}: expected a string`);
    return v;
  };
  const nano = num("NanoCpus");
  const restart = b.RestartPolicy as { Name?: unknown; MaximumRetryCount?: unknown } | undefined;
  let restartFlag: string | undefined;
  if (restart && typeof restart === "object" && restart.Name) {
    if (typeof restart.Name !== "string") {
      throw badParameter("RestartPolicy.Name: expected a string");
    }
    const count = Number(restart.MaximumRetryCount ?? 0);
    restartFlag = restart.Name === "on-failure" && count > 0 ? `on-failure:${count}` : restart.Name;
  }
  const { updateContainer } = await import("../container/update.ts");
  const warnings: string[] = [];
  await updateContainer(ctx.store, requireContainer(ctx.store, name), {
    memory: num("Memory"),
    memorySwap: num("MemorySwap"),
    cpus: nano === undefined ? undefined : String(Number(nano) / 1e9),
    cpuShares: num("CpuShares"),
    pidsLimit: num("PidsLimit"),
    cpusetCpus: str("CpusetCpus"),
    cpusetMems: str("CpusetMems"),
    cpuQuota: num("CpuQuota"),
    cpuPeriod: num("CpuPeriod"),
    memoryReservation: num("MemoryReservation"),
    kernelMemory: num("KernelMemory"),
    blkioWeight: num("BlkioWeight"),
    // Refused with the CLI's message (no real-time budget is handed down the cgroup tree).
    cpuRtRuntime: num("CpuRealtimeRuntime"),
    cpuRtPeriod: num("CpuRealtimePeriod"),
    restart: restartFlag,
  }, (m) => warnings.push(m));
  return json(200, { Warnings: warnings });
}

/** `POST /containers/{id}/rename?name=NEW`: 204; 409 when another container has the name. */
export async function rename(ctx: ApiContext, req: ApiRequest, name: string) {
  const to = req.query.get("name");
  if (!to) throw badParameter("Neither old nor new names may be empty");
  const { renameContainer } = await import("../container/rename.ts");
  await renameContainer(ctx.store, name, to);
  return { status: 204 };
}
