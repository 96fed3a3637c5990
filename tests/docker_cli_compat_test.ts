/**
 * Spellings of docker's CLI that scripts (and podman's system tests, run against tsbox) use,
 * against real containers (root): `stop`/`restart` `-t/--timeout` with docker's older `--time`.
 */
import { sharedBusyboxRoot } from "./busybox_store.ts";
import { assertEquals, assertOk, assertStringIncludes } from "./assert.ts";
import { tsbox } from "./cli.ts";

const isRoot = Deno.uid() === 0;

function rootTest(name: string, fn: () => Promise<void>) {
  Deno.test({ name, ignore: !isRoot, sanitizeResources: false, sanitizeOps: false, fn });
}

async function cli(args: string[], stdin?: string) {
  return await tsbox(args, { root: await sharedBusyboxRoot(), ...(stdin ? { stdin } : {}) });
}

async function ok(args: string[]): Promise<string> {
  const r = await cli(args);
  assertEquals(r.code, 0, `tsbox ${args.join(" ")}: ${r.stderr}`);
  return r.stdout.trim();
}

/** A container whose PID 1 ignores SIGTERM: only the KILL after the wait ends it. */
const STUBBORN = ["busybox", "sh", "-c", "trap '' TERM; while :; do sleep 1; done"];

rootTest("stop and restart take --timeout (docker 23+) and --time (older) for -t", async () => {
  const name = "t-compat-stop";
  try {
    await ok(["run", "-d", "--name", name, ...STUBBORN]);
    assertEquals(await ok(["stop", "--timeout", "1", name]), name);
    assertEquals(await ok(["inspect", "-f", "{{.State.ExitCode}}", name]), "137");
    await ok(["start", name]);
    assertEquals(await ok(["stop", "--time=1", name]), name);
    assertEquals(await ok(["inspect", "-f", "{{.State.ExitCode}}", name]), "137");
    await ok(["start", name]);
    const pid = await ok(["inspect", "-f", "{{.State.Pid}}", name]);
    assertEquals(await ok(["restart", "--timeout", "1", name]), name);
    assertEquals(await ok(["inspect", "-f", "{{.State.Status}}", name]), "running");
    assertOk(await ok(["inspect", "-f", "{{.State.Pid}}", name]) !== pid, "a new PID 1");
    const bad = await cli(["stop", "--timeout", "soon", name]);
    assertEquals(bad.code, 125, bad.stderr);
    assertStringIncludes(bad.stderr, `invalid argument "soon" for "-t, --timeout" flag`);
    assertEquals(await ok(["inspect", "-f", "{{.State.Status}}", name]), "running");
  } finally {
    await cli(["rm", "-f", name]);
  }
});

rootTest("run --dns-opt is --dns-option: both add resolver options, in order", async () => {
  const conf = await ok([
    "run",
    "--rm",
    "--dns-opt",
    "ndots:3",
    "--dns-option",
    "timeout:2",
    "--dns-opt=attempts:4",
    "busybox",
    "cat",
    "/etc/resolv.conf",
  ]);
  const options = conf.split("\n").filter((l) => l.startsWith("options "));
  assertEquals(options, ["options ndots:3 timeout:2 attempts:4"]);
});
