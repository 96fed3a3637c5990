/**
 * `run`/`create` flags of issue 18 against real containers (root): `--init`, `--pull`,
 * `--platform`, `--stop-signal`/`--stop-timeout`, `--cidfile`, `--group-add`, `--shm-size`,
 * `--sysctl` and `--log-opt`, each checked by what the container or the host shows.
 */
import { join } from "node:path";
import { sharedBusyboxRoot } from "./busybox_store.ts";
import { assertEquals, assertMatch, assertOk, assertStringIncludes } from "./assert.ts";
import { tempRoot, tsbox } from "./cli.ts";
import { fixtureRegistry, pushLayout } from "./fixtures/images.ts";

const isRoot = Deno.uid() === 0;

function rootTest(name: string, fn: () => Promise<void>) {
  Deno.test({ name, ignore: !isRoot, sanitizeResources: false, sanitizeOps: false, fn });
}

async function cli(args: string[], env?: Record<string, string>) {
  return await tsbox(args, { root: await sharedBusyboxRoot(), env });
}

/** Runs `args`, failing the test with its stderr unless it exits 0; returns stdout trimmed. */
async function ok(args: string[]): Promise<string> {
  const r = await cli(args);
  assertEquals(r.code, 0, `tsbox ${args.join(" ")}: ${r.stderr}`);
  return r.stdout.trim();
}

