/**
 * `events` (root): the lifecycle of a container in order from `--since` to `--until`, with
 * docker's attributes (exitCode, labels), filters by container, event, type and label,
 * `--format`, image events (tag, untag), and a streaming `events` that sees a container made
 * after it started.
 */
import { sharedBusyboxRoot } from "./busybox_store.ts";
import { assertEquals, assertStringIncludes } from "./assert.ts";
import { tsbox } from "./cli.ts";

const isRoot = Deno.uid() === 0;
const MAIN = new URL("../main.ts", import.meta.url).pathname;

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

/** Unix time in seconds with a fraction, as `--since`/`--until` take it. */
const unix = () => (Date.now() / 1000).toFixed(3);

rootTest("events --since/--until: a container's lifecycle in order, filtered", async () => {
  const since = unix();
  const r = await cli([
    "run",
    "--name",
    "t-c21-ev",
    "-l",
    "t-c21=yes",
    "busybox",
    "sh",
    "-c",
    "exit 3",
  ]);
  assertEquals(r.code, 3, r.stderr);
  await ok(["rm", "t-c21-ev"]);
  const until = unix();
  const window = ["--since", since, "--until", until];
  const actions = await ok([
    "events",
    ...window,
    "--filter",
    "container=t-c21-ev",
    "--format",
    "{{.Action}}",
  ]);
  assertEquals(actions.split("\n"), ["create", "start", "die", "destroy"]);
  // docker's default line: time, type, action, id and the sorted attributes.
  const die = await ok(["events", ...window, "-f", "event=die", "-f", "label=t-c21=yes"]);
  assertEquals(die.split("\n").length, 1, die);
  assertStringIncludes(die, " container die ");
  assertStringIncludes(die, "(exitCode=3, image=busybox, name=t-c21-ev, t-c21=yes)");
  const json = JSON.parse(
    await ok([
      "events",
      ...window,
      "-f",
      "container=t-c21-ev",
      "-f",
      "event=start",
      "--format",
      "{{json .}}",
    ]),
  );
  assertEquals(json.Type, "container");
  assertEquals(json.status, "start");
  assertEquals(json.Actor.Attributes.name, "t-c21-ev");
  assertEquals(typeof json.timeNano, "number");
  const bad = await cli(["events", ...window, "-f", "bogus=1"]);
  assertEquals(bad.code !== 0, true);
  assertStringIncludes(bad.stderr, "invalid filter 'bogus'");
});

rootTest("events of images: tag and untag", async () => {
  const since = unix();
  await ok(["tag", "busybox", "t-c21/evtag:v1"]);
  await ok(["rmi", "t-c21/evtag:v1"]);
  const lines = await ok([
    "events",
    "--since",
    since,
    "--until",
    unix(),
    "-f",
    "type=image",
    "--format",
    "{{.Action}} {{.Actor.Attributes.name}}",
  ]);
  assertEquals(lines.split("\n"), ["tag t-c21/evtag:v1", "untag t-c21/evtag:v1"]);
});

rootTest("events streams what happens after it started, until it is stopped", async () => {
  const since = unix();
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--quiet",
      MAIN,
      "--root",
      await sharedBusyboxRoot(),
      "events",
      "--since",
      since,
      "-f",
      "container=t-c21-stream1",
      "-f",
      "container=t-c21-stream2",
      "--format",
      "{{.Action}} {{.Actor.Attributes.name}}",
    ],
    env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
    stdout: "piped",
    stderr: "null",
  }).spawn();
  let seen = "";
  const reader = (async () => {
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) seen += chunk;
  })();
  const waitFor = async (text: string) => {
    const deadline = Date.now() + 30_000;
    while (!seen.includes(text)) {
      if (Date.now() > deadline) throw new Error(`events saw only: ${JSON.stringify(seen)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  try {
    await ok(["run", "--rm", "--name", "t-c21-stream1", "busybox", "true"]);
    await waitFor("destroy t-c21-stream1");
    // events is running and has printed: what happens now can only reach it by following.
    await ok(["run", "--rm", "--name", "t-c21-stream2", "busybox", "true"]);
    await waitFor("destroy t-c21-stream2");
    assertEquals(seen.trim().split("\n"), [
      "create t-c21-stream1",
      "start t-c21-stream1",
      "die t-c21-stream1",
      "destroy t-c21-stream1",
      "create t-c21-stream2",
      "start t-c21-stream2",
      "die t-c21-stream2",
      "destroy t-c21-stream2",
    ]);
  } finally {
    child.kill("SIGTERM");
    await child.status;
    await reader.catch(() => {});
    await cli(["rm", "-f", "t-c21-stream1", "t-c21-stream2"]);
  }
});

rootTest("events: health_status when a healthcheck's status changes", async () => {
  const since = unix();
  await ok([
    "run",
    "-d",
    "--name",
    "t-c21-evhealth",
    "--health-cmd",
    "true",
    "--health-interval",
    "200ms",
    "busybox",
    "sleep",
    "1000",
  ]);
  try {
    const deadline = Date.now() + 30_000;
    while (
      await ok(["inspect", "-f", "{{.State.Health.Status}}", "t-c21-evhealth"]) !== "healthy"
    ) {
      if (Date.now() > deadline) throw new Error("never healthy");
      await new Promise((r) => setTimeout(r, 100));
    }
    const lines = await ok([
      "events",
      "--since",
      since,
      "--until",
      unix(),
      "-f",
      "container=t-c21-evhealth",
      "-f",
      "event=health_status",
      "--format",
      "{{.Action}}",
    ]);
    assertEquals(lines, "health_status: healthy");
  } finally {
    await cli(["rm", "-f", "t-c21-evhealth"]);
  }
});
