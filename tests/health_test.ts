/**
 * Health checks against real containers (root): `--health-*` flags and an image's HEALTHCHECK
 * (built here with `tsbox build`), probes run by the supervisor inside the container, seen
 * through `inspect` (State.Health with its Log), `ps` STATUS and `ps --filter health=`.
 * Short intervals keep it quick; every wait polls with a deadline.
 */
import { join } from "node:path";
import { seedStore } from "./busybox_store.ts";
import { assertEquals, assertMatch, assertOk, assertStringIncludes } from "./assert.ts";
import { tempRoot, tsbox } from "./cli.ts";

const isRoot = Deno.uid() === 0;
const MAIN = new URL("../main.ts", import.meta.url).pathname;

function rootTest(name: string, fn: () => Promise<void>) {
  Deno.test({ name, ignore: !isRoot, sanitizeResources: false, sanitizeOps: false, fn });
}

interface LogEntry {
  Start: string;
  End: string;
  ExitCode: number;
  Output: string;
}
interface Health {
  Status: string;
  FailingStreak: number;
  Log: LogEntry[];
}

/** A store with busybox, the CLI on it, and a cleanup that removes every container. */
async function setup() {
  const { root, cleanup } = await tempRoot();
  await seedStore(root);
  const t = (args: string[]) => tsbox(args, { root });
  const ok = async (args: string[]) => {
    const r = await t(args);
    assertEquals(r.code, 0, `tsbox ${args.join(" ")}: ${r.stdout}\n${r.stderr}`);
    return r.stdout;
  };
  const inspect = async (name: string) =>
    JSON.parse(await ok(["container", "inspect", name]))[0] as {
      State: { Health?: Health; StartedAt: string };
      Config: { Healthcheck?: { Test: string[] } };
    };
  const health = async (name: string) => (await inspect(name)).State.Health;
  const status = async (name: string) =>
    (await ok(["ps", "-a", "--filter", `name=^${name}$`, "--format", "{{.Status}}"])).trim();
  const listed = async (filter: string) =>
    (await ok(["ps", "-a", "--filter", filter, "--format", "{{.Names}}"])).trim().split("\n")
      .filter(Boolean).sort();
  return { root, t, ok, inspect, health, status, listed, cleanup };
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 60_000) {
  const end = Date.now() + ms;
  for (;;) {
    const got = await probe();
    if (got !== undefined) return got;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

rootTest(
  "health: starting until the check succeeds, then healthy; the shell `until` loop works",
  async () => {
    const { root, t, ok, health, status, listed, cleanup } = await setup();
    try {
      // Many retries: the failures before the file exists leave it `starting`.
      await ok([
        "run",
        "-d",
        "--name",
        "t-db",
        "--health-cmd",
        "test -e /tmp/ready && echo ready",
        "--health-interval",
        "300ms",
        "--health-retries",
        "1000",
        "busybox",
        "sleep",
        "1000",
      ]);
      await ok(["run", "-d", "--name", "plain", "busybox", "sleep", "1000"]);
      assertMatch(await status("t-db"), /^Up .* \(health: starting\)$/);
      assertEquals(await listed("health=starting"), ["t-db"]);
      assertEquals(await listed("health=none"), ["plain"]);
      assertMatch(await status("plain"), /^Up [^(]*$/);
      // At least one failed probe before the file exists.
      await until("a failed probe", async () => {
        const h = await health("t-db");
        return h && h.Log.length > 0 ? h : undefined;
      });
      const before = (await health("t-db"))!;
      assertEquals(before.Status, "starting");
      assertOk(
        before.Log.every((e) => e.ExitCode === 1 && e.Output === ""),
        JSON.stringify(before.Log),
      );

      await ok(["exec", "t-db", "touch", "/tmp/ready"]);
      // What the issue asks for, verbatim, through a tsbox on PATH.
      const bin = await Deno.makeTempDir({ prefix: "tsbox-bin-" });
      try {
        await Deno.writeTextFile(
          join(bin, "tsbox"),
          `#!/bin/sh\nexec ${Deno.execPath()} run -A --quiet ${MAIN} --root ${root} "$@"\n`,
          { mode: 0o755 },
        );
        const loop = await new Deno.Command("timeout", {
          args: [
            "120",
            "sh",
            "-c",
            `until [ "$(tsbox inspect -f '{{.State.Health.Status}}' t-db)" = healthy ]; do sleep 0.2; done`,
          ],
          env: { PATH: `${bin}:${Deno.env.get("PATH")}` },
          stdout: "piped",
          stderr: "piped",
        }).output();
        assertEquals(loop.code, 0, new TextDecoder().decode(loop.stderr));
      } finally {
        await Deno.remove(bin, { recursive: true });
      }
      const after = (await health("t-db"))!;
      assertEquals([after.Status, after.FailingStreak], ["healthy", 0]);
      const last = after.Log[after.Log.length - 1];
      assertEquals([last.ExitCode, last.Output], [0, "ready\n"]);
      assertOk(Date.parse(last.End) >= Date.parse(last.Start), JSON.stringify(last));
      assertOk(after.Log.length <= 5, JSON.stringify(after.Log));
      assertMatch(await status("t-db"), /^Up .* \(healthy\)$/);
      assertEquals(await listed("health=healthy"), ["t-db"]);
      assertEquals(await listed("health=starting"), []);
      assertEquals(await listed("health=unhealthy"), []);
      const bogus = await t(["ps", "--filter", "health=bogus"]);
      assertEquals(bogus.code, 1);
      assertStringIncludes(bogus.stderr, "Unrecognised filter value for health: bogus");
    } finally {
      await cleanup();
    }
  },
);

rootTest(
  "health: unhealthy after --health-retries failures; a timeout kills the probe",
  async () => {
    const { ok, health, status, listed, cleanup } = await setup();
    try {
      await ok([
        "run",
        "-d",
        "--name",
        "sick",
        "--health-cmd",
        "echo failing; echo why >&2; exit 3",
        "--health-interval",
        "300ms",
        "--health-retries",
        "3",
        "busybox",
        "sleep",
        "1000",
      ]);
      await ok([
        "run",
        "-d",
        "--name",
        "slow",
        "--health-cmd",
        "sleep 100",
        "--health-interval",
        "300ms",
        "--health-timeout",
        "300ms",
        "--health-retries",
        "1",
        "busybox",
        "sleep",
        "1000",
      ]);
      // Every state seen on the way: `starting` with fewer failures than retries, never more.
      const seen: Health[] = [];
      const sick = await until("sick to turn unhealthy", async () => {
        const h = await health("sick");
        if (h) seen.push(h);
        return h?.Status === "unhealthy" ? h : undefined;
      });
      for (const h of seen.filter((s) => s.Status === "starting")) {
        assertOk(h.FailingStreak < 3 && h.FailingStreak === h.Log.length, JSON.stringify(h));
      }
      assertOk(sick.FailingStreak >= 3, JSON.stringify(sick));
      assertOk(sick.Log.length >= 3, JSON.stringify(sick));
      for (const e of sick.Log) assertEquals([e.ExitCode, e.Output], [3, "failing\nwhy\n"]);
      assertMatch(await status("sick"), /^Up .* \(unhealthy\)$/);
      assertOk((await listed("health=unhealthy")).includes("sick"));

      // The probe outlives its timeout: exit code -1, docker's message, and it is killed, so
      // probes do not pile up inside the container.
      const slow = await until("three timed-out probes", async () => {
        const h = await health("slow");
        return h && h.Log.length >= 3 ? h : undefined;
      });
      assertEquals(slow.Status, "unhealthy");
      for (const e of slow.Log) {
        assertEquals([e.ExitCode, e.Output], [-1, "Health check exceeded timeout (300ms)"]);
      }
      const ps = await ok(["exec", "slow", "ps", "-o", "args"]);
      const probes = ps.split("\n").filter((l) => l.trim() === "sleep 100");
      assertOk(probes.length <= 1, ps);
      assertEquals(await listed("health=unhealthy"), ["sick", "slow"]);
    } finally {
      await cleanup();
    }
  },
);

rootTest("health: failures in --health-start-period do not count", async () => {
  const { ok, inspect, cleanup } = await setup();
  try {
    await ok([
      "run",
      "-d",
      "--name",
      "warming",
      "--health-cmd",
      "exit 1",
      "--health-interval",
      "300ms",
      "--health-start-interval",
      "300ms",
      "--health-start-period",
      "3s",
      "--health-retries",
      "1",
      "busybox",
      "sleep",
      "1000",
    ]);
    const seen: Health[] = [];
    let startedAt = 0;
    const final = await until("warming to turn unhealthy", async () => {
      const c = await inspect("warming");
      startedAt = Date.parse(c.State.StartedAt);
      if (c.State.Health) seen.push(c.State.Health);
      return c.State.Health?.Status === "unhealthy" ? c.State.Health : undefined;
    });
    // With one retry, only the start period kept it `starting` through several failures.
    assertOk(
      seen.some((h) => h.Status === "starting" && h.FailingStreak === 0 && h.Log.length >= 2),
      JSON.stringify(seen),
    );
    const inPeriod = final.Log.filter((e) => Date.parse(e.Start) - startedAt < 3000);
    const counted = final.Log.filter((e) => Date.parse(e.Start) - startedAt >= 3000);
    assertOk(inPeriod.length >= 1, JSON.stringify(final));
    assertEquals(final.FailingStreak, counted.length);
    assertOk(final.FailingStreak >= 1, JSON.stringify(final));
  } finally {
    await cleanup();
  }
});

rootTest(
  "health: an image's HEALTHCHECK runs; --health-cmd overrides it; --no-healthcheck disables it",
  async () => {
    const { root, ok, inspect, health, status, listed, cleanup } = await setup();
    const ctx = await Deno.makeTempDir({ prefix: "tsbox-ctx-" });
    try {
      await Deno.writeTextFile(
        join(ctx, "Dockerfile"),
        `FROM busybox\nHEALTHCHECK --interval=300ms --retries=2 CMD ["/bin/echo", "from-image"]\n`,
      );
      await ok(["build", "-q", "-t", "checked:1", ctx]);
      const run = (name: string, ...flags: string[]) =>
        ok(["run", "-d", "--name", name, ...flags, "checked:1", "sleep", "1000"]);
      await run("imaged");
      await run("overridden", "--health-cmd", "echo from-flag; exit 1");
      await run("disabled", "--no-healthcheck");

      const imaged = await until("the image's check to pass", async () => {
        const h = await health("imaged");
        return h?.Status === "healthy" ? h : undefined;
      });
      assertEquals(imaged.Log[imaged.Log.length - 1].Output, "from-image\n");
      // The flag replaced the test and kept the image's interval and retries.
      const overridden = await until("the flag's check to fail twice", async () => {
        const h = await health("overridden");
        return h?.Status === "unhealthy" ? h : undefined;
      });
      assertEquals(overridden.Log[0].Output, "from-flag\n");
      assertEquals(overridden.FailingStreak, overridden.Log.length);

      // By now the disabled one would have been probed several times.
      const disabled = await inspect("disabled");
      assertEquals(disabled.Config.Healthcheck?.Test, ["NONE"]);
      assertEquals(disabled.State.Health, undefined);
      assertMatch(await status("disabled"), /^Up [^(]*$/);
      assertEquals(await listed("health=none"), ["disabled"]);
      assertEquals((await inspect("imaged")).Config.Healthcheck?.Test, [
        "CMD",
        "/bin/echo",
        "from-image",
      ]);

      const conflict = await tsbox(
        ["run", "-d", "--no-healthcheck", "--health-cmd", "true", "checked:1"],
        { root },
      );
      assertEquals(conflict.code, 125);
      assertStringIncludes(conflict.stderr, "--no-healthcheck conflicts with --health-* options");
      const bad = await tsbox(["run", "-d", "--health-interval", "5", "checked:1"], { root });
      assertStringIncludes(
        bad.stderr,
        'invalid argument "5" for "--health-interval" flag: time: missing unit in duration "5"',
      );
    } finally {
      await Deno.remove(ctx, { recursive: true });
      await cleanup();
    }
  },
);

rootTest("health: a paused container is not probed; probing resumes on unpause", async () => {
  const { ok, health, status, cleanup } = await setup();
  try {
    const run = (name: string) =>
      ok([
        "run",
        "-d",
        "--name",
        name,
        "--health-cmd",
        "true",
        "--health-interval",
        "300ms",
        "busybox",
        "sleep",
        "1000",
      ]);
    await run("t-frozen");
    await run("t-clock");
    const probes = async (name: string) => (await health(name))?.Log.length ?? 0;
    await until("a first probe", async () => await probes("t-frozen") > 0 ? true : undefined);
    await ok(["pause", "t-frozen"]);
    const pausedAt = Date.now();
    assertMatch(await status("t-frozen"), /^Up .* \(Paused\)$/);
    const startedAfter = (h: Health | undefined, t: number) =>
      (h?.Log ?? []).filter((e) => Date.parse(e.Start) > t);
    // The other container's probes are the clock: three of its intervals pass.
    await until(
      "three probes of the other container",
      async () => startedAfter(await health("t-clock"), pausedAt).length >= 3 ? true : undefined,
    );
    // Nothing was started while paused (one under way when it froze may finish later).
    const paused = await health("t-frozen");
    assertEquals(startedAfter(paused, pausedAt), []);
    // Taken before the command: the monitor may probe as soon as the state says running,
    // before the unpause command itself has exited.
    const unpausingAt = Date.now();
    await ok(["unpause", "t-frozen"]);
    const unpausedAt = Date.now();
    const resumed = await until("probes after unpause", async () => {
      const h = await health("t-frozen");
      return startedAfter(h, unpausedAt).length >= 2 ? h : undefined;
    });
    // None started while it was paused, none froze into a timeout: every one passed.
    const inPause = resumed.Log.filter((e) =>
      Date.parse(e.Start) > pausedAt && Date.parse(e.Start) < unpausingAt
    );
    assertEquals(inPause, []);
    for (const e of resumed.Log) assertEquals(e.ExitCode, 0);
    assertEquals(resumed.Status, "healthy");
  } finally {
    await cleanup();
  }
});

rootTest("health through mod.ts: run's healthCmd, the record's health", async () => {
  const { root, cleanup } = await setup();
  const { openStore, ps, run } = await import("../mod.ts");
  const store = await openStore(root);
  try {
    await run(store, "busybox", {
      command: ["sleep", "1000"],
      detach: true,
      name: "t-api",
      health: { command: "echo api", intervalMs: 300 },
    });
    const health = await until("the API container to turn healthy", () => {
      const h = ps(store).find((c) => c.name === "t-api")?.health;
      return Promise.resolve(h?.Status === "healthy" ? h : undefined);
    });
    assertEquals(health.Log[health.Log.length - 1].Output, "api\n");
  } finally {
    store.close();
    await cleanup();
  }
});
