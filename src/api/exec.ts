/**
 * `POST /containers/{id}/exec`, `POST /exec/{id}/start` (hijacked), `GET /exec/{id}/json` and
 * `POST /exec/{id}/resize`: `tsbox exec`'s code (src/container/exec.ts) with the command's
 * stdio on pipes (or its pty) bridged to the client's connection. Exec instances live in the
 * service's memory, as dockerd's do: they describe processes this service started.
 *
 * @module
 */
import { closeFd, pipe } from "../../ffi/process.ts";
import { POLL, poll, readSome, setWindowSize, writeAllAsync } from "../../ffi/terminal.ts";
import { execSpecFor } from "../container/exec.ts";
import { isActive, reconcile, requireContainer } from "../container/state.ts";
import { execInContainer, type ExecProcess } from "../runtime/exec.ts";
import type { ApiContext } from "./context.ts";
import { badParameter } from "./errors.ts";
import {
  type ApiConn,
  type ApiRequest,
  type ApiResponse,
  type Hijacked,
  HttpError,
  json,
} from "./http.ts";
import { parseJsonBody } from "./params.ts";
import { stdFrame } from "./stream.ts";

/** An exec instance (docker's ExecConfig and state). */
export interface ExecInstance {
  readonly id: string;
  readonly containerId: string;
  readonly argv: string[];
  readonly tty: boolean;
  readonly stdin: boolean;
  readonly stdout: boolean;
  readonly stderr: boolean;
  readonly env: string[];
  readonly workdir?: string;
  readonly user?: string;
  running: boolean;
  started: boolean;
  exitCode?: number;
  pid?: number;
  /** The pty master while it runs (for resize). */
  terminal?: number;
}

/** At most this many exec instances are kept; the oldest finished ones go first. */
const MAX_EXECS = 1000;

function newId(): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(32)),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
}

function execOf(ctx: ApiContext, id: string): ExecInstance {
  const e = ctx.execs.get(id);
  if (!e) throw new HttpError(404, `No such exec instance: ${id}`);
  return e;
}

function str(v: unknown, name: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") throw badParameter(`${name}: expected a string`);
  return v;
}

function bool(v: unknown, name: string): boolean | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "boolean") throw badParameter(`${name}: expected a boolean`);
  return v;
}

function strings(v: unknown, name: string): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === "string") return [v];
  if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) {
    throw badParameter(`${name}: expected a list of strings`);
  }
  return v as string[];
}

/** `POST /containers/{id}/exec`: 201 `{Id}`. */
export async function create(ctx: ApiContext, req: ApiRequest, name: string) {
  const body = await parseJsonBody(req);
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw badParameter("exec config expected");
  }
  const b = body as Record<string, unknown>;
  const argv = strings(b.Cmd, "Cmd") ?? [];
  if (argv.length === 0) throw badParameter("No exec command specified");
  const workdir = str(b.WorkingDir, "WorkingDir") || undefined;
  if (workdir !== undefined && !workdir.startsWith("/")) {
    throw badParameter(`the working directory '${workdir}' is invalid`);
  }
  const c = reconcile(ctx.store, requireContainer(ctx.store, name));
  if (c.state === "paused") {
    throw new HttpError(409, `Container ${c.id} is paused, unpause the container before exec`);
  }
  if (!isActive(c.state)) throw new HttpError(409, `Container ${c.id} is not running`);
  const e: ExecInstance = {
    id: newId(),
    containerId: c.id,
    argv,
    tty: bool(b.Tty, "Tty") ?? false,
    stdin: bool(b.AttachStdin, "AttachStdin") ?? false,
    stdout: bool(b.AttachStdout, "AttachStdout") ?? false,
    stderr: bool(b.AttachStderr, "AttachStderr") ?? false,
    env: strings(b.Env, "Env") ?? [],
    workdir,
    user: str(b.User, "User") || undefined,
    running: false,
    started: false,
  };
  if (ctx.execs.size >= MAX_EXECS) {
    for (const [id, old] of ctx.execs) {
      if (!old.running) ctx.execs.delete(id);
      if (ctx.execs.size < MAX_EXECS / 2) break;
    }
  }
  ctx.execs.set(e.id, e);
  return json(201, { Id: e.id });
}