/** Polls `check` every 100 ms until it returns true; fails after `ms`. */
async function eventually(what: string, check: () => Promise<boolean>, ms = 20_000) {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Container names (`ps -a`) in the shared root, to check a refused run created nothing. */
async function containerCount(): Promise<number> {
  return (await ok(["ps", "-aq"])).split("\n").filter(Boolean).length;
}

/** `ps -o stat,args` lines inside container `name`, without the header and ps itself. */
async function processes(name: string): Promise<string[]> {
  const r = await cli(["exec", name, "ps", "-o", "pid,stat,args"]);
  assertEquals(r.code, 0, r.stderr);
  return r.stdout.trim().split("\n").slice(1).filter((l) => !/\sps -o /.test(l));
}

// A child that double-forks: its child `sleep 0.3` is orphaned, reparented to PID 1, and
// becomes a zombie when it ends unless PID 1 reaps it. PID 1's command then execs a process
// that never waits.
const DOUBLE_FORK = `sh -c "sleep 0.3 &"; exec sleep 1000`;

rootTest(
  "--init: PID 1 is the init, and it reaps an orphan that a plain PID 1 leaves a zombie",
  async () => {
    await ok(["run", "-d", "--init", "--name", "t-init-reap", "busybox", "sh", "-c", DOUBLE_FORK]);
    await ok(["run", "-d", "--name", "t-noinit-reap", "busybox", "sh", "-c", DOUBLE_FORK]);
    try {
      // Without an init the orphan stays a zombie: the setup makes one.
      await eventually("a zombie without --init", async () => {
        return (await processes("t-noinit-reap")).some((l) => /^\s*\d+\s+Z/.test(l));
      });
      // With --init the orphan is gone (reaped): only the init and the command are left.
      await eventually("the orphan reaped under --init", async () => {
        const procs = await processes("t-init-reap");
        return procs.length === 2 && !procs.some((l) => /^\s*\d+\s+Z/.test(l));
      });
      const procs = await processes("t-init-reap");
      assertMatch(procs[0], /^\s*1\s+\S+\s+\/dev\/init -- sh -c /);
      assertMatch(procs[1], /^\s*\d+\s+\S+\s+sleep 1000$/);
      // The init is the host's catatonit, bound read-only.
      const r = await cli(["exec", "t-init-reap", "sh", "-c", "echo x > /dev/init"]);
      assertOk(r.code !== 0, "/dev/init must be read-only");
      assertStringIncludes(r.stderr, "Read-only file system");
    } finally {
      await cli(["rm", "-f", "t-init-reap", "t-noinit-reap"]);
    }
  },
);

rootTest(
  "--init: stop's SIGTERM reaches the command's trap, and its exit code passes through",
  async () => {
    await ok([
      "run",
      "-d",
      "--init",
      "--name",
      "t-init-term",
      "busybox",
      "sh",
      "-c",
      'trap "echo got TERM; exit 42" TERM; echo ready; while :; do sleep 0.1; done',
    ]);
    try {
      await eventually("the trap set", async () => (await ok(["logs", "t-init-term"])) === "ready");
      await ok(["stop", "t-init-term"]);
      assertEquals(await ok(["inspect", "-f", "{{.State.ExitCode}}", "t-init-term"]), "42");
      assertEquals(await ok(["logs", "t-init-term"]), "ready\ngot TERM");
      // The exit code of a foreground run passes through the init too.
      const r = await cli(["run", "--rm", "--init", "busybox", "sh", "-c", "exit 7"]);
      assertEquals(r.code, 7, r.stderr);
      // A missing command is docker's 127, not the init's own failure.
      const missing = await cli(["run", "--rm", "--init", "busybox", "nosuch"]);
      assertEquals(missing.code, 127, missing.stderr);
      assertStringIncludes(missing.stderr, `exec: "nosuch": executable file not found in $PATH`);
    } finally {
      await cli(["rm", "-f", "t-init-term"]);
    }
  },
);

rootTest(
  "--init without an init binary is refused with exit 125 before anything is created",
  async () => {
    const before = await containerCount();
    const r = await cli(["run", "--rm", "--init", "busybox", "true"], {
      TSBOX_INIT: "/nonexistent/catatonit",
    });
    assertEquals(r.code, 125, r.stderr);
    assertStringIncludes(r.stderr, "--init");
    assertStringIncludes(r.stderr, "/nonexistent/catatonit");
    assertEquals(await containerCount(), before);
  },
);

rootTest("--group-add: names from the image's /etc/group and gids show in id -G", async () => {
  assertEquals(
    await ok(["run", "--rm", "--group-add", "extra", "--group-add", "4242", "busybox", "id", "-G"]),
    "0 2000 4242",
  );
  assertEquals(
    await ok(["run", "--rm", "-u", "4000:4000", "--group-add", "root", "busybox", "id", "-G"]),
    "4000 0",
  );
  const r = await cli(["run", "--rm", "--group-add", "nosuchgroup", "busybox", "true"]);
  assertOk(r.code !== 0, "an unknown group fails the start");
  assertStringIncludes(r.stderr, "Unable to find group nosuchgroup");
});

rootTest("--shm-size sets /dev/shm's tmpfs size (64m by default, as docker)", async () => {
  const shm = (out: string) => /^shm \/dev\/shm tmpfs \S*size=(\d+k)/m.exec(out)?.[1];
  assertEquals(shm(await ok(["run", "--rm", "busybox", "cat", "/proc/mounts"])), "65536k");
  assertEquals(
    shm(await ok(["run", "--rm", "--shm-size", "128m", "busybox", "cat", "/proc/mounts"])),
    "131072k",
  );
  const r = await cli(["run", "--rm", "--shm-size", "lots", "busybox", "true"]);
  assertEquals(r.code, 125);
  assertStringIncludes(r.stderr, "--shm-size");
});

rootTest(
  "--sysctl: namespaced values are set in the container only; others are refused",
  async () => {
    const hostPorts = Deno.readTextFileSync("/proc/sys/net/ipv4/ip_unprivileged_port_start");
    const hostShm = Deno.readTextFileSync("/proc/sys/kernel/shmmax");
    const out = await ok([
      "run",
      "--rm",
      "--sysctl",
      "net.ipv4.ip_unprivileged_port_start=81",
      "--sysctl",
      "kernel.shmmax=123456789",
      "busybox",
      "cat",
      "/proc/sys/net/ipv4/ip_unprivileged_port_start",
      "/proc/sys/kernel/shmmax",
    ]);
    assertEquals(out, "81\n123456789");
    assertEquals(Deno.readTextFileSync("/proc/sys/net/ipv4/ip_unprivileged_port_start"), hostPorts);
    assertEquals(Deno.readTextFileSync("/proc/sys/kernel/shmmax"), hostShm);

    const before = await containerCount();
    let r = await cli(["run", "--rm", "--sysctl", "kernel.hostname=x", "busybox", "true"]);
    assertEquals(r.code, 125);
    assertStringIncludes(
      r.stderr,
      `invalid argument "kernel.hostname=x" for "--sysctl" flag: sysctl 'kernel.hostname=x' is not allowed`,
    );
    r = await cli([
      "run",
      "--rm",
      "--network",
      "host",
      "--sysctl",
      "net.ipv4.ip_forward=1",
      "busybox",
      "true",
    ]);
    assertEquals(r.code, 125);
    assertStringIncludes(
      r.stderr,
      `sysctl "net.ipv4.ip_forward" not allowed in host network namespace`,
    );
    assertEquals(await containerCount(), before);
    // A value the kernel refuses fails the start, naming the sysctl.
    r = await cli(["run", "--rm", "--sysctl", "net.ipv4.ip_forward=abc", "busybox", "true"]);
    assertEquals(r.code, 125);
    assertStringIncludes(r.stderr, "sysctl net.ipv4.ip_forward=abc");
  },
);

rootTest(
  "--pull never: a missing image is docker's No such image, exit 125, nothing pulled",
  async () => {
    const { refs } = await fixtureRegistry();
    const { root, cleanup } = await tempRoot();
    try {
      const r = await tsbox(["run", "--rm", "--pull", "never", refs.busybox, "true"], { root });
      assertEquals(r.code, 125, r.stderr);
      assertStringIncludes(r.stderr, `No such image: ${refs.busybox}`);
      assertEquals((await tsbox(["images", "-q"], { root })).stdout.trim(), "");
      const bad = await tsbox(["run", "--pull", "sometimes", refs.busybox, "true"], { root });
      assertEquals(bad.code, 125, bad.stderr);
      assertStringIncludes(
        bad.stderr,
        `invalid pull option: 'sometimes': must be one of "always", "missing" or "never"`,
      );
      // Once present, never runs it without asking the registry.
      const pulled = await tsbox(["pull", "-q", refs.busybox], { root });
      assertEquals(pulled.code, 0, pulled.stderr);
      const again = await tsbox(["run", "--rm", "--pull", "never", refs.busybox, "echo", "hi"], {
        root,
      });
      assertEquals(again.code, 0, again.stderr);
      assertEquals(again.stdout, "hi\n");
    } finally {
      await cleanup();
    }
  },
);

rootTest(
  "--pull always picks up a tag moved in the registry; missing keeps the local image",
  async () => {
    const { registry, layouts } = await fixtureRegistry();
    const { root, cleanup } = await tempRoot();
    const ref = `${registry.host}/runflags-moving:${crypto.randomUUID().slice(0, 8)}`;
    const hasNginx = ["sh", "-c", "test -x /usr/sbin/nginx && echo nginx || echo busybox"];
    try {
      await pushLayout(layouts.busybox, ref, { format: "oci" });
      let r = await tsbox(["run", "--rm", ref, ...hasNginx], { root });
      assertEquals(r.code, 0, r.stderr);
      assertEquals(r.stdout, "busybox\n");
      assertStringIncludes(r.stderr, `Unable to find image '${ref}' locally`);
      // The tag now names another image.
      await pushLayout(layouts.nginx, ref, { format: "oci" });
      r = await tsbox(["run", "--rm", "--pull", "missing", ref, ...hasNginx], { root });
      assertEquals(r.stdout, "busybox\n", r.stderr);
      r = await tsbox(["run", "--rm", "--pull", "always", ref, ...hasNginx], { root });
      assertEquals(r.code, 0, r.stderr);
      assertEquals(r.stdout, "nginx\n");
      assertStringIncludes(r.stderr, "Status: Downloaded newer image for");
      // Pulled again though nothing moved: docker's up-to-date status.
      r = await tsbox(["run", "--rm", "--pull", "always", ref, ...hasNginx], { root });
      assertEquals(r.stdout, "nginx\n", r.stderr);
      assertStringIncludes(r.stderr, "Status: Image is up to date for");
    } finally {
      await cleanup();
    }
  },
);

rootTest(
  "--platform: the host's is pulled from a multi-arch index and runs; arm64 through the emulator; windows is refused",
  async () => {
    const { refs } = await fixtureRegistry();
    const { root, cleanup } = await tempRoot();
    try {
      const win = await tsbox(["run", "--rm", "--platform", "windows/amd64", refs.multiOci], {
        root,
      });
      assertEquals(win.code, 125);
      assertStringIncludes(win.stderr, "windows/amd64 programs cannot run on this host");
      assertEquals((await tsbox(["images", "-q"], { root })).stdout.trim(), "", "nothing pulled");
      // The arm64 variant is pulled and started under the host's qemu-aarch64 handler
      // (tests/build_platforms_test.ts runs its programs); this one holds /arch alone.
      const arm = await tsbox(["run", "--rm", "--platform", "linux/arm64", refs.multiOci, "true"], {
        root,
      });
      assertEquals(arm.code, 127, arm.stderr);
      assertStringIncludes(arm.stderr, '"true": executable file not found');
      const bad = await tsbox(["run", "--rm", "--platform", "linux/a/b/c", refs.multiOci], {
        root,
      });
      assertEquals(bad.code, 125);
      assertStringIncludes(bad.stderr, "--platform");
      const r = await tsbox(
        ["run", "--rm", "--platform", "linux/amd64", refs.multiOci, "cat", "/arch"],
        { root },
      );
      assertEquals(r.code, 0, r.stderr);
      assertEquals(r.stdout, "amd64\n");
      assertEquals((await tsbox(["ps", "-aq"], { root })).stdout.trim(), "");
    } finally {
      await cleanup();
    }
  },
);

rootTest("--stop-signal and --stop-timeout: kept, shown by inspect, and used by stop", async () => {
  await ok([
    "run",
    "-d",
    "--name",
    "t-stopsig",
    "--stop-signal",
    "SIGUSR1",
    "--stop-timeout",
    "30",
    "busybox",
    "sh",
    "-c",
    'trap "echo got USR1; exit 5" USR1; trap "" TERM; echo ready; while :; do sleep 0.1; done',
  ]);
  try {
    assertEquals(
      await ok(["inspect", "-f", "{{.Config.StopSignal}} {{.Config.StopTimeout}}", "t-stopsig"]),
      "SIGUSR1 30",
    );
    await eventually("the trap set", async () => (await ok(["logs", "t-stopsig"])) === "ready");
    await ok(["stop", "t-stopsig"]);
    // 5, not 137: USR1 reached the trap (TERM is ignored, so stop's default would have had to kill).
    assertEquals(await ok(["inspect", "-f", "{{.State.ExitCode}}", "t-stopsig"]), "5");
    assertEquals(await ok(["logs", "t-stopsig"]), "ready\ngot USR1");
  } finally {
    await cli(["rm", "-f", "t-stopsig"]);
  }
  // --stop-timeout 0 here: stop kills at once instead of waiting for a command that ignores TERM.
  await ok([
    "run",
    "-d",
    "--name",
    "t-stoptimeout",
    "--stop-timeout",
    "0",
    "busybox",
    "sh",
    "-c",
    'trap "" TERM; while :; do sleep 0.1; done',
  ]);
  try {
    await ok(["stop", "t-stoptimeout"]);
    assertEquals(await ok(["inspect", "-f", "{{.State.ExitCode}}", "t-stoptimeout"]), "137");
  } finally {
    await cli(["rm", "-f", "t-stoptimeout"]);
  }
  for (const [flag, value] of [["--stop-signal", "SIGNOPE"], ["--stop-timeout", "soon"]]) {
    const r = await cli(["create", flag, value, "busybox"]);
    assertEquals(r.code, 125, `${flag} ${value}`);
    assertStringIncludes(r.stderr, value);
  }
});

rootTest(
  "--cidfile: the id is written at create; an existing file is refused as docker does",
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "tsbox-cidfile-" });
    const file = join(dir, "cid");
    try {
      const id = await ok(["create", "--cidfile", file, "--name", "t-cidfile", "busybox", "true"]);
      assertMatch(id, /^[0-9a-f]{64}$/);
      assertEquals(await Deno.readTextFile(file), id);
      const before = await containerCount();
      const r = await cli(["run", "--rm", "--cidfile", file, "busybox", "true"]);
      assertEquals(r.code, 125);
      assertStringIncludes(
        r.stderr,
        `Container ID file found, make sure the other container isn't running or delete ${file}`,
      );
      assertEquals(await containerCount(), before);
      assertEquals(await Deno.readTextFile(file), id, "the file is left as it was");
      // A create that fails removes the file it claimed.
      const other = join(dir, "other");
      const failed = await cli(["create", "--cidfile", other, "--name", "t-cidfile", "busybox"]);
      assertEquals(failed.code, 125);
      assertOk(!(await Deno.stat(other).then(() => true, () => false)), "no file left behind");
    } finally {
      await cli(["rm", "-f", "t-cidfile"]);
      await Deno.remove(dir, { recursive: true });
    }
  },
);

