/**
 * `--format` templates and usage errors through the real command line (root): a running busybox
 * container read with `inspect -f`, `ps --format 'table ...'`, `images --format`, and the error
 * lines docker prints for a bad flag, a bad `-p`, a bad filter and a missing `--env-file`.
 */
import { assertEquals, assertMatch, assertOk, assertStringIncludes } from "./assert.ts";
import { seedStore } from "./busybox_store.ts";
import { type CliResult, tempRoot, tsbox } from "./cli.ts";

const isRoot = Deno.uid() === 0;

function rootTest(name: string, fn: () => Promise<void>) {
  Deno.test({ name, ignore: !isRoot, sanitizeResources: false, sanitizeOps: false, fn });
}

/** A store with busybox and a running container `t-fmt1`, removed after `fn`. */
async function withRunning(fn: (t: (args: string[]) => Promise<CliResult>) => Promise<void>) {
  const { root, cleanup } = await tempRoot();
  const t = (args: string[]) => tsbox(args, { root });
  try {
    await seedStore(root);
    const started = await t(["run", "-d", "--name", "t-fmt1", "busybox", "sleep", "1000"]);
    assertEquals(started.code, 0, started.stderr);
    await fn(t);
  } finally {
    await t(["rm", "-f", "t-fmt1"]);
    await cleanup();
  }
}

rootTest("inspect -f evaluates the template; an unknown field fails with exit 1", async () => {
  await withRunning(async (t) => {
    const running = await t(["inspect", "-f", "{{.State.Running}}", "t-fmt1"]);
    assertEquals([running.code, running.stdout, running.stderr], [0, "true\n", ""]);

    const several = await t([
      "container",
      "inspect",
      "--format",
      "{{.Name}} {{.State.Status}} {{json .Args}} {{len .Id}}",
      "t-fmt1",
      "t-fmt1",
    ]);
    assertEquals(several.stdout, '/t-fmt1 running ["1000"] 64\n/t-fmt1 running ["1000"] 64\n');

    const image = await t(["image", "inspect", "-f", "{{.RepoTags}} {{.Os}}", "busybox"]);
    assertEquals([image.code, image.stdout], [0, "[busybox:latest] linux\n"], image.stderr);

    const compact = await t(["inspect", "-f", "json", "t-fmt1"]);
    assertEquals(compact.code, 0);
    assertEquals(compact.stdout.trim().split("\n").length, 1, "one line of JSON");
    assertEquals(JSON.parse(compact.stdout)[0].Name, "/t-fmt1");

    const bogus = await t(["inspect", "-f", "{{.State.Bogus}}", "t-fmt1"]);
    assertEquals(bogus.code, 1);
    assertEquals(bogus.stdout, "\n");
    assertStringIncludes(
      bogus.stderr,
      'template parsing error: template: :1:2: executing "" at <.State.Bogus>: map has no entry for key "Bogus"',
    );

    const unparsable = await t(["inspect", "-f", "{{.State", "t-fmt1"]);
    assertEquals(unparsable.code, 64, "docker's code for a template that does not parse");
    assertStringIncludes(unparsable.stderr, "unclosed action");
  });
});

