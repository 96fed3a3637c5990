/**
 * `tsbox system service`: the Docker Engine API on a unix socket. Routes requests (with and
 * without a `/vX.Y` prefix) to the endpoint modules, answers errors in docker's shape, and ends
 * after an idle timeout. The service is only one more client of the store and the containers'
 * supervisors: killing it loses nothing.
 *
 * @module
 */
import process from "node:process";
import { dirname } from "node:path";
import type { GlobalOptions } from "../cli/globals.ts";
import { Store } from "../store/mod.ts";
import { VERSION } from "../version.ts";
import * as containers from "./containers.ts";
import type { ApiContext } from "./context.ts";
import { errorResponse } from "./errors.ts";
import {
  type ApiConn,
  type ApiRequest,
  type ApiResponse,
  HttpError,
  json,
  serveConnection,
} from "./http.ts";
import * as images from "./images.ts";
import * as exec from "./exec.ts";
import * as archive from "./archive.ts";
import * as volumes from "./volumes.ts";
import * as networks from "./networks.ts";
import { auth } from "./auth.ts";
import { events } from "./events.ts";
import { build } from "./build.ts";
import * as housekeeping from "./housekeeping.ts";
import * as system from "./system.ts";
import { type ApiListener, listenTlsVerified } from "./tls_listener.ts";
import { isLoopback, ListenAddressError, type TcpAddress } from "./tcp_address.ts";

type Handler = (ctx: ApiContext, req: ApiRequest, ...params: string[]) =>
  | ApiResponse
  | Promise<ApiResponse>;

interface Route {
  readonly methods: readonly string[];
  readonly pattern: RegExp;
  readonly handler: Handler;
}

const ID = "([^/]+)";
/** Image names have slashes: the longest match before the action. */
const IMAGE = "(.+)";

const route = (methods: string | string[], pattern: string, handler: Handler): Route => ({
  methods: Array.isArray(methods) ? methods : [methods],
  pattern: new RegExp(`^${pattern}$`),
  handler,
});

const ROUTES: Route[] = [
  route(["GET", "HEAD"], "/_ping", system.ping),
  route("GET", "/version", system.version),
  route("GET", "/info", system.info),
  route("POST", "/auth", auth),
  route("GET", "/events", events),
  route("POST", "/build", build),
  route("POST", "/build/prune", housekeeping.buildPrune),
  route("GET", "/system/df", housekeeping.systemDf),
  route("GET", "/containers/json", containers.list),
  route("POST", "/containers/create", containers.create),
  route("POST", "/containers/prune", housekeeping.containerPrune),
  route("GET", `/containers/${ID}/json`, containers.inspect),
  route("GET", `/containers/${ID}/top`, containers.top),
  route("GET", `/containers/${ID}/changes`, containers.changes),
  route("HEAD", `/containers/${ID}/archive`, archive.head),
  route("GET", `/containers/${ID}/archive`, archive.get),
  route("PUT", `/containers/${ID}/archive`, archive.put),
  route("GET", `/containers/${ID}/export`, containers.exportTar),
  route("GET", `/containers/${ID}/stats`, containers.stats),
  route("GET", `/containers/${ID}/logs`, containers.logs),
  route("POST", `/containers/${ID}/start`, containers.start),
  route("POST", `/containers/${ID}/stop`, containers.stop),
  route("POST", `/containers/${ID}/restart`, containers.restart),
  route("POST", `/containers/${ID}/kill`, containers.kill),
  route("POST", `/containers/${ID}/wait`, containers.wait),
  route("POST", `/containers/${ID}/attach`, containers.attach),
  route("POST", `/containers/${ID}/resize`, containers.resize),
  route("POST", `/containers/${ID}/pause`, containers.pause),
  route("POST", `/containers/${ID}/update`, containers.update),
  route("POST", `/containers/${ID}/unpause`, containers.unpause),
  route("POST", `/containers/${ID}/rename`, containers.rename),
  route("DELETE", `/containers/${ID}`, containers.remove),
  route("POST", `/containers/${ID}/exec`, exec.create),
  route("POST", `/exec/${ID}/start`, exec.start),
  route("POST", `/exec/${ID}/resize`, exec.resize),
  route("GET", `/exec/${ID}/json`, exec.inspect),
  route("GET", "/images/json", images.list),
  route("POST", "/images/create", images.create),
  route("GET", "/images/get", (ctx, req) => images.save(ctx, req)),
  route("POST", "/images/load", images.load),
  route("POST", "/images/prune", housekeeping.imagePrune),
  route("GET", `/images/${IMAGE}/get`, images.save),
  route("GET", `/images/${IMAGE}/json`, images.inspect),
  route("GET", `/images/${IMAGE}/history`, images.history),
  route("POST", `/images/${IMAGE}/tag`, images.tag),
  route("POST", `/images/${IMAGE}/push`, images.push),
  route("DELETE", `/images/${IMAGE}`, images.remove),
  route("GET", "/volumes", volumes.list),
  route("POST", "/volumes/create", volumes.create),
  route("POST", "/volumes/prune", volumes.prune),
  route("GET", `/volumes/${ID}`, volumes.inspect),
  route("DELETE", `/volumes/${ID}`, volumes.remove),
  route("GET", "/networks", networks.list),
  route("POST", "/networks/create", networks.create),
  route("POST", "/networks/prune", networks.prune),
  route("GET", `/networks/${ID}`, networks.inspect),
  route("DELETE", `/networks/${ID}`, networks.remove),
  route("POST", `/networks/${ID}/connect`, networks.connect),
  route("POST", `/networks/${ID}/disconnect`, networks.disconnect),
  route("GET", "/plugins", system.plugins),
  route(
    ["GET", "POST", "DELETE"],
    `/plugins/${IMAGE}/(?:json|enable|disable|push|set|upgrade)`,
    (_c, _r, name) => system.noPlugin(name),
  ),
  route(["GET", "DELETE"], `/plugins/${IMAGE}`, (_c, _r, name) => system.noPlugin(name)),
];