/** Sizes of container `id`'s json-file log files, by name. */
async function logFiles(id: string): Promise<Map<string, number>> {
  const dir = join(await sharedBusyboxRoot(), "containers", id);
  const out = new Map<string, number>();
  for await (const e of Deno.readDir(dir)) {
    if (e.name.startsWith(`${id}-json.log`)) {
      out.set(e.name.slice(id.length), (await Deno.stat(join(dir, e.name))).size);
    }
  }
  return out;
}

rootTest(
  "--log-opt max-size/max-file: the log rotates, stays bounded, and logs reads across it",
  async () => {
    const id = await ok([
      "run",
      "-d",
      "--log-opt",
      "max-size=10k",
      "--log-opt",
      "max-file=3",
      "busybox",
      "sh",
      "-c",
      "i=0; while [ $i -lt 3000 ]; do echo line-$i; i=$((i+1)); done",
    ]);
    try {
      assertEquals(await ok(["wait", id]), "0");
      const files = await logFiles(id);
      // About 110 KB were written: only the live file and two rotated ones are left.
      assertEquals([...files.keys()].sort(), ["-json.log", "-json.log.1", "-json.log.2"]);
      const total = [...files.values()].reduce((a, b) => a + b, 0);
      assertOk(total <= 3 * 10 * 1024, `${total} bytes on disk for max-size 10k x 3 files`);
      for (const size of files.values()) assertOk(size <= 10 * 1024, `a file of ${size} bytes`);
      assertEquals(await ok(["logs", "--tail", "3", id]), "line-2997\nline-2998\nline-2999");
      // Everything kept, oldest first and without gaps, from the rotated files into the live one.
      const lines = (await ok(["logs", id])).split("\n").map((l) => Number(l.slice(5)));
      assertEquals(lines.at(-1), 2999);
      assertOk(lines.length > 200, `${lines.length} lines kept`);
      lines.forEach((n, i) => assertEquals(n, lines[0] + i));
      assertEquals(
        await ok(["inspect", "-f", "{{json .HostConfig.LogConfig}}", id]),
        '{"Type":"json-file","Config":{"max-file":"3","max-size":"10k"}}',
      );
    } finally {
      await cli(["rm", "-f", id]);
    }
    for (const opt of ["max-size=0", "max-file=0", "max-file=2", "compress=true", "max-size"]) {
      const r = await cli(["run", "--rm", "--log-opt", opt, "busybox", "true"]);
      assertEquals(r.code, 125, opt);
    }
  },
);

rootTest(
  "--log-opt: logs -f follows the log across rotations without gaps or repeats",
  async () => {
    const id = await ok([
      "run",
      "-d",
      "--log-opt",
      "max-size=2k",
      "--log-opt",
      "max-file=5",
      "busybox",
      "sh",
      "-c",
      "sleep 0.3; i=0; while [ $i -lt 600 ]; do echo line-$i; i=$((i+1)); " +
      "[ $((i % 10)) = 0 ] && sleep 0.05; done",
    ]);
    try {
      const r = await cli(["logs", "-f", id]);
      assertEquals(r.code, 0, r.stderr);
      const lines = r.stdout.trim().split("\n").map((l) => Number(l.slice(5)));
      assertOk(lines.length > 0);
      lines.forEach((n, i) => assertEquals(n, lines[0] + i, `line ${i} of logs -f`));
      assertEquals(lines.at(-1), 599);
      assertOk((await logFiles(id)).has("-json.log.4"), "the log rotated while followed");
    } finally {
      await cli(["rm", "-f", id]);
    }
  },
);
