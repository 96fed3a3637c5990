/**
 * What the Engine API tests share: a `tsbox system service` on a socket of the test's own over a
 * temporary root, the docker client (Debian's 20.10, and a newer one where installed) pointed at
 * it, raw HTTP on the socket, and the fixture registry.
 *
 * @module
 */
import { fixtureRegistry } from "./fixtures/images.ts";
import { assertEquals } from "./assert.ts";
import { checkTestName, tempRoot } from "./cli.ts";

/** The API tests drive a root service (containers, networks, the socket's owner). */
export const isRoot = Deno.uid() === 0;
/** tsbox's entry point, run with `deno run -A`. */
export const MAIN = new URL("../main.ts", import.meta.url).pathname;
/** Debian's docker.io client (20.10, the issue's) first, then a newer one where installed. */
export const CLIENTS = ["/usr/bin/docker", "/usr/local/bin/docker"].filter((p) => {
  try {
    return Deno.statSync(p).isFile;
  } catch {
    return false;
  }
});
/** The client the tests use unless they loop over {@link CLIENTS}. */
export const DOCKER = CLIENTS[0];

/** A test that needs root and a docker client (it fails, never skips, in CI as root). */
export function rootTest(name: string, fn: () => Promise<void>) {
  Deno.test({
    name,
    ignore: !isRoot || DOCKER === undefined,
    sanitizeResources: false,
    sanitizeOps: false,
    fn,
  });
}

/** A running `tsbox system service`. */
export interface Service {
  readonly socket: string;
  readonly child: Deno.ChildProcess;
  stop(): Promise<void>;
}

/** Starts a service on `socket` over `root` and waits until it answers. */
export async function startService(
  root: string,
  socket: string,
  extra: string[] = [],
): Promise<Service> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--quiet",
      MAIN,
      "--root",
      root,
      "system",
      "service",
      "--socket",
      socket,
      "--timeout",
      "0",
      ...extra,
    ],
    env: { DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
    stdin: "null",
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  // Ready once it answers (a killed service's stale socket file may still be there).
  for (let i = 0; i < 300; i++) {
    const conn = await Deno.connect({ transport: "unix", path: socket }).catch(() => undefined);
    if (conn) {
      conn.close();
      break;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    socket,
    child,
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch { /* ended */ }
      await child.status;
    },
  };
}

/** What a client run printed and its exit code. */
export interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the docker client against `socket`, with a config dir of its own. */
export async function docker(
  socket: string,
  args: string[],
  config: string,
  stdin?: string,
  client = DOCKER,
): Promise<Result> {
  args.forEach((a, i) => {
    if (a === "--name") checkTestName(args[i + 1]);
  });
  const child = new Deno.Command(client!, {
    args,
    // The classic builder's API (BuildKit's session protocol is not served).
    env: {
      DOCKER_HOST: `unix://${socket}`,
      DOCKER_CONFIG: config,
      NO_COLOR: "1",
      DOCKER_BUILDKIT: "0",
    },
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  // A client that hangs fails its test (exit 137) instead of holding the suite.
  const guard = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* ended */ }
  }, 120_000);
  const out = await child.output().finally(() => clearTimeout(guard));
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** The stdout of a client run that must succeed. */
export async function ok(p: Promise<Result>): Promise<string> {
  const r = await p;
  assertEquals(r.code, 0, `${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** One raw HTTP/1.1 exchange on the socket (what a hostile client can send). */
export async function rawRequest(socket: string, request: string): Promise<string> {
  const conn = await Deno.connect({ transport: "unix", path: socket });
  try {
    await conn.write(new TextEncoder().encode(request));
    const buf = new Uint8Array(65536);
    let text = "";
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      text += new TextDecoder().decode(buf.subarray(0, n));
      // One response with Content-Length: stop once it is all here.
      const m = /Content-Length: (\d+)\r\n/i.exec(text);
      const end = text.indexOf("\r\n\r\n");
      if (m && end >= 0 && text.length >= end + 4 + Number(m[1])) break;
    }
    return text;
  } finally {
    conn.close();
  }
}

/**
 * A fresh root, a service on a socket in a temporary directory, and `d(...args)` running the
 * client against it; `cleanup()` stops the service and removes both.
 */
export async function setup(client = DOCKER) {
  const fx = await fixtureRegistry();
  const { root, cleanup } = await tempRoot();
  const dir = await Deno.makeTempDir({ prefix: "tsbox-api-" });
  const socket = `${dir}/tsbox.sock`;
  const config = `${dir}/docker-config`;
  await Deno.mkdir(config);
  let service = await startService(root, socket);
  const d = (...args: string[]) => docker(socket, args, config, undefined, client);
  const withInput = (stdin: string, ...args: string[]) =>
    docker(socket, args, config, stdin, client);
  return {
    fx,
    root,
    socket,
    dir,
    config,
    d,
    withInput,
    get service() {
      return service;
    },
    async restart() {
      service = await startService(root, socket);
    },
    async cleanup() {
      await service.stop();
      await cleanup();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}