/** Swarm-mode endpoints: dockerd outside swarm answers 503 for all of them. */
const SWARM = /^\/(swarm|services|nodes|secrets|configs|tasks)(\/|$)/;

function compareVersions(a: string, b: string): number {
  const [am, an] = a.split(".").map(Number), [bm, bn] = b.split(".").map(Number);
  return am - bm || an - bn;
}

/** Strips `/vX.Y` from `req.path`, refusing versions tsbox does not speak as dockerd does. */
function stripVersion(req: ApiRequest): void {
  const m = /^\/v(\d+\.\d+)(\/.*)$/.exec(req.path);
  if (!m) return;
  const v = m[1];
  if (compareVersions(v, system.API_VERSION) > 0) {
    throw new HttpError(
      400,
      `client version ${v} is too new. Maximum supported API version is ${system.API_VERSION}`,
    );
  }
  if (compareVersions(v, system.MIN_API_VERSION) < 0) {
    throw new HttpError(
      400,
      `client version ${v} is too old. Minimum supported API version is ${system.MIN_API_VERSION}, please upgrade your client to a newer version`,
    );
  }
  req.version = v;
  req.path = m[2];
}

/** Answers one request; never throws. */
export async function dispatch(ctx: ApiContext, req: ApiRequest): Promise<ApiResponse> {
  try {
    stripVersion(req);
    if (SWARM.test(req.path)) return system.notSwarmManager();
    for (const r of ROUTES) {
      const m = r.pattern.exec(req.path);
      if (!m || !r.methods.includes(req.method)) continue;
      let params: string[];
      try {
        params = m.slice(1).map(decodeURIComponent);
      } catch {
        throw new HttpError(400, "malformed path");
      }
      return await r.handler(ctx, req, ...params);
    }
    return json(404, { message: "page not found" });
  } catch (err) {
    if (ctx.globals.debug && !(err instanceof HttpError)) {
      ctx.log?.(String((err as Error)?.stack ?? err));
    }
    return errorResponse(err);
  }
}

/** The default socket: /run/tsbox/tsbox.sock for root, `$XDG_RUNTIME_DIR/tsbox/tsbox.sock` else. */
export function defaultSocket(): string {
  if (Deno.uid() === 0) return "/run/tsbox/tsbox.sock";
  const runtime = Deno.env.get("XDG_RUNTIME_DIR") || `/run/user/${Deno.uid()}`;
  return `${runtime}/tsbox/tsbox.sock`;
}

/** Options of {@link serveApi}. */
export interface ServiceOptions {
  readonly socket: string;
  /** Seconds without a request before the service ends; 0: never. */
  readonly timeout: number;
  /** The socket's group (a name in /etc/group or a gid): its members may use the API. */
  readonly group?: string;
  /** Called once the socket listens. */
  readonly onListening?: (path: string) => void;
  /** Ends the service when aborted. */
  readonly signal?: AbortSignal;
  /** The service's log (stray errors; request failures with --debug); none when absent. */
  readonly log?: (line: string) => void;
  /** TCP addresses served besides the socket (`-H tcp://`; tcp_address.ts checked them). */
  readonly tcp?: readonly TcpAddress[];
}

/** Listens on one TCP address: plain (loopback only, checked before), or TLS with client certs. */
async function listenTcp(a: TcpAddress, log?: (line: string) => void): Promise<ApiListener> {
  const where = `${a.hostname.includes(":") ? `[${a.hostname}]` : a.hostname}:${a.port}`;
  try {
    if (a.tls) return await listenTlsVerified(a.hostname, a.port, a.tls, log);
    if (!isLoopback(a.hostname)) {
      throw new ListenAddressError(`refusing to serve tcp://${where} without TLS`);
    }
    return Deno.listen({ transport: "tcp", hostname: a.hostname, port: a.port });
  } catch (err) {
    if (err instanceof ListenAddressError) throw err;
    throw new ListenAddressError(`cannot listen on tcp://${where}: ${(err as Error).message}`);
  }
}

/**
 * Listens on a unix socket made 0660 (owner root:root when run as root). A socket a live service
 * answers on is refused; a stale one (its service killed) is replaced.
 */
