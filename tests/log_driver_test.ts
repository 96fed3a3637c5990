/**
 * `--log-driver json-file|local|none` and `run -a/--attach` through the real command line
 * (root): `none` keeps no log (`logs` says so, exit 1) while the attached output still shows;
 * `local` is read back by `logs`; `-a` picks the streams a foreground run shows.
 */
import { assertEquals, assertOk, assertStringIncludes } from "./assert.ts";
import { sharedBusyboxRoot } from "./busybox_store.ts";
import { tsbox } from "./cli.ts";

const isRoot = Deno.uid() === 0;

function rootTest(name: string, fn: () => Promise<void>) {
  Deno.test({ name, ignore: !isRoot, sanitizeResources: false, sanitizeOps: false, fn });
}

const SCRIPT = "echo to-out; echo to-err >&2";

rootTest("--log-driver none keeps nothing, local is read back, others refused", async () => {
  const root = await sharedBusyboxRoot();
  const t = (args: string[]) => tsbox(args, { root });
  try {
    const none = await t([
      "run",
      "--log-driver",
      "none",
      "--name",
      "t-ld1",
      "busybox",
      "sh",
      "-c",
      SCRIPT,
    ]);
    assertEquals(none.code, 0, none.stderr);
    assertEquals(none.stdout, "to-out\n");
    const logs = await t(["logs", "t-ld1"]);
    assertEquals(logs.code, 1);
    assertStringIncludes(logs.stderr, "configured logging driver does not support reading");
    assertEquals(
      (await t(["inspect", "-f", "{{.HostConfig.LogConfig.Type}}", "t-ld1"])).stdout,
      "none\n",
    );

    const local = await t([
      "run",
      "--log-driver",
      "local",
      "--name",
      "t-ld2",
      "busybox",
      "sh",
      "-c",
      SCRIPT,
    ]);
    assertEquals(local.code, 0, local.stderr);
    const back = await t(["logs", "t-ld2"]);
    assertEquals(back.code, 0, back.stderr);
    assertEquals(back.stdout, "to-out\n");
    assertStringIncludes(back.stderr, "to-err");
    assertEquals(
      (await t(["inspect", "-f", "{{.HostConfig.LogConfig.Type}}", "t-ld2"])).stdout,
      "local\n",
    );
    const json = await t(["run", "--rm", "--log-driver", "json-file", "busybox", "true"]);
    assertEquals(json.code, 0, json.stderr);

    const bad = await t(["run", "--rm", "--log-driver", "bogus", "busybox", "true"]);
    assertEquals(bad.code, 125);
    assertStringIncludes(bad.stderr, "no log driver named 'bogus' is registered");
  } finally {
    await t(["rm", "-f", "t-ld1", "t-ld2"]);
  }
});

rootTest("run -a picks the streams shown; -a with -d and unknown streams are refused", async () => {
  const root = await sharedBusyboxRoot();
  const t = (args: string[]) => tsbox(args, { root });
  const out = await t(["run", "--rm", "-a", "stdout", "busybox", "sh", "-c", SCRIPT]);
  assertEquals(out.code, 0, out.stderr);
  assertEquals(out.stdout, "to-out\n");
  assertOk(!out.stderr.includes("to-err"), out.stderr);
  const err = await t(["run", "--rm", "-a", "STDERR", "busybox", "sh", "-c", SCRIPT]);
  assertEquals(err.code, 0, err.stderr);
  assertEquals(err.stdout, "");
  assertStringIncludes(err.stderr, "to-err");
  const both = await t([
    "run",
    "--rm",
    "-a",
    "stdout",
    "--attach",
    "stderr",
    "busybox",
    "sh",
    "-c",
    SCRIPT,
  ]);
  assertEquals(both.stdout, "to-out\n");
  assertStringIncludes(both.stderr, "to-err");
  // stdin attached with -i: the container reads what is piped in.
  const input = await tsbox(
    ["run", "--rm", "-i", "-a", "stdin", "-a", "stdout", "busybox", "cat"],
    {
      root,
      stdin: "piped in\n",
    },
  );
  assertEquals(input.stdout, "piped in\n");

  const conflict = await t(["run", "-d", "-a", "stdout", "busybox", "true"]);
  assertEquals(conflict.code, 125);
  assertStringIncludes(conflict.stderr, "Conflicting options: -a and -d");
  const bogus = await t(["run", "--rm", "-a", "stdfoo", "busybox", "true"]);
  assertEquals(bogus.code, 125);
  assertStringIncludes(bogus.stderr, "valid streams are STDIN, STDOUT and STDERR");
});
