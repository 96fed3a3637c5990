/**
 * `tsbox events` through the real command line (root): a container's lifecycle read back with
 * `--since`/`--until` in docker's line format and order, `--filter` and `--format`, image and
 * volume events, and a streaming `events` that sees a container start and die as it happens.
 */
import { assertEquals, assertMatch, assertOk, assertStringIncludes } from "./assert.ts";
import { seedStore } from "./busybox_store.ts";
import { type CliResult, tempRoot, tsbox } from "./cli.ts";

const isRoot = Deno.uid() === 0;
const MAIN = new URL("../main.ts", import.meta.url).pathname;

function rootTest(name: string, fn: () => Promise<void>) {
  Deno.test({ name, ignore: !isRoot, sanitizeResources: false, sanitizeOps: false, fn });
}

type Run = (args: string[]) => Promise<CliResult>;

async function ok(t: Run, args: string[]): Promise<string> {
  const r = await t(args);
  assertEquals(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

/** Now as docker's Unix time with a fraction (what `date +%s.%N` prints). */
function unixNow(): string {
  return (Date.now() / 1000).toFixed(3);
}

async function withStore(fn: (t: Run, root: string) => Promise<void>) {
  const { root, cleanup } = await tempRoot();
  try {
    await seedStore(root);
    await fn((args) => tsbox(args, { root }), root);
  } finally {
    await cleanup();
  }
}

const TIME = String.raw`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}(?:Z|[+-]\d\d:\d\d)`;

rootTest(
  "events --since --until lists a container's lifecycle in order, docker's lines",
  async () => {
    await withStore(async (t) => {
      const since = unixNow();
      const id =
        (await ok(t, ["create", "--name", "t-ev1", "-l", "team=a", "busybox", "sleep", "60"]))
          .trim();
      await ok(t, ["start", "t-ev1"]);
      await ok(t, ["pause", "t-ev1"]);
      await ok(t, ["unpause", "t-ev1"]);
      await ok(t, ["stop", "-t", "0", "t-ev1"]);
      await ok(t, ["rm", "t-ev1"]);
      await ok(t, ["create", "--name", "t-other", "busybox", "true"]);
      const until = unixNow();

      const lines =
        (await ok(t, ["events", "--since", since, "--until", until, "-f", "container=t-ev1"]))
          .trim().split("\n");
      const attrs = "(image=busybox, name=t-ev1, team=a)";
      const expected = [
        `container create ${id} ${attrs}`,
        `container start ${id} ${attrs}`,
        `container pause ${id} ${attrs}`,
        `container unpause ${id} ${attrs}`,
        `container kill ${id} (image=busybox, name=t-ev1, signal=9, team=a)`,
        `container die ${id} (exitCode=137, image=busybox, name=t-ev1, team=a)`,
        `container stop ${id} ${attrs}`,
        `container destroy ${id} ${attrs}`,
      ];
      assertEquals(lines.length, expected.length, lines.join("\n"));
      lines.forEach((line, i) => {
        assertMatch(line, new RegExp(`^${TIME} `));
        assertEquals(line.replace(/^\S+ /, ""), expected[i]);
      });
      // Times are in order and inside the range.
      const times = lines.map((l) => Date.parse(l.split(" ")[0]));
      assertOk(times.every((x, i) => i === 0 || x >= times[i - 1]), lines.join("\n"));
      assertOk(times[0] >= Number(since) * 1000 - 1 && times.at(-1)! <= Number(until) * 1000 + 1);

      // Without the container filter the other container is there; before `since`, nothing.
      const all = await ok(t, ["events", "--since", since, "--until", until]);
      assertStringIncludes(all, "name=t-other");
      assertEquals(
        await ok(t, ["events", "--since", "1", "--until", String(Number(since) - 5)]),
        "",
      );

      // --filter event= and type=, --format templates and json.
      assertEquals(
        await ok(t, [
          "events",
          "--since",
          since,
          "--until",
          until,
          "-f",
          "event=die",
          "-f",
          "event=create",
          // Not the default bridge network a first run records (a `network create`).
          "-f",
          "type=container",
          "--format",
          '{{.Action}} {{.Actor.Attributes.name}} {{.Status}} {{.ID | printf "%.12s"}}',
        ]),
        `create t-ev1 create ${id.slice(0, 12)}\ndie t-ev1 die ${id.slice(0, 12)}\n` +
          `create t-other create ${
            (await ok(t, ["inspect", "-f", "{{.Id}}", "t-other"])).slice(0, 12)
          }\n`,
      );
      const json = (await ok(t, [
        "events",
        "--since",
        since,
        "--until",
        until,
        "-f",
        "label=team=a",
        "-f",
        "event=die",
        "--format",
        "json",
      ])).trim();
      const ev = JSON.parse(json);
      assertEquals(ev.Type, "container");
      assertEquals(ev.Action, "die");
      assertEquals(ev.status, "die");
      assertEquals(ev.id, id);
      assertEquals(ev.from, "busybox");
      assertEquals(ev.scope, "local");
      assertEquals(ev.Actor, {
        ID: id,
        Attributes: { exitCode: "137", image: "busybox", name: "t-ev1", team: "a" },
      });
      assertEquals(ev.time, Math.floor(ev.timeNano / 1e9));
      const tmplJson = JSON.parse(
        await ok(t, [
          "events",
          "--since",
          since,
          "--until",
          until,
          "-f",
          "event=die",
          "-f",
          "container=t-ev1",
          "--format",
          "{{json .}}",
        ]),
      );
      assertEquals(tmplJson.Actor.ID, id);
      assertEquals(tmplJson.status, "die");
      assertEquals(
        await ok(t, ["events", "--since", since, "--until", until, "-f", "type=image"]),
        "",
      );
    });
  },
);

rootTest("events: image tag/untag/delete, volume create/destroy; docker's errors", async () => {
  await withStore(async (t) => {
    const since = unixNow();
    await ok(t, ["tag", "busybox", "t-ev-img:1"]);
    const imageId = (await ok(t, ["inspect", "-f", "{{.Id}}", "busybox"])).trim();
    await ok(t, ["rmi", "t-ev-img:1"]);
    await ok(t, ["volume", "create", "t-ev-vol"]);
    await ok(t, ["volume", "rm", "t-ev-vol"]);
    const until = unixNow();
    const out = await ok(t, [
      "events",
      "--since",
      since,
      "--until",
      until,
      "--format",
      "{{.Type}} {{.Action}} {{.Actor.ID}} {{.Actor.Attributes.name}}",
    ]);
    assertEquals(
      out,
      [
        `image tag ${imageId} t-ev-img:1`,
        `image untag ${imageId} ${imageId}`,
        "volume create t-ev-vol <no value>",
        "volume destroy t-ev-vol <no value>",
        "",
      ].join("\n"),
    );
    assertEquals(
      await ok(t, [
        "events",
        "--since",
        since,
        "--until",
        until,
        "-f",
        "image=t-ev-img",
        "--format",
        "{{.Action}}",
      ]),
      "tag\n",
    );
    // A build's name and a load's image are events too.
    const ctx = await Deno.makeTempDir({ prefix: "tsbox-ctx-" });
    const archive = `${ctx}.tar`;
    try {
      await Deno.writeTextFile(`${ctx}/Dockerfile`, "FROM busybox\nLABEL built=1\n");
      const since2 = unixNow();
      await ok(t, ["build", "-q", "-t", "t-ev-built:1", ctx]);
      const built = (await ok(t, ["inspect", "-f", "{{.Id}}", "t-ev-built:1"])).trim();
      await ok(t, ["save", "-o", archive, "t-ev-built:1"]);
      await ok(t, ["rmi", "t-ev-built:1"]);
      await ok(t, ["load", "-i", archive]);
      assertEquals(
        await ok(t, [
          "events",
          "--since",
          since2,
          "--until",
          unixNow(),
          "-f",
          "type=image",
          "--format",
          "{{.Action}} {{.Actor.ID}} {{.Actor.Attributes.name}}",
        ]),
        [
          `tag ${built} t-ev-built:1`,
          `untag ${built} ${built}`,
          `delete ${built} ${built}`,
          `load ${built} ${built}`,
          `tag ${built} t-ev-built:1`,
          "",
        ].join("\n"),
      );
    } finally {
      await Deno.remove(ctx, { recursive: true });
      await Deno.remove(archive).catch(() => {});
    }

    // The OOM killer: docker's `oom`, then `die` with 137.
    const since5 = unixNow();
    const oom = await t([
      "run",
      "--name",
      "t-ev-oom",
      "--memory",
      "20m",
      "--memory-swap",
      "20m",
      "busybox",
      "sh",
      "-c",
      'a=$(head -c 200000000 /dev/zero | tr "\\0" x); echo done',
    ]);
    assertEquals(oom.code, 137, oom.stderr);
    assertEquals(
      await ok(t, [
        "events",
        "--since",
        since5,
        "--until",
        unixNow(),
        "-f",
        "container=t-ev-oom",
        "--format",
        "{{.Action}} {{.Actor.Attributes.exitCode}}",
      ]),
      "create <no value>\nstart <no value>\noom <no value>\ndie 137\n",
    );
    await ok(t, ["rm", "t-ev-oom"]);

    // Networks: create and destroy, the Actor being the network's id.
    const since4 = unixNow();
    const net = (await ok(t, ["network", "create", "--subnet", "10.91.237.0/24", "t-evnet"]))
      .trim();
    // A container on it connects at its start and disconnects at its end.
    await ok(t, ["run", "--name", "t-ev-net", "--network", "t-evnet", "busybox", "true"]);
    const onNet = (await ok(t, ["inspect", "-f", "{{.Id}}", "t-ev-net"])).trim();
    await ok(t, ["rm", "t-ev-net"]);
    await ok(t, ["network", "rm", "t-evnet"]);
    assertEquals(
      await ok(t, [
        "events",
        "--since",
        since4,
        "--until",
        unixNow(),
        "-f",
        "type=network",
        "--format",
        "{{.Action}} {{.Actor.ID}} {{.Actor.Attributes.name}} {{.Actor.Attributes.container}}",
      ]),
      `create ${net} t-evnet <no value>\nconnect ${net} t-evnet ${onNet}\n` +
        `disconnect ${net} t-evnet ${onNet}\ndestroy ${net} t-evnet <no value>\n`,
    );

    // exec: created, started, and its end with the command's code.
    const since3 = unixNow();
    await ok(t, ["run", "-d", "--name", "t-ev-exec", "busybox", "sleep", "60"]);
    assertEquals((await t(["exec", "t-ev-exec", "sh", "-c", "exit 4"])).code, 4);
    const execs = await ok(t, [
      "events",
      "--since",
      since3,
      "--until",
      unixNow(),
      "-f",
      "event=exec_create",
      "-f",
      "event=exec_start",
      "-f",
      "event=exec_die",
      "--format",
      "{{.Action}}|{{.Actor.Attributes.name}}|{{.Actor.Attributes.exitCode}}|{{len .Actor.Attributes.execID}}",
    ]);
    assertEquals(
      execs,
      "exec_create: sh -c exit 4|t-ev-exec|<no value>|64\n" +
        "exec_start: sh -c exit 4|t-ev-exec|<no value>|64\n" +
        "exec_die|t-ev-exec|4|64\n",
    );
    await ok(t, ["rm", "-f", "t-ev-exec"]);

    const bad = await t(["events", "--filter", "bogus=1"]);
    assertEquals(bad.code, 1);
    assertStringIncludes(bad.stderr, "invalid filter 'bogus'");
    const order = await t(["events", "--since", until, "--until", since]);
    assertEquals(order.code, 125);
    assertStringIncludes(order.stderr, "cannot be after `until` time");
  });
});

/** Reads `stream` until a line matches `want` (or the deadline passes); returns all it read. */
async function readUntil(
  reader: ReadableStreamDefaultReader<string>,
  seen: string[],
  want: RegExp,
  deadlineMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  // A line cut between two reads is kept in the last element until its newline comes.
  let buffer = seen.pop() ?? "";
  while (!seen.some((l) => want.test(l))) {
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`no line matching ${want} in:\n${seen.join("\n")}`);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const r = await Promise.race([
      reader.read(),
      new Promise<{ done: true; value: undefined }>((res) => {
        timer = setTimeout(() => res({ done: true, value: undefined }), left);
      }),
    ]);
    clearTimeout(timer);
    if (r.done) throw new Error(`events ended before ${want}:\n${seen.join("\n")}`);
    buffer += r.value;
    const parts = buffer.split("\n");
    buffer = parts.pop()!;
    seen.push(...parts);
  }
  seen.push(buffer);
}

rootTest("a streaming events sees a container start and die as they happen", async () => {
  await withStore(async (t, root) => {
    const since = unixNow();
    await ok(t, ["volume", "create", "t-ev-mark"]);
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--quiet",
        MAIN,
        "--root",
        root,
        "events",
        "--since",
        since,
        "--format",
        "{{.Type}} {{.Action}} {{.Actor.ID}} {{.Actor.Attributes.exitCode}}",
      ],
      env: { DENO_NO_UPDATE_CHECK: "1" },
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    const seen: string[] = [];
    try {
      // The marker was read: whatever happens from now on can only come through the stream.
      await readUntil(reader, seen, /^volume create t-ev-mark/);
      const r = await t(["run", "--name", "t-ev2", "busybox", "sh", "-c", "exit 3"]);
      assertEquals(r.code, 3, r.stderr);
      const id = (await ok(t, ["inspect", "-f", "{{.Id}}", "t-ev2"])).trim();
      await readUntil(reader, seen, new RegExp(`^container die ${id} 3$`));
      const mine = seen.filter((l) => l.includes(id));
      assertEquals(mine, [
        `container create ${id} <no value>`,
        `container start ${id} <no value>`,
        `container die ${id} 3`,
      ]);
    } finally {
      child.kill("SIGINT");
      await reader.cancel().catch(() => {});
      const status = await child.status;
      // Interrupted, it ends cleanly.
      assertEquals(status.code, 0);
    }
  });
});