async function listen(path: string, group?: string): Promise<Deno.UnixListener> {
  const gid = group === undefined ? 0 : await groupId(group);
  await Deno.mkdir(dirname(path), { recursive: true, mode: 0o755 });
  try {
    const st = await Deno.lstat(path);
    if (!st.isSocket) throw new HttpError(500, `${path} exists and is not a socket`);
    const live = await Deno.connect({ transport: "unix", path }).then((c) => {
      c.close();
      return true;
    }, () => false);
    if (live) throw new HttpError(500, `another service is listening on ${path}`);
    await Deno.remove(path);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  // The umask covers the moment between bind and chmod: the socket is never wider than 0660.
  const old = process.umask(0o117);
  try {
    const listener = Deno.listen({ transport: "unix", path });
    await Deno.chmod(path, 0o660);
    if (Deno.uid() === 0) await Deno.chown(path, 0, gid);
    else if (group !== undefined) await Deno.chown(path, null, gid);
    return listener;
  } finally {
    process.umask(old);
  }
}

/** The gid of `group`: a number, or a name looked up in /etc/group. */
async function groupId(group: string): Promise<number> {
  if (/^\d+$/.test(group)) return Number(group);
  const text = await Deno.readTextFile("/etc/group").catch(() => "");
  for (const line of text.split("\n")) {
    const [name, , gid] = line.split(":");
    if (name === group && /^\d+$/.test(gid ?? "")) return Number(gid);
  }
  throw new HttpError(400, `unknown group ${JSON.stringify(group)}`);
}

/**
 * Runs the service (see {@link ServiceOptions}) on the socket and the TCP addresses until idle
 * for `timeout` seconds, or `signal` aborts; resolves when it has ended.
 */
export async function serveApi(globals: GlobalOptions, o: ServiceOptions): Promise<void> {
  // The service must outlive any one request's mistakes: a stray rejection is logged, not fatal.
  const stray = (e: PromiseRejectionEvent) => {
    e.preventDefault();
    o.log?.(`tsbox: service: ${(e.reason as Error)?.message ?? e.reason}`);
  };
  globalThis.addEventListener("unhandledrejection", stray);
  const store = await Store.open(globals.root);
  const ctx: ApiContext = {
    store,
    globals,
    exitCodes: new Map(),
    execs: new Map(),
    log: o.log,
  };
  const listeners: ApiListener[] = [await listen(o.socket, o.group)];
  try {
    for (const a of o.tcp ?? []) listeners.push(await listenTcp(a, o.log));
  } catch (err) {
    for (const l of listeners) l.close();
    await Deno.remove(o.socket).catch(() => {});
    store.close();
    globalThis.removeEventListener("unhandledrejection", stray);
    throw err;
  }
  o.onListening?.(`unix://${o.socket}`);
  for (const a of o.tcp ?? []) {
    const host = a.hostname.includes(":") ? `[${a.hostname}]` : a.hostname;
    o.onListening?.(
      `tcp://${host}:${a.port}${a.tls ? " (TLS, client certificates required)" : ""}`,
    );
  }
  let active = 0;
  let lastActivity = Date.now();
  const conns = new Set<ApiConn>();
  const stop = () => {
    for (const l of listeners) {
      try {
        l.close();
      } catch { /* closed */ }
    }
  };
  o.signal?.addEventListener("abort", stop, { once: true });
  const idle = o.timeout > 0
    ? setInterval(() => {
      if (active === 0 && Date.now() - lastActivity >= o.timeout * 1000) stop();
    }, Math.min(1000, o.timeout * 1000))
    : undefined;
  const common = {
    "Api-Version": system.API_VERSION,
    Server: `tsbox/${VERSION} (linux)`,
    "Docker-Experimental": "false",
    Ostype: "linux",
  };
  const hooks = {
    begin: () => {
      active++;
      lastActivity = Date.now();
    },
    end: () => {
      active--;
      lastActivity = Date.now();
    },
  };
  const serving = new Set<Promise<void>>();
  const acceptLoop = async (listener: ApiListener) => {
    for (;;) {
      let conn: ApiConn;
      try {
        conn = await listener.accept();
      } catch {
        break; // closed: idle, or aborted
      }
      conns.add(conn);
      const p = serveConnection(conn, (req) => dispatch(ctx, req), common, hooks)
        .finally(() => {
          conns.delete(conn);
          serving.delete(p);
        });
      serving.add(p);
    }
    // One listener ending (closed or broken) ends the service, as the idle timeout does.
    stop();
  };
  try {
    await Promise.all(listeners.map(acceptLoop));
  } finally {
    if (idle !== undefined) clearInterval(idle);
    await Deno.remove(o.socket).catch(() => {});
    // Idle keep-alive connections end with the service; containers go on.
    for (const c of conns) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    // Streams that wait on containers (wait, logs -f, attach) end with their connection at
    // their next step; the service does not wait long for them.
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.allSettled([...serving]),
      new Promise((r) => timer = setTimeout(r, 2000)),
    ]);
    clearTimeout(timer);
    store.close();
    globalThis.removeEventListener("unhandledrejection", stray);
  }
}
