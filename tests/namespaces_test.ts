/**
 * Namespace modes of `run` (issue 21), against real containers (root): `--ipc`, `--pid`,
 * `--uts`, `--cgroupns`, `--userns host` and `--net`, each checked by the namespace links a
 * container sees (`/proc/self/ns/*`) and by what sharing shows (a message queue made in one
 * container listed in the other, the host's PID 1 and hostname), with docker's refusals.
 */
import { sharedBusyboxRoot } from "./busybox_store.ts";
import { assertEquals, assertNotEquals, assertStringIncludes } from "./assert.ts";
import { tsbox } from "./cli.ts";

const isRoot = Deno.uid() === 0;

function rootTest(name: string, fn: () => Promise<void>) {
  Deno.test({ name, ignore: !isRoot, sanitizeResources: false, sanitizeOps: false, fn });
}

async function cli(args: string[]) {
  return await tsbox(args, { root: await sharedBusyboxRoot() });
}

/** Runs `args`, failing the test with its stderr unless it exits 0; returns stdout trimmed. */
async function ok(args: string[]): Promise<string> {
  const r = await cli(args);
  assertEquals(r.code, 0, `tsbox ${args.join(" ")}: ${r.stderr}`);
  return r.stdout.trim();
}

/** The namespace link of `kind` a new container run with `flags` sees. */
function nsOfRun(flags: string[], kind: string): Promise<string> {
  return ok(["run", "--rm", ...flags, "busybox", "readlink", `/proc/self/ns/${kind}`]);
}

