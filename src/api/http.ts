/**
 * A small HTTP/1.1 server over a unix socket for the Engine API. `Deno.serve` cannot hand a
 * connection over after the response head (docker's `attach` and `exec start` upgrade to a raw
 * stream), so the service parses requests itself: one request at a time per connection
 * (keep-alive, as the docker client pools connections), bounded heads and bodies, fixed-length,
 * chunked and hijacked responses.
 *
 * @module
 */

/** Largest request head (request line and headers) accepted. */
const MAX_HEAD = 64 * 1024;
/** Largest request body read into memory (docker's create and similar JSON bodies). */
export const MAX_BODY = 4 * 1024 * 1024;

/** An error answered with `status` and docker's `{"message": ...}` body. */
export class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
    this.name = "HttpError";
  }
}

/** A parsed request. The body is read on demand ({@link ApiRequest.body}). */
export interface ApiRequest {
  readonly method: string;
  /** Path without the query and without a `/v1.NN` prefix (the server strips it). */
  path: string;
  readonly query: URLSearchParams;
  readonly headers: Headers;
  /** The API version the client asked for in its path, if any. */
  version?: string;
  /** The whole body, at most `limit` bytes (default {@link MAX_BODY}); 413 beyond. */
  body(limit?: number): Promise<Uint8Array>;
  /**
   * The body as a stream (for archives: `images/load`), read as the handler consumes it; at
   * most `limit` bytes. Use either this or {@link ApiRequest.body}.
   */
  bodyStream(limit: number): ReadableStream<Uint8Array>;
  /**
   * Aborted when the client closes the connection while a streamed response is being sent
   * (`logs -f`, `wait`, a pull), so that the stream stops instead of polling for no one.
   */
  readonly signal: AbortSignal;
}

/**
 * What the server reads and writes: a unix or TCP `ApiConn`, or a verified TLS connection
 * (tls_listener.ts). Only these three calls are used, so both fit.
 */
export interface ApiConn {
  read(p: Uint8Array): Promise<number | null>;
  write(p: Uint8Array): Promise<number>;
  close(): void;
}

/** A connection taken over after a `101 UPGRADED` (or `200`) head. */
export interface Hijacked {
  readonly conn: ApiConn;
  /** Bytes the client sent after the request head, already read from `conn`. */
  readonly early: Uint8Array;
}

/** What a handler answers. */
export type ApiResponse =
  | {
    readonly status: number;
    readonly headers?: Record<string, string>;
    /** Fixed bodies are sent with Content-Length, streams chunked (each chunk flushed). */
    readonly body?: string | Uint8Array | AsyncIterable<Uint8Array>;
  }
  | {
    /** Docker's raw stream: the handler owns the connection once the head is sent. */
    readonly hijack: (h: Hijacked) => Promise<void>;
    readonly contentType: string;
  };

