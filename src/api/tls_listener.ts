/**
 * A TCP listener that speaks TLS and admits only clients whose certificate the given CA signed
 * (docker's `--tlsverify`). Deno 2.9's `Deno.listenTls` cannot ask for client certificates, so
 * this is node:tls's server (`requestCert` and `rejectUnauthorized`), whose sockets are adapted
 * to the read/write/close the HTTP code uses ({@link ApiConn}).
 *
 * @module
 */
import { Buffer } from "node:buffer";
import tls from "node:tls";
import type { ApiConn } from "./http.ts";

/** The PEM files of `--tlscacert`, `--tlscert`, `--tlskey`, read. */
export interface TlsFiles {
  /** CA certificates client certificates must chain to. */
  readonly ca: string;
  /** The server's certificate (chain). */
  readonly cert: string;
  /** The server's private key. */
  readonly key: string;
}

/** A listener as the service's accept loop uses it (a `Deno.Listener` fits too). */
export interface ApiListener {
  accept(): Promise<ApiConn>;
  close(): void;
}

/** Bytes a socket may hold unread before it is paused (the client then waits). */
const HIGH_WATER = 1 << 20;

/** A verified TLS socket as an {@link ApiConn}. */
class TlsConn implements ApiConn {
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #ended = false;
  #error: Error | undefined;
  #wake: (() => void) | undefined;

  constructor(readonly socket: tls.TLSSocket) {
    socket.on("data", (b: Buffer) => {
      this.#chunks.push(new Uint8Array(b.buffer, b.byteOffset, b.byteLength));
      this.#buffered += b.byteLength;
      if (this.#buffered > HIGH_WATER) socket.pause();
      this.#notify();
    });
    socket.on("end", () => {
      this.#ended = true;
      this.#notify();
    });
    socket.on("close", () => {
      this.#ended = true;
      this.#notify();
    });
    socket.on("error", (err: Error) => {
      this.#error = err;
      this.#notify();
    });
  }

  #notify() {
    const w = this.#wake;
    this.#wake = undefined;
    w?.();
  }

  async read(p: Uint8Array): Promise<number | null> {
    while (this.#chunks.length === 0) {
      if (this.#error) throw this.#error;
      if (this.#ended) return null;
      await new Promise<void>((r) => this.#wake = r);
    }
    const first = this.#chunks[0];
    const n = Math.min(p.length, first.length);
    p.set(first.subarray(0, n));
    if (n === first.length) this.#chunks.shift();
    else this.#chunks[0] = first.subarray(n);
    this.#buffered -= n;
    if (this.#buffered <= HIGH_WATER && this.socket.isPaused()) this.socket.resume();
    return n;
  }

  write(p: Uint8Array): Promise<number> {
    if (this.#error) return Promise.reject(this.#error);
    if (this.socket.destroyed) return Promise.reject(new Error("connection closed"));
    // Copied: the caller may reuse its buffer once the promise resolves, node may still hold it.
    const copy = Buffer.from(p);
    return new Promise((resolve, reject) => {
      this.socket.write(copy, (err?: Error | null) => err ? reject(err) : resolve(p.length));
    });
  }

  close(): void {
    this.#ended = true;
    // end() flushes what was written and sends TLS's close_notify; a client that never closes
    // its side (allowHalfOpen) is cut off a moment later.
    this.socket.end();
    const timer = setTimeout(() => this.socket.destroy(), 2000);
    Deno.unrefTimer(timer);
    this.socket.once("close", () => clearTimeout(timer));
    this.#notify();
  }
}

/**
 * Listens on `hostname:port` with TLS; `accept` yields only connections whose client showed a
 * certificate `files.ca` signed (the handshake of any other fails before a byte of HTTP).
 */
export async function listenTlsVerified(
  hostname: string,
  port: number,
  files: TlsFiles,
  log?: (line: string) => void,
): Promise<ApiListener> {
  const waiting: ((c: ApiConn | undefined) => void)[] = [];
  const ready: ApiConn[] = [];
  let closed = false;
  const server = tls.createServer({
    ca: files.ca,
    cert: files.cert,
    key: files.key,
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: "TLSv1.2",
    // docker closes its write half when stdin ends (`run -i`); the output still has to go out.
    allowHalfOpen: true,
  }, (socket: tls.TLSSocket) => {
    // rejectUnauthorized ends such handshakes already; checked again so that no unverified
    // connection is ever served.
    if (!socket.authorized || closed) {
      socket.destroy();
      return;
    }
    const conn = new TlsConn(socket);
    const w = waiting.shift();
    if (w) w(conn);
    else ready.push(conn);
  });
  server.on(
    "tlsClientError",
    (err: Error) => log?.(`tsbox: service: TLS client refused: ${err.message}`),
  );
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, hostname, () => {
      server.off("error", reject);
      resolve();
    });
  });
  server.on("error", (err: Error) => log?.(`tsbox: service: ${err.message}`));
  return {
    accept() {
      const c = ready.shift();
      if (c) return Promise.resolve(c);
      if (closed) return Promise.reject(new Error("listener closed"));
      return new Promise((resolve, reject) =>
        waiting.push((conn) => conn ? resolve(conn) : reject(new Error("listener closed")))
      );
    },
    close() {
      if (closed) return;
      closed = true;
      server.close();
      for (const w of waiting.splice(0)) w(undefined);
      for (const c of ready.splice(0)) c.close();
    },
  };
}