/** Starts a long-running container `name` and waits until exec reaches it. */
async function donor(name: string, flags: string[] = []): Promise<void> {
  await ok(["run", "-d", "--name", name, ...flags, "busybox", "sleep", "1000"]);
  const deadline = Date.now() + 20_000;
  while ((await cli(["exec", name, "true"])).code !== 0) {
    if (Date.now() > deadline) throw new Error(`${name} never became reachable`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

rootTest("--ipc container:NAME shares the donor's IPC namespace: its queues are seen", async () => {
  await donor("t-c21-ipc");
  try {
    const own = await ok(["exec", "t-c21-ipc", "readlink", "/proc/self/ns/ipc"]);
    assertEquals(await nsOfRun(["--ipc", "container:t-c21-ipc"], "ipc"), own);
    assertNotEquals(await nsOfRun([], "ipc"), own);
    // A POSIX message queue lives in the IPC namespace: made in the donor, listed in the joiner.
    await ok(["exec", "t-c21-ipc", "touch", "/dev/mqueue/t-c21-queue"]);
    const joined = await ok([
      "run",
      "--rm",
      "--ipc",
      "container:t-c21-ipc",
      "busybox",
      "ls",
      "/dev/mqueue",
    ]);
    assertEquals(joined, "t-c21-queue");
    assertEquals(await ok(["run", "--rm", "busybox", "ls", "/dev/mqueue"]), "");
    assertEquals(
      await ok(["inspect", "-f", "{{.HostConfig.IpcMode}}", "t-c21-ipc"]),
      "shareable",
    );
    // After the donor restarts, a new joiner joins its new namespace (resolved at each start):
    // the queue made in the old one is gone.
    const pid = async () => await ok(["inspect", "-f", "{{.State.Pid}}", "t-c21-ipc"]);
    const before = await pid();
    await ok(["restart", "-t", "0", "t-c21-ipc"]);
    const deadline = Date.now() + 20_000;
    while (await pid() === before || (await cli(["exec", "t-c21-ipc", "true"])).code !== 0) {
      if (Date.now() > deadline) throw new Error("the donor did not come back");
      await new Promise((r) => setTimeout(r, 100));
    }
    const renewed = await ok(["exec", "t-c21-ipc", "readlink", "/proc/self/ns/ipc"]);
    assertEquals(await nsOfRun(["--ipc", "container:t-c21-ipc"], "ipc"), renewed);
    assertEquals(
      await ok(["run", "--rm", "--ipc", "container:t-c21-ipc", "busybox", "ls", "/dev/mqueue"]),
      "",
    );
  } finally {
    await cli(["rm", "-f", "t-c21-ipc"]);
  }
});

rootTest("--ipc host: the host's SysV segments are listed in the container", async () => {
  const made = await new Deno.Command("ipcmk", { args: ["-M", "4096"] }).output();
  const id = new TextDecoder().decode(made.stdout).match(/(\d+)\s*$/)?.[1];
  assertEquals(made.success && id !== undefined, true, new TextDecoder().decode(made.stderr));
  try {
    assertEquals(await nsOfRun(["--ipc", "host"], "ipc"), Deno.readLinkSync("/proc/self/ns/ipc"));
    const listed = await ok([
      "run",
      "--rm",
      "--ipc",
      "host",
      "busybox",
      "cat",
      "/proc/sysvipc/shm",
    ]);
    assertEquals(listed.split("\n").some((l) => l.trim().split(/\s+/)[1] === id), true, listed);
    const own = await ok(["run", "--rm", "busybox", "cat", "/proc/sysvipc/shm"]);
    assertEquals(own.split("\n").some((l) => l.trim().split(/\s+/)[1] === id), false, own);
  } finally {
    await new Deno.Command("ipcrm", { args: ["-m", id!] }).output();
  }
});

rootTest("--ipc private is not joined; a stopped donor is refused (125)", async () => {
  await donor("t-c21-ipc-private", ["--ipc", "private"]);
  await ok(["create", "--name", "t-c21-ns-stopped", "busybox", "true"]);
  try {
    const r = await cli(["run", "--rm", "--ipc", "container:t-c21-ipc-private", "busybox", "true"]);
    assertEquals(r.code, 125, r.stderr);
    assertStringIncludes(r.stderr, "non-shareable IPC");
    for (const [flag, what] of [["--ipc", "IPC"], ["--pid", "PID"]]) {
      const s = await cli(["run", "--rm", flag, "container:t-c21-ns-stopped", "busybox", "true"]);
      assertEquals(s.code, 125, s.stderr);
      assertStringIncludes(
        s.stderr,
        `cannot join ${what} of a non running container: t-c21-ns-stopped`,
      );
    }
    const gone = await cli(["run", "--rm", "--pid", "container:t-c21-nothere", "busybox", "true"]);
    assertEquals(gone.code, 125);
    assertStringIncludes(gone.stderr, "No such container: t-c21-nothere");
  } finally {
    await cli(["rm", "-f", "t-c21-ipc-private", "t-c21-ns-stopped"]);
  }
});

rootTest(
  "--pid host sees the host's PID 1; --pid container:NAME the donor's processes",
  async () => {
    assertEquals(await nsOfRun(["--pid", "host"], "pid"), Deno.readLinkSync("/proc/self/ns/pid"));
    const hostInit = Deno.readTextFileSync("/proc/1/comm").trim();
    assertEquals(
      await ok(["run", "--rm", "--pid", "host", "busybox", "cat", "/proc/1/comm"]),
      hostInit,
    );
    await donor("t-c21-pid");
    try {
      const own = await ok(["exec", "t-c21-pid", "readlink", "/proc/self/ns/pid"]);
      assertEquals(await nsOfRun(["--pid", "container:t-c21-pid"], "pid"), own);
      // PID 1 of the joined namespace is the donor's command.
      assertEquals(
        await ok(["run", "--rm", "--pid", "container:t-c21-pid", "busybox", "cat", "/proc/1/comm"]),
        "sleep",
      );
      assertEquals(await ok(["inspect", "-f", "{{.HostConfig.PidMode}}", "t-c21-pid"]), "");
      // exec into a joiner lands in the shared namespace too.
      await donor("t-c21-pid-joiner", ["--pid", "container:t-c21-pid"]);
      assertEquals(
        await ok(["exec", "t-c21-pid-joiner", "readlink", "/proc/self/ns/pid"]),
        own,
      );
      // The joiner's bundle names the namespace it joined, by the donor's PID 1 now.
      const bundle = await ok(["inspect", "-f", "{{.OCIConfigPath}}", "t-c21-pid-joiner"]);
      const donorPid = await ok(["inspect", "-f", "{{.State.Pid}}", "t-c21-pid"]);
      const spec = JSON.parse(await Deno.readTextFile(bundle));
      assertEquals(
        spec.linux.namespaces.find((n: { type: string }) => n.type === "pid"),
        { type: "pid", path: `/proc/${donorPid}/ns/pid` },
      );
      assertEquals(
        await ok(["inspect", "-f", "{{.HostConfig.PidMode}}", "t-c21-pid-joiner"]),
        `container:${await ok(["inspect", "-f", "{{.Id}}", "t-c21-pid"])}`,
      );
    } finally {
      await cli(["rm", "-f", "t-c21-pid-joiner", "t-c21-pid"]);
    }
  },
);

rootTest("--uts host keeps the host's name and namespace; conflicts with -h", async () => {
  const host = Deno.hostname();
  assertEquals(await nsOfRun(["--uts", "host"], "uts"), Deno.readLinkSync("/proc/self/ns/uts"));
  assertEquals(await ok(["run", "--rm", "--uts", "host", "busybox", "hostname"]), host);
  assertEquals(Deno.hostname(), host);
  const r = await cli(["run", "--rm", "--uts", "host", "-h", "t-c21-name", "busybox", "true"]);
  assertEquals(r.code, 125, r.stderr);
  assertStringIncludes(r.stderr, "conflicting options: hostname and the UTS mode");
});

rootTest("--cgroupns host, --userns host and --net share the host's namespaces", async () => {
  const hostNs = (kind: string) => Deno.readLinkSync(`/proc/self/ns/${kind}`);
  assertEquals(await nsOfRun(["--cgroupns", "host"], "cgroup"), hostNs("cgroup"));
  assertNotEquals(await nsOfRun([], "cgroup"), hostNs("cgroup"));
  assertEquals(await nsOfRun(["--userns", "host"], "user"), hostNs("user"));
  assertEquals(await nsOfRun(["--net", "host"], "net"), hostNs("net"));
  assertNotEquals(await nsOfRun(["--net", "none"], "net"), hostNs("net"));
  await ok(["create", "--name", "t-c21-netspelling", "--net", "none", "busybox", "true"]);
  try {
    assertEquals(
      await ok(["inspect", "-f", "{{.HostConfig.NetworkMode}}", "t-c21-netspelling"]),
      "none",
    );
  } finally {
    await cli(["rm", "-f", "t-c21-netspelling"]);
  }
});

rootTest(
  "invalid namespace modes are refused with docker's messages, creating nothing",
  async () => {
    const before = await ok(["ps", "-aq"]);
    for (
      const [flag, value, message] of [
        ["--ipc", "bogus", "--ipc: invalid IPC mode"],
        ["--pid", "private", "--pid: invalid PID mode"],
        ["--uts", "container:x", "--uts: invalid UTS mode"],
        ["--cgroupns", "shared", "--cgroupns: invalid CGROUP mode"],
      ]
    ) {
      const r = await cli(["run", "--rm", flag, value, "busybox", "true"]);
      assertEquals(r.code, 125, r.stderr);
      assertStringIncludes(r.stderr, message);
    }
    assertEquals(await ok(["ps", "-aq"]), before);
  },
);