/** A JSON response. */
export function json(status: number, value: unknown): ApiResponse {
  return {
    status,
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(value) + "\n",
  };
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Buffered reading from a connection. */
class Reader {
  #buf = new Uint8Array(0);
  #eof = false;
  constructor(readonly conn: ApiConn) {}

  #reading?: Promise<boolean>;

  /** One read appended to the buffer; concurrent callers share it (the close watcher, parsing). */
  #fill(): Promise<boolean> {
    this.#reading ??= this.#read().finally(() => this.#reading = undefined);
    return this.#reading;
  }

  async #read(): Promise<boolean> {
    if (this.#eof) return false;
    const chunk = new Uint8Array(64 * 1024);
    const n = await this.conn.read(chunk);
    if (n === null) {
      this.#eof = true;
      return false;
    }
    const joined = new Uint8Array(this.#buf.length + n);
    joined.set(this.#buf);
    joined.set(chunk.subarray(0, n), this.#buf.length);
    this.#buf = joined;
    return true;
  }

  /** Bytes up to and including `delim`, at most `limit`; undefined at a clean EOF before any. */
  async until(delim: Uint8Array, limit: number): Promise<Uint8Array | undefined> {
    for (;;) {
      const at = indexOf(this.#buf, delim);
      if (at >= 0) {
        const out = this.#buf.slice(0, at + delim.length);
        this.#buf = this.#buf.slice(at + delim.length);
        return out;
      }
      if (this.#buf.length > limit) throw new HttpError(431, "request header too large");
      if (!(await this.#fill())) {
        if (this.#buf.length === 0) return undefined;
        throw new HttpError(400, "unexpected end of request");
      }
    }
  }

  /** Exactly `n` bytes. */
  async exact(n: number): Promise<Uint8Array> {
    while (this.#buf.length < n) {
      if (!(await this.#fill())) throw new HttpError(400, "unexpected end of request body");
    }
    const out = this.#buf.slice(0, n);
    this.#buf = this.#buf.slice(n);
    return out;
  }

  /**
   * Reads on in the background while a response streams: what arrives is kept for the next
   * request, and `onEof` runs when the client has closed the connection.
   */
  watchClose(onEof: () => void): void {
    const watch = async () => {
      while (await this.#fill()) {
        // A client that sends more than a request head meanwhile is not waiting for us.
        if (this.#buf.length > MAX_HEAD) return;
      }
      onEof();
    };
    watch().catch(() => onEof());
  }

  /** Up to `max` bytes: what is buffered, else one read; empty at EOF. */
  async some(max: number): Promise<Uint8Array> {
    if (this.#buf.length === 0 && !(await this.#fill())) return new Uint8Array(0);
    const out = this.#buf.slice(0, max);
    this.#buf = this.#buf.slice(out.length);
    return out;
  }

  /** What was read beyond the last request (hijacked connections start with it). */
  take(): Uint8Array {
    const out = this.#buf;
    this.#buf = new Uint8Array(0);
    return out;
  }
}

function indexOf(hay: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

const CRLF = encoder.encode("\r\n");
const HEAD_END = encoder.encode("\r\n\r\n");
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** Reads a body as Content-Length or chunked says, refusing more than `limit` bytes. */
async function readBody(r: Reader, headers: Headers, limit: number): Promise<Uint8Array> {
  const te = headers.get("transfer-encoding");
  if (te !== null) {
    if (te.toLowerCase() !== "chunked") throw new HttpError(501, `transfer encoding ${te}`);
    const parts: Uint8Array[] = [];
    let total = 0;
    for (;;) {
      const line = decoder.decode(await r.until(CRLF, 1024) ?? new Uint8Array()).trim();
      const size = parseInt(line.split(";")[0], 16);
      if (!/^[0-9a-fA-F]+/.test(line) || !Number.isFinite(size)) {
        throw new HttpError(400, "bad chunk size");
      }
      if (size === 0) {
        // Trailers, then the empty line.
        while ((await r.until(CRLF, MAX_HEAD))?.length !== 2) { /* skip trailer */ }
        break;
      }
      total += size;
      if (total > limit) throw new HttpError(413, `request body larger than ${limit} bytes`);
      parts.push(await r.exact(size));
      await r.exact(2);
    }
    const out = new Uint8Array(total);
    let off = 0;
    for (const p of parts) {
      out.set(p, off);
      off += p.length;
    }
    return out;
  }
  const cl = headers.get("content-length");
  if (cl === null) return new Uint8Array(0);
  if (!/^\d+$/.test(cl.trim())) throw new HttpError(400, "bad Content-Length");
  const n = Number(cl.trim());
  if (n > limit) throw new HttpError(413, `request body larger than ${limit} bytes`);
  return await r.exact(n);
}

/** The body as chunks, as Content-Length or chunked says, at most `limit` bytes in all. */
async function* bodyChunks(r: Reader, headers: Headers, limit: number): AsyncGenerator<Uint8Array> {
  let total = 0;
  const count = (n: number) => {
    total += n;
    if (total > limit) throw new HttpError(413, `request body larger than ${limit} bytes`);
  };
  const te = headers.get("transfer-encoding");
  if (te !== null) {
    if (te.toLowerCase() !== "chunked") throw new HttpError(501, `transfer encoding ${te}`);
    for (;;) {
      const line = decoder.decode(await r.until(CRLF, 1024) ?? new Uint8Array()).trim();
      const size = parseInt(line.split(";")[0], 16);
      if (!/^[0-9a-fA-F]+/.test(line) || !Number.isFinite(size)) {
        throw new HttpError(400, "bad chunk size");
      }
      if (size === 0) {
        while ((await r.until(CRLF, MAX_HEAD))?.length !== 2) { /* skip trailer */ }
        return;
      }
      count(size);
      for (let left = size; left > 0;) {
        const part = await r.some(Math.min(left, 1 << 20));
        if (part.length === 0) throw new HttpError(400, "unexpected end of request body");
        left -= part.length;
        yield part;
      }
      await r.exact(2);
    }
  }
  const cl = headers.get("content-length");
  if (cl === null) return;
  if (!/^\d+$/.test(cl.trim())) throw new HttpError(400, "bad Content-Length");
  const n = Number(cl.trim());
  count(n);
  for (let left = n; left > 0;) {
    const part = await r.some(Math.min(left, 1 << 20));
    if (part.length === 0) throw new HttpError(400, "unexpected end of request body");
    left -= part.length;
    yield part;
  }
}

async function writeAll(conn: ApiConn, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await conn.write(data.subarray(off));
}

const REASONS: Record<number, string> = {
  101: "UPGRADED",
  200: "OK",
  201: "Created",
  204: "No Content",
  304: "Not Modified",
  400: "Bad Request",
  404: "Not Found",
  405: "Method Not Allowed",
  409: "Conflict",
  413: "Payload Too Large",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  503: "Service Unavailable",
};

function head(status: number, headers: Record<string, string>): Uint8Array {
  const lines = [`HTTP/1.1 ${status} ${REASONS[status] ?? "Status"}`];
  for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
  return encoder.encode(lines.join("\r\n") + "\r\n\r\n");
}

/** Headers every response carries, as dockerd's. */
export interface ServerHeaders {
  readonly "Api-Version": string;
  readonly Server: string;
  readonly [key: string]: string;
}

/** Hooks of {@link serveConnection} for the idle timeout. */
export interface ConnectionHooks {
  /** A request began (its handler runs until the matching `end`). */
  begin(): void;
  end(): void;
}

/**
 * Serves requests on `conn` until the client closes it, a request is malformed, or a handler
 * hijacks it. `handle` must not throw for ordinary failures (it answers them); what it throws
 * anyway becomes a 500.
 */
export async function serveConnection(
  conn: ApiConn,
  handle: (req: ApiRequest) => Promise<ApiResponse>,
  common: ServerHeaders,
  hooks: ConnectionHooks,
): Promise<void> {
  const r = new Reader(conn);
  try {
    for (;;) {
      let raw: Uint8Array | undefined;
      try {
        raw = await r.until(HEAD_END, MAX_HEAD);
      } catch (err) {
        if (err instanceof HttpError) await answerError(conn, err, common);
        return;
      }
      if (raw === undefined) return;
      hooks.begin();
      try {
        const keep = await serveOne(conn, r, raw, handle, common);
        if (!keep) return;
      } finally {
        hooks.end();
      }
    }
  } catch {
    // The client went away mid-response: nothing to answer.
  } finally {
    try {
      conn.close();
    } catch { /* closed by a hijacker */ }
  }
}

async function answerError(conn: ApiConn, err: HttpError, common: ServerHeaders) {
  const body = encoder.encode(JSON.stringify({ message: err.message }) + "\n");
  await writeAll(
    conn,
    head(err.status, {
      ...common,
      "Content-Type": "application/json",
      "Content-Length": String(body.length),
      Connection: "close",
    }),
  ).catch(() => {});
  await writeAll(conn, body).catch(() => {});
}

/** One request and its response; returns whether the connection stays open for the next. */
async function serveOne(
  conn: ApiConn,
  r: Reader,
  raw: Uint8Array,
  handle: (req: ApiRequest) => Promise<ApiResponse>,
  common: ServerHeaders,
): Promise<boolean> {
  const lines = decoder.decode(raw).split("\r\n").slice(0, -2);
  const [method, target, proto] = (lines[0] ?? "").split(" ");
  if (
    !method || !TOKEN.test(method) || !target?.startsWith("/") || !/^HTTP\/1\.[01]$/.test(proto)
  ) {
    await answerError(conn, new HttpError(400, "malformed request line"), common);
    return false;
  }
  const headers = new Headers();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    const name = line.slice(0, colon);
    if (colon <= 0 || !TOKEN.test(name)) {
      await answerError(conn, new HttpError(400, "malformed header"), common);
      return false;
    }
    try {
      headers.append(name, line.slice(colon + 1).trim());
    } catch {
      await answerError(conn, new HttpError(400, "malformed header value"), common);
      return false;
    }
  }
  let url: URL;
  try {
    url = new URL(target, "http://localhost");
  } catch {
    await answerError(conn, new HttpError(400, "malformed request target"), common);
    return false;
  }
  let bodyRead: Promise<Uint8Array> | undefined;
  /** Set when the handler took the body as a stream; `streamEnded` once it was read to its end. */
  let streamed = false;
  let streamEnded = false;
  const closed = new AbortController();
  const req: ApiRequest = {
    signal: closed.signal,
    method,
    path: url.pathname,
    query: url.searchParams,
    headers,
    bodyStream: (limit: number) => {
      if (bodyRead || streamed) throw new HttpError(500, "request body read twice");
      streamed = true;
      async function* chunks(): AsyncGenerator<Uint8Array> {
        if (headers.get("expect")?.toLowerCase() === "100-continue") {
          await writeAll(conn, encoder.encode("HTTP/1.1 100 Continue\r\n\r\n"));
        }
        yield* bodyChunks(r, headers, limit);
        streamEnded = true;
      }
      return ReadableStream.from(chunks());
    },
    body: (limit = MAX_BODY) =>
      bodyRead ??= (async () => {
        // A client waiting for leave to send its body (curl -T) gets it now.
        if (headers.get("expect")?.toLowerCase() === "100-continue") {
          await writeAll(conn, encoder.encode("HTTP/1.1 100 Continue\r\n\r\n"));
        }
        return await readBody(r, headers, limit);
      })(),
  };
  let res: ApiResponse;
  try {
    res = await handle(req);
  } catch (err) {
    res = json(err instanceof HttpError ? err.status : 500, {
      message: (err as Error).message ?? String(err),
    });
  }
  // An unread body would be taken for the next request: read it (bounded) or close.
  let keep = proto === "HTTP/1.1" && headers.get("connection")?.toLowerCase() !== "close";
  if (streamed) {
    // A body left half-read cannot be skipped safely: the connection ends with this request.
    if (!streamEnded) keep = false;
  } else if (!("hijack" in res)) {
    try {
      await req.body();
    } catch {
      keep = false;
    }
  }
  if ("hijack" in res) {
    const upgrade = headers.get("upgrade") !== null;
    await writeAll(
      conn,
      head(upgrade ? 101 : 200, {
        ...common,
        "Content-Type": res.contentType,
        ...(upgrade ? { Connection: "Upgrade", Upgrade: "tcp" } : {}),
      }),
    );
    await res.hijack({ conn, early: r.take() });
    return false;
  }
  const noBody = method === "HEAD" || res.status === 204 || res.status === 304;
  const hs: Record<string, string> = { ...common, ...res.headers };
  if (!keep) hs.Connection = "close";
  const body = res.body;
  if (body === undefined || typeof body === "string" || body instanceof Uint8Array) {
    const bytes = typeof body === "string" ? encoder.encode(body) : body ?? new Uint8Array(0);
    if (!noBody || method === "HEAD") hs["Content-Length"] = String(bytes.length);
    await writeAll(conn, head(res.status, hs));
    if (!noBody && bytes.length > 0) await writeAll(conn, bytes);
    return keep;
  }
  hs["Transfer-Encoding"] = "chunked";
  // The body was read above: from here on, a read that ends means the client went away.
  r.watchClose(() => closed.abort());
  // The head goes out at once: docker's client waits for it before it goes on (`wait` is asked
  // before `start`, and only answered when the container ends).
  await writeAll(conn, head(res.status, hs));
  for await (const chunk of body) {
    if (chunk.length === 0) continue;
    await writeAll(conn, encoder.encode(chunk.length.toString(16) + "\r\n"));
    await writeAll(conn, chunk);
    await writeAll(conn, CRLF);
  }
  await writeAll(conn, encoder.encode("0\r\n\r\n"));
  return keep;
}
