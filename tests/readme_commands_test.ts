/**
 * README commands that had no end-to-end test (issue 19, finding 6), each checked by its
 * observable effect on a real container of the fixture busybox, pulled by tsbox from the test
 * registry (root): restart, kill -s, info, logs --since/--until, run -h, --memory-swap,
 * --restart unless-stopped and always, stop -s, pull --platform.
 */
import { assertEquals, assertMatch, assertOk, assertStringIncludes } from "./assert.ts";
import { type CliResult, tempRoot, tsbox } from "./cli.ts";
import { processesUsing, purgeRootSync } from "./cleanup.ts";
import { fixtureRegistry } from "./fixtures/images.ts";

const isRoot = Deno.uid() === 0;

function rootTest(name: string, fn: () => Promise<void>) {
  Deno.test({ name, ignore: !isRoot, sanitizeResources: false, sanitizeOps: false, fn });
}

let shared: Promise<{ root: string; image: string }> | undefined;

/** One store per test process holding the fixture busybox, pulled with tsbox. */
function store(): Promise<{ root: string; image: string }> {
  shared ??= (async () => {
    const fx = await fixtureRegistry();
    const { root } = await tempRoot();
    globalThis.addEventListener("unload", () => purgeRootSync(root));
    const pulled = await tsbox(["pull", "-q", fx.refs.busybox], { root });
    if (pulled.code !== 0) throw new Error(pulled.stderr);
    return { root, image: fx.refs.busybox };
  })();
  return shared;
}

function uniqueName(what: string): string {
  return `t-${what}-${crypto.randomUUID().slice(0, 8)}`;
}

async function cli(args: string[]): Promise<CliResult> {
  return tsbox(args, { root: (await store()).root });
}

