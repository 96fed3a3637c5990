/**
 * `--log-driver` (root): `none` keeps nothing (no log file; `logs` says so as docker, exit 1)
 * while an attached run still shows the output; `local` keeps a log `logs` reads; unknown and
 * unsupported drivers are refused before anything is created.
 */
import { sharedBusyboxRoot } from "./busybox_store.ts";
import { assertEquals, assertStringIncludes } from "./assert.ts";
import { tsbox } from "./cli.ts";

const isRoot = Deno.uid() === 0;

function rootTest(name: string, fn: () => Promise<void>) {
  Deno.test({ name, ignore: !isRoot, sanitizeResources: false, sanitizeOps: false, fn });
}

async function cli(args: string[]) {
  return await tsbox(args, { root: await sharedBusyboxRoot() });
}

async function ok(args: string[]): Promise<string> {
  const r = await cli(args);
  assertEquals(r.code, 0, `tsbox ${args.join(" ")}: ${r.stderr}`);
  return r.stdout.trim();
}

rootTest("--log-driver none: output shown when attached, nothing kept, logs refused", async () => {
  assertEquals(
    await ok(["run", "--name", "t-c21-nolog", "--log-driver", "none", "busybox", "echo", "seen"]),
    "seen",
  );
  try {
    const r = await cli(["logs", "t-c21-nolog"]);
    assertEquals(r.code, 1, r.stderr);
    assertStringIncludes(r.stderr, "configured logging driver does not support reading");
    assertEquals(
      await ok(["inspect", "-f", "{{.HostConfig.LogConfig.Type}}", "t-c21-nolog"]),
      "none",
    );
    const path = await ok(["inspect", "-f", "{{.LogPath}}", "t-c21-nolog"]);
    let exists = true;
    try {
      await Deno.stat(path);
    } catch {
      exists = false;
    }
    assertEquals(exists, false, `${path} was written`);
  } finally {
    await cli(["rm", "-f", "t-c21-nolog"]);
  }
});

rootTest("--log-driver local keeps a log that logs reads", async () => {
  await ok(["run", "--name", "t-c21-local", "--log-driver", "local", "busybox", "echo", "kept"]);
  try {
    assertEquals(await ok(["logs", "t-c21-local"]), "kept");
    assertEquals(
      await ok(["inspect", "-f", "{{.HostConfig.LogConfig.Type}}", "t-c21-local"]),
      "local",
    );
  } finally {
    await cli(["rm", "-f", "t-c21-local"]);
  }
});

rootTest("unknown, unsupported and misused log drivers are refused with 125", async () => {
  const before = await ok(["ps", "-aq"]);
  for (
    const [args, message] of [
      [["--log-driver", "bogus"], "logger: no log driver named 'bogus' is registered"],
      [["--log-driver", "syslog"], "the syslog log driver is not supported by tsbox"],
      [["--log-driver", "none", "--log-opt", "max-size=1m"], "for none log driver"],
    ] as const
  ) {
    const r = await cli(["run", "--rm", ...args, "busybox", "true"]);
    assertEquals(r.code, 125, r.stderr);
    assertStringIncludes(r.stderr, message);
  }
  assertEquals(await ok(["ps", "-aq"]), before);
});
