/**
 * `run`/`create` flags of issue 18 against real containers (root): `--init`, `--pull`,
 * `--platform`, `--stop-signal`/`--stop-timeout`, `--cidfile`, `--group-add`, `--shm-size`,
 * `--sysctl` and `--log-opt`, each checked by what the container or the host shows.
 */
import { sharedBusyboxRoot } from "./busybox_store.ts";
import { assertEquals, assertMatch, assertOk, assertStringIncludes } from "./assert.ts";
import { tsbox } from "./cli.ts";

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