rootTest("ps, images, stats, volume ls, history, info and version take templates", async () => {
  await withRunning(async (t) => {
    // As a shell passes it: a backslash and a t, which docker reads as a tab.
    const ps = await t(["ps", "--format", "table {{.Names}}\\t{{.Status}}\\t{{.State}}"]);
    assertEquals(ps.code, 0, ps.stderr);
    const lines = ps.stdout.split("\n");
    // NAMES is padded to docker's minimum of 10; STATUS to its longest cell plus 3.
    assertMatch(lines[0], /^NAMES {5}STATUS +STATE$/);
    assertMatch(lines[1], /^t-fmt1 {4}Up [^ ].* {3,}running$/);
    const status = lines[1].slice(10, lines[1].lastIndexOf(" running")).trimEnd();
    assertEquals(lines[0].indexOf("STATE") - 10, Math.max(10, status.length + 3));
    assertEquals(lines[1].indexOf("running"), lines[0].indexOf("STATE"), "columns aligned");
    assertEquals(lines.length, 3);

    const plain = await t(["ps", "-a", "--format", '{{.Names}} {{.Command}} {{.Label "x"}}!']);
    assertEquals(plain.stdout, 't-fmt1 "sleep 1000" !\n');

    const json = await t(["ps", "--format", "json"]);
    assertEquals(JSON.parse(json.stdout).Names, "t-fmt1");

    const bogus = await t(["ps", "--format", "{{.Bogus}}"]);
    assertEquals([bogus.code, bogus.stdout], [1, ""]);
    assertStringIncludes(
      bogus.stderr,
      "can't evaluate field Bogus in type *formatter.ContainerContext",
    );

    const images = await t(["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assertEquals([images.code, images.stdout], [0, "busybox:latest\n"], images.stderr);
    const imageTable = await t(["images", "--format", "table {{.Repository}}\\t{{.Tag}}"]);
    assertEquals(imageTable.stdout, "REPOSITORY   TAG\nbusybox      latest\n");

    const stats = await t(["stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", "t-fmt1"]);
    assertEquals([stats.code, stats.stdout], [0, "t-fmt1 1\n"], stats.stderr);

    assertEquals((await t(["volume", "create", "--label", "k=v", "t-vol"])).code, 0);
    const vols = await t(["volume", "ls", "--format", "{{.Name}} {{.Driver}} {{.Labels}}"]);
    assertEquals(vols.stdout, "t-vol local k=v\n");

    const history = await t(["history", "--format", "{{.Size}}|{{.Comment}}", "busybox"]);
    assertEquals(history.code, 0, history.stderr);
    assertMatch(history.stdout, /^(\d+(\.\d+)?[kMG]?B\|\n)+$/);

    const info = await t(["info", "--format", "{{.Driver}} {{.ContainersRunning}}"]);
    assertEquals(info.stdout, "overlay2 1\n");
    const version = await t(["version", "-f", "{{.Client.Os}}"]);
    assertEquals(version.stdout, "linux\n");
  });
});

rootTest("usage errors: one line and See '... --help', docker's exit codes", async () => {
  const { root, cleanup } = await tempRoot();
  const t = (args: string[]) => tsbox(args, { root });
  try {
    await seedStore(root);
    const flag = await t(["run", "--bogus", "busybox", "true"]);
    assertEquals(flag.code, 125);
    assertEquals(flag.stderr, "unknown flag: --bogus\nSee 'tsbox run --help'.\n");
    const lsFlag = await t(["container", "ls", "--bogus"]);
    assertEquals(lsFlag.stderr, "unknown flag: --bogus\nSee 'tsbox container ls --help'.\n");
    assertEquals(lsFlag.code, 125);

    const port = await t(["run", "-p", "127.0.0.1:18081:80:90", "busybox", "true"]);
    assertEquals(port.code, 125);
    assertStringIncludes(port.stderr, "invalid IP address: 127.0.0.1:18081");
    assertOk(!port.stderr.includes("RangeError"), port.stderr);

    const filter = await t(["ps", "--filter", "status=bogus"]);
    assertEquals(filter.code, 1);
    assertStringIncludes(filter.stderr, "invalid filter 'status=bogus'");

    const missing = `${root}/no-such.env`;
    const envFile = await t(["run", "--env-file", missing, "busybox", "true"]);
    assertEquals(envFile.code, 125);
    assertStringIncludes(envFile.stderr, `open ${missing}: no such file or directory`);
    assertStringIncludes(envFile.stderr, "See 'tsbox run --help'.");

    // None of these created a container.
    const all = await t(["ps", "-aq"]);
    assertEquals(all.stdout, "");
  } finally {
    await cleanup();
  }
});

rootTest("inspect shows Config.ExposedPorts and HostConfig.PublishAllPorts as docker", async () => {
  await withRunning(async (t) => {
    const created = await t([
      "create",
      "--name",
      "t-fmt-exp",
      "--expose",
      "7000",
      "busybox",
      "true",
    ]);
    assertEquals(created.code, 0, created.stderr);
    const r = await t([
      "inspect",
      "-f",
      "{{json .Config.ExposedPorts}} {{.HostConfig.PublishAllPorts}}",
      "t-fmt-exp",
    ]);
    assertEquals([r.code, r.stdout, r.stderr], [0, '{"7000/tcp":{}} false\n', ""]);
    await t(["rm", "-f", "t-fmt-exp"]);
  });
});

rootTest("inspect splits the command into Entrypoint and Cmd as docker", async () => {
  await withRunning(async (t) => {
    const created = await t([
      "create",
      "--name",
      "t-fmt-ep",
      "--entrypoint",
      "/bin/echo",
      "busybox",
      "hi",
    ]);
    assertEquals(created.code, 0, created.stderr);
    const r = await t([
      "inspect",
      "-f",
      "{{json .Config.Entrypoint}} {{json .Config.Cmd}}",
      "t-fmt-ep",
    ]);
    assertEquals([r.code, r.stdout, r.stderr], [0, '["/bin/echo"] ["hi"]\n', ""]);
    const plain = await t([
      "inspect",
      "-f",
      "{{json .Config.Entrypoint}} {{json .Config.Cmd}}",
      "t-fmt1",
    ]);
    assertEquals(plain.stdout, 'null ["sleep","1000"]\n');
    await t(["rm", "-f", "t-fmt-ep"]);
  });
});