/** `GET /exec/{id}/json`. */
export function inspect(ctx: ApiContext, _req: ApiRequest, id: string): ApiResponse {
  const e = execOf(ctx, id);
  return json(200, {
    ID: e.id,
    ContainerID: e.containerId,
    Running: e.running,
    ExitCode: e.exitCode ?? null,
    Pid: e.pid ?? 0,
    OpenStdin: e.stdin,
    OpenStdout: e.stdout,
    OpenStderr: e.stderr,
    CanRemove: false,
    DetachKeys: "",
    ProcessConfig: {
      tty: e.tty,
      entrypoint: e.argv[0],
      arguments: e.argv.slice(1),
      privileged: false,
      user: e.user ?? "",
    },
  });
}

/** `POST /exec/{id}/resize?h&w`. */
export function resize(ctx: ApiContext, req: ApiRequest, id: string): ApiResponse {
  const e = execOf(ctx, id);
  const h = Number(req.query.get("h")), w = Number(req.query.get("w"));
  if (!Number.isInteger(h) || !Number.isInteger(w) || h < 0 || w < 0 || h > 65535 || w > 65535) {
    throw badParameter("invalid window size");
  }
  if (e.terminal !== undefined) {
    try {
      setWindowSize(e.terminal, { rows: h, cols: w });
    } catch { /* ended */ }
  }
  return { status: 201 };
}

/** Starts the process of `e` with its stdio on the given fds. */
async function spawn(
  ctx: ApiContext,
  e: ExecInstance,
  stdio: ("null" | number)[],
): Promise<ExecProcess> {
  const c = reconcile(ctx.store, requireContainer(ctx.store, e.containerId));
  if (c.state !== "running" || c.pid === undefined) {
    throw new HttpError(409, `container ${c.id} is not running`);
  }
  const spec = execSpecFor(c, e.argv, {
    tty: e.tty,
    interactive: e.stdin,
    env: e.env,
    workdir: e.workdir,
    user: e.user,
    // The size comes with the client's resize, not from this process's terminal.
    detach: true,
  }, stdio);
  return await execInContainer(c.pid, spec);
}

async function writeAll(conn: ApiConn, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await conn.write(data.subarray(off));
}

/** `POST /exec/{id}/start`: detached (200) or hijacked until the command ends. */
export async function start(ctx: ApiContext, req: ApiRequest, id: string): Promise<ApiResponse> {
  const e = execOf(ctx, id);
  const body = await parseJsonBody(req);
  const detach = typeof body === "object" && body !== null &&
    (body as Record<string, unknown>).Detach === true;
  if (e.started) throw new HttpError(409, `Exec ${id} has already been started`);
  e.started = true;
  if (detach) {
    const proc = await spawn(ctx, e, ["null", "null", "null"]);
    if (proc.terminal !== undefined) closeFd(proc.terminal);
    track(e, proc).catch(() => {});
    return { status: 200 };
  }
  return {
    contentType: e.tty
      ? "application/vnd.docker.raw-stream"
      : "application/vnd.docker.multiplexed-stream",
    hijack: (h) => runAttached(ctx, e, h),
  };
}

function track(e: ExecInstance, proc: ExecProcess): Promise<number> {
  e.running = true;
  e.pid = proc.pid;
  return proc.wait().then((code) => {
    e.exitCode = code;
    e.running = false;
    return code;
  });
}

