/**
 * Published-port throughput: wrk (10 s, 50 connections, 2 threads) against the fixture nginx
 * reached four ways in one run, interleaved round by round:
 *   - through `tsbox run -p` on the default bridge (the kernel's DNAT, src/net/dnat.ts),
 *   - through `tsbox run --network private -p` (the userspace proxy, which the bridge used
 *     before DNAT and which serves what DNAT cannot),
 *   - directly (`tsbox run --network host`, nginx listening on another port),
 *   - through `podman run -p` (runc), where podman works on this machine.
 * Prints requests/s per round, medians and the ratios to direct. Target: tsbox >= 0.85x direct.
 * Needs root, wrk, Debian's docker-registry and skopeo (fixture registry); not part of CI.
 *
 *     deno run -A bench/ports_bench.ts [--rounds N] [--seconds S] [--access-log]
 *
 * `--access-log` keeps nginx's access log (each request a line through the supervisor's log
 * pipe, which the userspace proxy shares a process with), as issue 13's first figures had it.
 */
import { join } from "node:path";
import { fixtureRegistry } from "../tests/fixtures/images.ts";
import { takeDownStoreNetworks } from "../tests/cleanup.ts";
import { benchRow } from "./table.ts";

const args = Deno.args;
const flag = (name: string, def: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const ROUNDS = flag("--rounds", 3);
const ACCESS_LOG = args.includes("--access-log");
const SECONDS = flag("--seconds", 10);
const MAIN = new URL("../main.ts", import.meta.url).pathname;
const decoder = new TextDecoder();

async function run(cmd: string, cmdArgs: string[], env?: Record<string, string>) {
  const out = await new Deno.Command(cmd, { args: cmdArgs, env, stdout: "piped", stderr: "piped" })
    .output();
  return {
    ok: out.success,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
  };
}

async function must(cmd: string, cmdArgs: string[], env?: Record<string, string>) {
  const r = await run(cmd, cmdArgs, env);
  if (!r.ok) throw new Error(`${cmd} ${cmdArgs.join(" ")}: ${r.stderr.trim()}`);
  return r.stdout.trim();
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function waitHttp(port: number): Promise<void> {
  const end = Date.now() + 20_000;
  while (Date.now() < end) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/`);
      await r.body?.cancel();
      if (r.ok) return;
    } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`nothing answers on 127.0.0.1:${port}`);
}

/** Requests per second of one wrk run against 127.0.0.1:port. */
async function wrk(port: number): Promise<number> {
  const out = await must("wrk", [
    "-t2",
    "-c50",
    `-d${SECONDS}s`,
    "--latency",
    `http://127.0.0.1:${port}/`,
  ]);
  const m = /Requests\/sec:\s+([0-9.]+)/.exec(out);
  if (!m) throw new Error(`no Requests/sec in wrk output:\n${out}`);
  if (/Non-2xx or 3xx responses|Socket errors/.test(out)) {
    console.error(`wrk on port ${port} reported errors:\n${out}`);
  }
  return Number(m[1]);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const fx = await fixtureRegistry();
const work = await Deno.makeTempDir({ prefix: "tsbox-ports-bench-" });
const root = join(work, "root");
const tsbox = (more: string[]) =>
  must(Deno.execPath(), ["run", "-A", MAIN, "--root", root, ...more]);
const started: string[] = [];
const podmanStarted: string[] = [];
const podmanEnv = { ...Deno.env.toObject(), CONTAINERS_CONF: join(work, "containers.conf") };
const podmanBase = ["--root", join(work, "podman"), "--runroot", join(work, "podman-run")];

try {
  await tsbox(["pull", "-q", fx.refs.nginx]);
  // Request logging off in every variant (unless --access-log): each logged request is a line
  // through the container's log pipeline, which would dominate what this bench means to compare
  // (the path a connection takes to nginx). The config is otherwise the image's own.
  const imageConf = await tsbox(["run", "--rm", fx.refs.nginx, "cat", "/etc/nginx/nginx.conf"]);
  const quiet = ACCESS_LOG ? imageConf : imageConf.replace(/access_log [^;]+;/, "access_log off;");
  await Deno.writeTextFile(join(work, "nginx.conf"), quiet);
  const mountConf = (file: string) => ["-v", `${join(work, file)}:/etc/nginx/nginx.conf:ro`];

  const proxied = freePort();
  started.push(
    await tsbox([
      "run",
      "-d",
      ...mountConf("nginx.conf"),
      "-p",
      `127.0.0.1:${proxied}:80`,
      fx.refs.nginx,
    ]),
  );
  // The userspace proxy: a private namespace has no bridge to DNAT to.
  const userspace = freePort();
  started.push(
    await tsbox([
      "run",
      "-d",
      "--network",
      "private",
      ...mountConf("nginx.conf"),
      "-p",
      `127.0.0.1:${userspace}:80`,
      fx.refs.nginx,
    ]),
  );
  // The same image on the host network, listening on another port.
  const direct = freePort();
  await Deno.writeTextFile(
    join(work, "nginx-direct.conf"),
    quiet.replace(/listen 80 default_server;/, `listen 127.0.0.1:${direct} default_server;`),
  );
  started.push(
    await tsbox([
      "run",
      "-d",
      "--network",
      "host",
      ...mountConf("nginx-direct.conf"),
      fx.refs.nginx,
    ]),
  );
  await waitHttp(proxied);
  await waitHttp(userspace);
  await waitHttp(direct);

  let podmanPort: number | undefined;
  try {
    await Deno.writeTextFile(
      join(work, "containers.conf"),
      '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n',
    );
    const podman = (more: string[]) =>
      must("podman", [...podmanBase, "--runtime", "runc", ...more], podmanEnv);
    await podman(["pull", "-q", "--tls-verify=false", fx.refs.nginx]);
    podmanPort = freePort();
    podmanStarted.push(
      await podman([
        "run",
        "-d",
        ...mountConf("nginx.conf"),
        "-p",
        `127.0.0.1:${podmanPort}:80`,
        fx.refs.nginx,
      ]),
    );
    await waitHttp(podmanPort);
  } catch (err) {
    console.error(`podman run -p does not work here, left out: ${(err as Error).message}`);
    podmanPort = undefined;
  }

  const results: Record<string, number[]> = { tsbox: [], proxy: [], direct: [], podman: [] };
  for (let round = 1; round <= ROUNDS; round++) {
    results.tsbox.push(await wrk(proxied));
    results.proxy.push(await wrk(userspace));
    results.direct.push(await wrk(direct));
    if (podmanPort !== undefined) results.podman.push(await wrk(podmanPort));
    console.log(
      `round ${round}: tsbox -p ${results.tsbox.at(-1)!.toFixed(0)} req/s, userspace proxy ${
        results.proxy.at(-1)!.toFixed(0)
      } req/s, direct ${results.direct.at(-1)!.toFixed(0)} req/s` +
        (podmanPort !== undefined ? `, podman -p ${results.podman.at(-1)!.toFixed(0)} req/s` : ""),
    );
  }
  const d = median(results.direct);
  console.log(`\nmedians over ${ROUNDS} rounds of ${SECONDS} s, 50 connections:`);
  console.log(`  direct (host network)  ${d.toFixed(0)} req/s`);
  console.log(
    `  tsbox -p (DNAT)        ${median(results.tsbox).toFixed(0)} req/s  ${
      (median(results.tsbox) / d).toFixed(2)
    }x direct (target >= 0.85x)`,
  );
  console.log(
    `  tsbox -p (userspace)   ${median(results.proxy).toFixed(0)} req/s  ${
      (median(results.proxy) / d).toFixed(2)
    }x direct (--network private)`,
  );
  benchRow({
    work: "HTTP through -p (wrk, 50 connections) vs the same container on the host network",
    tsbox: `${median(results.tsbox).toFixed(0)} req/s`,
    peer: `${d.toFixed(0)} req/s`,
    ratio: median(results.tsbox) / d,
    target: "≥ 0.85",
  });
  benchRow({
    work: "HTTP through -p, userspace proxy (--network private) vs the host network",
    tsbox: `${median(results.proxy).toFixed(0)} req/s`,
    peer: `${d.toFixed(0)} req/s`,
    ratio: median(results.proxy) / d,
    target: "(kept for IPv6, rootless)",
  });
  if (results.podman.length > 0) {
    const p = median(results.podman);
    benchRow({
      work: "HTTP through -p vs podman -p (runc), same run",
      tsbox: `${median(results.tsbox).toFixed(0)} req/s`,
      peer: `${p.toFixed(0)} req/s`,
      ratio: median(results.tsbox) / p,
      target: "≥ 1.00",
    });
    console.log(
      `  podman -p (runc)       ${p.toFixed(0)} req/s  ${
        (p / d).toFixed(2)
      }x direct; tsbox/podman ${(median(results.tsbox) / p).toFixed(2)}x`,
    );
  }
} finally {
  for (const id of started) {
    await run(Deno.execPath(), ["run", "-A", MAIN, "--root", root, "rm", "-f", id]);
  }
  if (podmanStarted.length > 0) {
    // Everything podman made lives under this bench's --root: remove all of it, and say so
    // when that fails rather than leave a container running unnoticed.
    const rm = await run("podman", [...podmanBase, "--runtime", "runc", "rm", "-af", "-t", "0"], {
      ...podmanEnv,
    });
    if (!rm.ok) console.error(`podman rm failed: ${rm.stderr.trim()}`);
  }
  await run("podman", [...podmanBase, "system", "reset", "-f"], podmanEnv).catch(() => {});
  takeDownStoreNetworks(root); // the default bridge is the host's
  await Deno.remove(work, { recursive: true }).catch(() => {});
}
