/**
 * Typed run options (mod.ts's `run`) through the same parsing as `tsbox run`'s flags: each row
 * maps options to flags, parses them as create does and compares the typed values that come
 * out with the ones that went in. No root needed.
 */
import { assertEquals } from "../../tests/assert.ts";
import { createOptions, runConfigFor } from "./create_options.ts";
import { runFlagsOf, type RunOptions } from "./run_typed.ts";

const IMAGE = { Env: ["PATH=/bin"], Cmd: ["sh"], WorkingDir: "/" };

async function parsed(o: RunOptions) {
  const flags = runFlagsOf(o);
  const options = await createOptions(flags, {});
  const { config } = runConfigFor({
    flags,
    options,
    command: [...(o.command ?? [])],
    image: IMAGE,
    layers: [],
    id: "d".repeat(64),
    root: "/store",
  });
  return { flags, options, config };
}

Deno.test("typed run: sizes in bytes and cpus give the same limits", async () => {
  const { options } = await parsed({
    memory: 64 << 20,
    memorySwap: -1,
    cpus: 0.5,
    cpuShares: 512,
    pidsLimit: 20,
  });
  assertEquals(options.resources.memory, 64 << 20);
  assertEquals(options.resources.memorySwap, -1);
  assertEquals(options.resources.cpus, 0.5);
  assertEquals(options.resources.cpuShares, 512);
  assertEquals(options.resources.pidsLimit, 20);
});

Deno.test("typed run: env, labels, user, workdir, hostname, command", async () => {
  const { config, options } = await parsed({
    env: { A: "1", B: "x=y" },
    labels: { tier: "web" },
    user: "1000:1000",
    workdir: "/srv",
    hostname: "box",
    command: ["echo", "hi"],
  });
  assertEquals(config.env.filter((e) => /^[AB]=/.test(e)), ["A=1", "B=x=y"]);
  assertEquals(options.labels, { tier: "web" });
  assertEquals([config.user, config.cwd, config.hostname], ["1000:1000", "/srv", "box"]);
  assertEquals(config.argv, ["echo", "hi"]);
});

Deno.test("typed run: ports, volumes and tmpfs as objects", async () => {
  const { flags, options } = await parsed({
    publish: [
      { container: 80, host: 8080 },
      { container: 53, hostIp: "127.0.0.1", protocol: "udp" },
      { container: 9000 },
    ],
    volumes: [{ source: "/srv/data", target: "/data", readOnly: true }],
    tmpfs: [{ target: "/run", size: 1 << 20 }, { target: "/tmp" }],
  });
  assertEquals(flags.publish, ["8080:80", "127.0.0.1::53/udp", "9000"]);
  const mounts = options.mounts.map((m) => JSON.stringify(m));
  assertEquals(options.mounts.length, 3);
  assertEquals(mounts[0].includes('"/srv/data"') && mounts[0].includes('"/data"'), true);
  assertEquals(flags.tmpfs, ["/run:size=1048576", "/tmp"]);
});

Deno.test("typed run: confinement, restart, stop and health in ms", async () => {
  const { options, config } = await parsed({
    capDrop: ["ALL"],
    capAdd: ["NET_BIND_SERVICE"],
    noNewPrivileges: true,
    restart: "on-failure:3",
    stopSignal: "SIGINT",
    stopTimeoutSec: 4,
    health: { command: "true", intervalMs: 300, retries: 2 },
  });
  assertEquals(options.security.capabilities, [10]);
  assertEquals(options.security.security.noNewPrivileges, true);
  assertEquals(options.restart, { name: "on-failure", maxRetries: 3 });
  assertEquals([options.stopSignal, options.stopTimeout], [2, 4]);
  assertEquals(config.healthcheck?.Test, ["CMD-SHELL", "true"]);
  // Durations in nanoseconds, as docker's image config keeps them.
  assertEquals(config.healthcheck?.Interval, 300e6);
  assertEquals(config.healthcheck?.Retries, 2);
});