async function ok(args: string[]): Promise<string> {
  const r = await cli(args);
  assertEquals(r.code, 0, `tsbox ${args.join(" ")}: ${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

interface Inspected {
  Id: string;
  RestartCount: number;
  Config: { Hostname: string };
  HostConfig: { Memory: number; MemorySwap: number };
  State: { Status: string; Running: boolean; Pid: number; ExitCode: number; StartedAt: string };
}

async function inspect(name: string): Promise<Inspected> {
  return JSON.parse(await ok(["inspect", name]))[0];
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Polls the container's stdout log until it has `line` (`count` times). */
function logLine(name: string, line: string, count = 1): Promise<string> {
  return until(`${count} "${line}" in the logs of ${name}`, async () => {
    const out = (await cli(["logs", name])).stdout;
    return out.split("\n").filter((l) => l === line).length >= count ? out : undefined;
  });
}

/** Runs `fn` with a detached container, removed (forced) however `fn` ends. */
async function withContainer(
  what: string,
  runArgs: string[],
  fn: (name: string) => Promise<void>,
): Promise<void> {
  const { image } = await store();
  const name = uniqueName(what);
  const [opts, cmd] = [
    runArgs.slice(0, runArgs.indexOf("--")),
    runArgs.slice(runArgs.indexOf("--") + 1),
  ];
  try {
    await ok(["run", "-d", "--name", name, ...opts, image, ...cmd]);
    await fn(name);
  } finally {
    await cli(["rm", "-f", name]);
  }
}

rootTest("restart: same id, a new start time and PID 1, the command run again", async () => {
  await withContainer("restart", ["--", "sh", "-c", "echo started; exec sleep 300"], async (n) => {
    await logLine(n, "started");
    const before = await inspect(n);
    assertEquals(before.State.Running, true);
    await ok(["restart", "-t", "1", n]);
    const after = await inspect(n);
    assertEquals(after.Id, before.Id);
    assertEquals(after.State.Running, true);
    assertOk(after.State.Pid !== before.State.Pid, "a new PID 1");
    assertOk(
      Date.parse(after.State.StartedAt) > Date.parse(before.State.StartedAt),
      `StartedAt ${after.State.StartedAt} after ${before.State.StartedAt}`,
    );
    await logLine(n, "started", 2);
    const ps = (await ok(["ps", "-q", "--no-trunc", "--filter", `name=${n}`])).trim();
    assertEquals(ps, before.Id);
  });
});

/** A shell that reports each trapped signal in its log and keeps running. */
const TRAPS = "trap 'echo got-usr1' USR1; trap 'echo got-term; exit 3' TERM; echo ready; " +
  "while :; do sleep 1 & wait $!; done";

rootTest("kill -s USR1 reaches the container's process, which goes on; kill ends it", async () => {
  await withContainer("kill", ["--", "sh", "-c", TRAPS], async (n) => {
    await logLine(n, "ready");
    await ok(["kill", "-s", "USR1", n]);
    await logLine(n, "got-usr1");
    await ok(["kill", "-s", "SIGUSR1", n]);
    await logLine(n, "got-usr1", 2);
    assertEquals((await inspect(n)).State.Running, true, "USR1 is trapped, not fatal");
    await ok(["kill", n]);
    const state = await until("the killed container to be recorded", async () => {
      const s = (await inspect(n)).State;
      return s.Status === "exited" ? s : undefined;
    });
    assertEquals(state.ExitCode, 137, "kill's default is SIGKILL");
  });
});

rootTest("stop -s USR2 sends USR2, not the container's stop signal", async () => {
  const script = "trap 'exit 7' USR2; trap 'exit 3' TERM; echo ready; " +
    "while :; do sleep 1 & wait $!; done";
  await withContainer("stop-s", ["--", "sh", "-c", script], async (n) => {
    await logLine(n, "ready");
    await ok(["stop", "-s", "USR2", "-t", "30", n]);
    const state = (await inspect(n)).State;
    assertEquals(state.Status, "exited");
    assertEquals(state.ExitCode, 7, "USR2's trap ran (TERM's would exit 3, SIGKILL 137)");
  });
});

rootTest("logs --since/--until cut at the lines' own timestamps", async () => {
  // Each line waits until the test has seen the one before in the log (a file the test makes),
  // so that no two lines share a timestamp however slow the machine is.
  const script = "for l in one two three four; do echo $l; i=0; " +
    "while [ ! -e /tmp/$l ] && [ $i -lt 3000 ]; do usleep 20000; i=$((i+1)); done; done";
  await withContainer("logs", ["--", "sh", "-c", script], async (n) => {
    const pid = (await inspect(n)).State.Pid;
    for (const line of ["one", "two", "three", "four"]) {
      await logLine(n, line);
      await Deno.writeTextFile(`/proc/${pid}/root/tmp/${line}`, "");
    }
    await ok(["wait", n]);
    const stamped = (await ok(["logs", "-t", n])).trim().split("\n").map((l) => {
      const [ts, text] = l.split(" ");
      return { ms: Date.parse(ts), text };
    });
    assertEquals(stamped.map((e) => e.text), ["one", "two", "three", "four"]);
    // Cut points halfway between lines, as RFC 3339 and as Unix seconds.
    const mid = (i: number) => (stamped[i].ms + stamped[i + 1].ms) / 2;
    const iso = (ms: number) => new Date(ms).toISOString();
    const lines = async (args: string[]) => (await ok(["logs", ...args, n])).trim().split("\n");
    assertEquals(await lines(["--since", iso(mid(0))]), ["two", "three", "four"]);
    assertEquals(await lines(["--until", iso(mid(1))]), ["one", "two"]);
    assertEquals(await lines(["--since", iso(mid(0)), "--until", iso(mid(2))]), ["two", "three"]);
    assertEquals(await lines(["--since", (mid(2) / 1000).toFixed(3)]), ["four"]);
    assertEquals(await lines(["--since", "1h"]), ["one", "two", "three", "four"]);
    assertEquals(await ok(["logs", "--until", iso(stamped[0].ms - 1000), n]), "");
  });
});

rootTest("run -h NAME: the container's hostname, /etc/hostname and inspect agree", async () => {
  const { image } = await store();
  const name = uniqueName("host");
  try {
    const out = await ok([
      "run",
      "--name",
      name,
      "-h",
      "t-box.example",
      image,
      "sh",
      "-c",
      "hostname; cat /etc/hostname; uname -n",
    ]);
    assertEquals(out, "t-box.example\n".repeat(3));
    assertEquals((await inspect(name)).Config.Hostname, "t-box.example");
    // Without -h: the short id, as docker does.
    const plain = await ok(["run", "--rm", image, "hostname"]);
    assertMatch(plain.trim(), /^[0-9a-f]{12}$/);
  } finally {
    await cli(["rm", "-f", name]);
  }
});

function cmdline(pid: number): string[] {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0");
  } catch {
    return [];
  }
}

function memoryCgroup(id: string): string {
  return `/sys/fs/cgroup/memory/tsbox/${id}`;
}

rootTest("--memory-swap sets the kernel's memory+swap limit (v1 memsw), -1 lifts it", async () => {
  const memsw = async (name: string) => {
    const { Id } = await inspect(name);
    return Number(
      (await Deno.readTextFile(`${memoryCgroup(Id)}/memory.memsw.limit_in_bytes`)).trim(),
    );
  };
  const mb = 1024 * 1024;
  assertOk(
    await Deno.stat("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").then(
      () => true,
      () => false,
    ),
    "this host has swap accounting (v1 memsw)",
  );
  await withContainer(
    "swap",
    ["--memory", "32m", "--memory-swap", "48m", "--", "sleep", "300"],
    async (n) => {
      const c = await inspect(n);
      assertEquals([c.HostConfig.Memory, c.HostConfig.MemorySwap], [32 * mb, 48 * mb]);
      assertEquals(
        Number((await Deno.readTextFile(`${memoryCgroup(c.Id)}/memory.limit_in_bytes`)).trim()),
        32 * mb,
      );
      assertEquals(await memsw(n), 48 * mb);
    },
  );
  await withContainer("swapdef", ["--memory", "32m", "--", "sleep", "300"], async (n) => {
    assertEquals(await memsw(n), 64 * mb, "docker's default: twice --memory");
  });
  await withContainer(
    "swapoff",
    ["--memory", "32m", "--memory-swap", "-1", "--", "sleep", "300"],
    async (n) => {
      assertOk(await memsw(n) > 1024 * 1024 * mb, "unlimited");
    },
  );
});

rootTest("--restart unless-stopped restarts after a non-zero exit until stopped", async () => {
  await withContainer(
    "unless",
    ["--restart", "unless-stopped", "--", "sh", "-c", "echo run; exit 3"],
    async (n) => {
      await until(
        "two restarts",
        async () => ((await inspect(n)).RestartCount >= 2 ? true : undefined),
      );
      await logLine(n, "run", 3);
      const { Id } = await inspect(n);
      await ok(["stop", "-t", "1", n]);
      // Stopped stays stopped: its supervisor, the only thing that restarts it, is gone.
      const { root } = await store();
      await until("the supervisor to exit", () => {
        const left = processesUsing(root).filter((pid) => cmdline(pid).includes(Id));
        return Promise.resolve(left.length === 0 ? true : undefined);
      });
      const c = await inspect(n);
      assertEquals(c.State.Status, "exited");
      assertOk([3, 143].includes(c.State.ExitCode), `exit code ${c.State.ExitCode}`);
      assertEquals((await ok(["ps", "-q", "--filter", `name=${n}`])).trim(), "");
    },
  );
});

rootTest(
  "info: the store's root, this host's cgroup controllers, kernel and capabilities",
  async () => {
    const { root } = await store();
    const info = new Map(
      (await ok(["info"])).trim().split("\n").map((l) => {
        const at = l.indexOf(": ");
        return [l.slice(0, at), l.slice(at + 2)] as [string, string];
      }),
    );
    assertEquals(info.get("Root Dir"), root);
    assertEquals(info.get("Storage Driver"), "overlay2");
    assertEquals(info.get("Kernel Version"), Deno.osRelease());
    // The bounding set of this (root) process, counted from its CapBnd mask.
    const capBnd = /^CapBnd:\s+([0-9a-f]+)$/m.exec(Deno.readTextFileSync("/proc/self/status"))![1];
    const caps = [...BigInt(`0x${capBnd}`).toString(2)].filter((b) => b === "1").length;
    assertEquals(info.get("Capabilities Available"), String(caps));
    // Each controller info names as v1 has a cgroup v1 mount of its own here, each v2 one is in
    // the v2 hierarchy's cgroup.controllers: checked against the kernel's mount table.
    const mountinfo = Deno.readTextFileSync("/proc/self/mountinfo").split("\n");
    const v1Mounted = new Set(
      mountinfo.filter((l) => l.includes(" - cgroup ")).flatMap((l) =>
        l.split(" ").at(-1)!.split(",")
      ),
    );
    const cgroup = info.get("Cgroup Version") ?? "";
    const hybrid = /^hybrid \(v1: ([a-z_,]+); v2: ([a-z_,]+|none)\)$/.exec(cgroup);
    if (hybrid) {
      for (const c of hybrid[1].split(",")) assertOk(v1Mounted.has(c), `${c} is mounted as v1`);
      const v2 = mountinfo.find((l) => l.includes(" - cgroup2 "))?.split(" ")[4];
      const v2Controllers = v2
        ? Deno.readTextFileSync(`${v2}/cgroup.controllers`).trim().split(/\s+/)
        : [];
      for (const c of hybrid[2] === "none" ? [] : hybrid[2].split(",")) {
        assertOk(v2Controllers.includes(c), `${c} is a v2 controller here`);
      }
    } else {
      assertMatch(cgroup, /^[12]$/, "docker prints 1 or 2");
    }
    assertStringIncludes(info.get("Security Options") ?? "", "seccomp");
  },
);

rootTest("--restart always restarts after a clean exit too, until stopped", async () => {
  await withContainer(
    "always",
    ["--restart", "always", "--", "sh", "-c", "echo run"],
    async (n) => {
      await until(
        "two restarts",
        async () => ((await inspect(n)).RestartCount >= 2 ? true : undefined),
      );
      await logLine(n, "run", 3);
      await ok(["stop", "-t", "1", n]);
      assertEquals((await inspect(n)).State.Running, false);
    },
  );
});

rootTest("pull --platform picks that platform from a multi-platform image", async () => {
  const fx = await fixtureRegistry();
  const { root, cleanup } = await tempRoot();
  try {
    for (const [platform, arch] of [["linux/arm64", "arm64"], ["linux/amd64", "amd64"]]) {
      const pulled = await tsbox(["pull", "-q", "--platform", platform, fx.refs.multiOci], {
        root,
      });
      assertEquals(pulled.code, 0, pulled.stderr);
      const image = await tsbox(["image", "inspect", "-f", "{{.Architecture}}", fx.refs.multiOci], {
        root,
      });
      assertEquals(image.stdout.trim(), arch, image.stderr);
    }
    const bad = await tsbox(["pull", "--platform", "linux/s390x", fx.refs.multiOci], { root });
    assertEquals(bad.code, 125);
    assertMatch(bad.stderr, /s390x/);
  } finally {
    await cleanup();
  }
});

rootTest("stats --no-stream shows the CPU a busy container uses", async () => {
  await withContainer("busy", ["--", "sh", "-c", "echo go; while :; do :; done"], async (n) => {
    await logLine(n, "go");
    const percent = await until("a CPU sample above zero", async () => {
      const out = await ok(["stats", "--no-stream", "--format", "{{.CPUPerc}}", n]);
      const value = Number(out.trim().replace("%", ""));
      return value > 0 ? value : undefined;
    });
    assertOk(percent > 0, `CPU ${percent}%`);
  });
});