async function runAttached(ctx: ApiContext, e: ExecInstance, h: Hijacked): Promise<void> {
  const fds: number[] = [];
  const own = (pair: [number, number]) => {
    fds.push(...pair);
    return pair;
  };
  const closeOwn = (fd: number) => {
    const i = fds.indexOf(fd);
    if (i >= 0) {
      fds.splice(i, 1);
      closeFd(fd);
    }
  };
  try {
    const input = e.stdin && !e.tty ? own(pipe()) : undefined;
    const out = e.tty ? undefined : own(pipe());
    const err = e.tty ? undefined : own(pipe());
    let proc: ExecProcess;
    try {
      proc = await spawn(ctx, e, [input?.[0] ?? "null", out?.[1] ?? "null", err?.[1] ?? "null"]);
    } catch (error) {
      // docker reports a command that cannot run in the stream, and its code by inspect.
      const code = (error as { exitCode?: number }).exitCode;
      e.exitCode = code === 126 || code === 127 ? code : 126;
      const message = new TextEncoder().encode(`${(error as Error).message}\r\n`);
      await writeAll(h.conn, e.tty ? message : stdFrame(2, message)).catch(() => {});
      return;
    }
    const exited = track(e, proc);
    if (proc.terminal !== undefined) {
      e.terminal = proc.terminal;
      await bridgeTerminal(proc.terminal, h, exited, e.stdin);
      e.terminal = undefined;
      closeFd(proc.terminal);
      return;
    }
    // The child has its ends now.
    if (input) closeOwn(input[0]);
    closeOwn(out![1]);
    closeOwn(err![1]);
    // Read ends as files (reads return what is there); the originals are closed.
    const outFd = Deno.openSync(`/proc/self/fd/${out![0]}`, { read: true });
    const errFd = Deno.openSync(`/proc/self/fd/${err![0]}`, { read: true });
    closeOwn(out![0]);
    closeOwn(err![0]);
    const copy = async (file: Deno.FsFile, stream: 1 | 2, wanted: boolean) => {
      try {
        const buf = new Uint8Array(65536);
        for (;;) {
          const n = await file.read(buf);
          if (n === null) return;
          if (wanted) await writeAll(h.conn, stdFrame(stream, buf.slice(0, n)));
        }
      } catch {
        /* the client went away: the command goes on without output */
      } finally {
        file.close();
      }
    };
    const feeding = input ? feed(h, input[1], () => closeOwn(input[1])) : Promise.resolve();
    await Promise.all([copy(outFd, 1, e.stdout), copy(errFd, 2, e.stderr)]);
    await exited;
    if (input) closeOwn(input[1]);
    void feeding;
  } finally {
    for (const fd of [...fds]) closeOwn(fd);
    try {
      h.conn.close();
    } catch { /* closed */ }
  }
}

/** Copies the client's input to `fd` until it ends; then `done` (closing the command's stdin). */
async function feed(h: Hijacked, fd: number, done: () => void): Promise<void> {
  try {
    if (h.early.length > 0) await writeAllAsync(fd, h.early.slice());
    const buf = new Uint8Array(65536);
    for (;;) {
      const n = await h.conn.read(buf);
      if (n === null) break;
      await writeAllAsync(fd, buf.slice(0, n));
    }
  } catch { /* the command or the client is gone */ }
  done();
}

/** Bridges a pty master and the client's connection until the command exits. */
async function bridgeTerminal(
  master: number,
  h: Hijacked,
  exited: Promise<number>,
  stdin: boolean,
): Promise<void> {
  let ended = false;
  exited.then(() => ended = true, () => ended = true);
  const input = stdin
    ? (async () => {
      if (h.early.length > 0) await writeAllAsync(master, h.early.slice());
      const buf = new Uint8Array(65536);
      for (;;) {
        const n = await h.conn.read(buf);
        if (n === null || ended) return;
        await writeAllAsync(master, buf.slice(0, n));
      }
    })().catch(() => {})
    : Promise.resolve();
  for (;;) {
    // Bounded waits, so that the end of the command is noticed even with nothing to read.
    const [rev] = await poll([master], POLL.IN, 200);
    if (rev & (POLL.IN | POLL.HUP | POLL.ERR)) {
      const chunk = readSome(master);
      if (chunk !== undefined) {
        if (chunk.length === 0) break;
        try {
          await writeAll(h.conn, chunk.slice());
        } catch {
          break;
        }
        continue;
      }
    }
    if (rev & POLL.NVAL) break;
    if (ended) {
      // Drain what is left, then stop.
      const rest = readSome(master);
      if (rest && rest.length > 0) await writeAll(h.conn, rest.slice()).catch(() => {});
      break;
    }
  }
  await exited;
  try {
    h.conn.close();
  } catch { /* closed */ }
  await input;
}
