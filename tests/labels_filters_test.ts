/**
 * Labels and listing filters through the real command line (root): containers run and created
 * with `--label`/`-l`/`--label-file` from busybox and from images built on it, read back with
 * `inspect` and `ps --format`; `ps --filter` for each of docker's keys, `ps -n/-l/-s`;
 * `images --filter` and `volume ls --filter`; and docker's errors for bad input.
 */
import { join } from "node:path";
import { assertEquals, assertMatch, assertOk, assertStringIncludes } from "./assert.ts";
import { seedStore } from "./busybox_store.ts";
import { type CliResult, tempRoot, tsbox } from "./cli.ts";

const isRoot = Deno.uid() === 0;

function rootTest(name: string, fn: () => Promise<void>) {
  Deno.test({ name, ignore: !isRoot, sanitizeResources: false, sanitizeOps: false, fn });
}

type Run = (args: string[]) => Promise<CliResult>;

/** Runs `args`, failing the test unless it exits 0; returns stdout's lines. */
async function lines(t: Run, args: string[]): Promise<string[]> {
  const r = await t(args);
  assertEquals(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
  return r.stdout.split("\n").filter((l) => l !== "");
}

/** Builds `tag` from a Dockerfile and one file `name` with `content` in the context. */
async function build(t: Run, tag: string, dockerfile: string, content: string): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "tsbox-ctx-" });
  try {
    await Deno.writeTextFile(join(dir, "Dockerfile"), dockerfile);
    await Deno.writeTextFile(join(dir, "file.txt"), content);
    const r = await t(["build", "-q", "-t", tag, dir]);
    assertEquals(r.code, 0, r.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** A store with busybox, `t-base:1` (busybox + a layer, labels) and `t-child:1` (t-base + one). */
async function withImages(fn: (t: Run, root: string) => Promise<void>) {
  const { root, cleanup } = await tempRoot();
  const t: Run = (args) => tsbox(args, { root });
  try {
    await seedStore(root);
    await build(
      t,
      "t-base:1",
      "FROM busybox\nLABEL com.example.tier=base team=img\nCOPY file.txt /base\n",
      "base",
    );
    await build(t, "t-child:1", "FROM t-base:1\nCOPY file.txt /child\n", "child");
    await fn(t, root);
  } finally {
    await cleanup();
  }
}

rootTest("run/create --label, -l K, --label-file: inspect and ps --format show them", async () => {
  await withImages(async (t, root) => {
    const file = join(root, "labels.env");
    await Deno.writeTextFile(file, "# team from the file\nteam=file\n\n  owner=ops\n");
    const run = await t([
      "run",
      "-d",
      "--name",
      "t-lab1",
      "-l",
      "app=web",
      "--label",
      "tier",
      "--label-file",
      file,
      "t-base:1",
      "sleep",
      "1000",
    ]);
    assertEquals(run.code, 0, run.stderr);
    const inspected = await t(["inspect", "-f", "{{json .Config.Labels}}", "t-lab1"]);
    assertEquals(inspected.code, 0, inspected.stderr);
    // The image's labels merged under the container's (team: the file's over the image's).
    assertEquals(JSON.parse(inspected.stdout), {
      app: "web",
      "com.example.tier": "base",
      owner: "ops",
      team: "file",
      tier: "",
    });
    assertEquals(
      await lines(t, ["inspect", "-f", '{{index .Config.Labels "app"}}', "t-lab1"]),
      ["web"],
    );
    assertEquals(
      await lines(t, ["ps", "--format", '{{.Names}} {{.Label "team"}} {{.Labels}}']),
      ["t-lab1 file app=web,com.example.tier=base,owner=ops,team=file,tier="],
    );
    const table = await lines(t, ["ps", "--format", "table {{.Names}}\t{{.Labels}}"]);
    assertMatch(table[0], /^NAMES\s+LABELS$/);

    assertEquals((await t(["create", "--name", "t-lab2", "-l", "app=db", "busybox"])).code, 0);
    assertEquals(
      await lines(t, ["container", "inspect", "-f", "{{json .Config.Labels}}", "t-lab2"]),
      ['{"app":"db"}'],
    );
    // No label at all: an empty map, as docker shows it.
    assertEquals((await t(["create", "--name", "t-lab3", "busybox"])).code, 0);
    assertEquals(await lines(t, ["inspect", "-f", "{{json .Config.Labels}}", "t-lab3"]), ["{}"]);

    // Bad input: docker's messages, exit 125, nothing created.
    const empty = await t(["run", "-l", "=x", "busybox", "true"]);
    assertEquals(empty.code, 125);
    assertStringIncludes(empty.stderr, "invalid label '=x': empty name");
    assertStringIncludes(empty.stderr, "See 'tsbox run --help'.");
    const spaced = await t(["create", "--label", "a b=c", "busybox"]);
    assertEquals(spaced.code, 125);
    assertStringIncludes(spaced.stderr, "label 'a b' contains whitespaces");
    const missing = await t(["run", "--label-file", `${root}/none`, "busybox", "true"]);
    assertEquals(missing.code, 125);
    assertStringIncludes(missing.stderr, `open ${root}/none: no such file or directory`);
    await Deno.writeTextFile(file, "ok=1\nbad key=2\n");
    const badFile = await t(["run", "--label-file", file, "busybox", "true"]);
    assertEquals(badFile.code, 125);
    assertStringIncludes(badFile.stderr, "label 'bad key' contains whitespaces");
    assertEquals((await lines(t, ["ps", "-aq"])).length, 3);
  });
});

rootTest("ps --filter: every docker key, -n/-l/-s, and docker's errors", async () => {
  await withImages(async (t) => {
    const names = (args: string[]) =>
      lines(t, ["ps", "--format", "{{.Names}}", ...args]).then((l) => l.join(" "));
    // Oldest first: t-up1, t-cr2, t-ex3, t-ex0, t-vol4, t-net5, t-kid6.
    for (
      const args of [
        ["run", "-d", "--name", "t-up1", "-l", "app=web", "-l", "tier", "busybox", "sleep", "1000"],
        ["create", "--name", "t-cr2", "-l", "app=db", "busybox"],
        ["run", "--name", "t-ex3", "t-base:1", "sh", "-c", "exit 3"],
        ["run", "--name", "t-ex0", "busybox", "true"],
        ["run", "-d", "--name", "t-vol4", "-v", "t-labvol:/data", "busybox", "sleep", "1000"],
        ["create", "--name", "t-net5", "--network", "none", "busybox"],
        ["create", "--name", "t-kid6", "t-child:1"],
      ]
    ) {
      const r = await t(args);
      assertOk(r.code === 0 || (args.includes("t-ex3") && r.code === 3), r.stderr);
    }
    const all = "t-kid6 t-net5 t-vol4 t-ex0 t-ex3 t-cr2 t-up1";
    assertEquals(await names(["-a"]), all);
    assertEquals(await names([]), "t-vol4 t-up1");

    // label=: key, key=value, all values required; label!=.
    assertEquals(await names(["--filter", "label=app"]), "t-up1");
    assertEquals(await names(["-a", "-f", "label=app"]), "t-cr2 t-up1");
    assertEquals(await names(["-a", "-f", "label=app=db"]), "t-cr2");
    assertEquals(await names(["-a", "-f", "label=app", "-f", "label=tier"]), "t-up1");
    assertEquals(await names(["-a", "-f", "label!=app"]), "t-kid6 t-net5 t-vol4 t-ex0 t-ex3");
    assertEquals(
      await names(["-a", "-f", "label!=app=web"]),
      "t-kid6 t-net5 t-vol4 t-ex0 t-ex3 t-cr2",
    );
    // The image's labels are the container's too.
    assertEquals(await names(["-a", "-f", "label=com.example.tier=base"]), "t-kid6 t-ex3");

    // ancestor=: the image by name or id, and images built on it.
    assertEquals(await names(["-a", "-f", "ancestor=t-base:1"]), "t-kid6 t-ex3");
    assertEquals(await names(["-a", "-f", "ancestor=t-child:1"]), "t-kid6");
    assertEquals(await names(["-a", "-f", "ancestor=busybox"]), all);
    const baseId = (await lines(t, ["images", "-q", "t-base:1"]))[0];
    assertEquals(await names(["-a", "-f", `ancestor=${baseId}`]), "t-kid6 t-ex3");
    assertEquals(await names(["-a", "-f", "ancestor=no-such-image"]), "");

    // before= / since= (by name or id), exited=, status=.
    assertEquals(await names(["-a", "-f", "before=t-ex3"]), "t-cr2 t-up1");
    assertEquals(await names(["-a", "-f", "since=t-vol4"]), "t-kid6 t-net5");
    assertEquals(await names(["-f", "since=t-cr2"]), "t-vol4", "since= alone lists running ones");
    assertEquals(await names(["-a", "-f", "exited=3"]), "t-ex3");
    assertEquals(await names(["-a", "-f", "exited=0"]), "t-ex0", "never started: no exit code");
    assertEquals(await names(["-a", "-f", "exited=0", "-f", "exited=3"]), "t-ex0 t-ex3");
    assertEquals(await names(["-f", "status=created"]), "t-kid6 t-net5 t-cr2");

    // volume= (name or destination), network=, health= (none: no healthcheck here).
    assertEquals(await names(["-f", "volume=t-labvol"]), "t-vol4");
    assertEquals(await names(["-a", "-f", "volume=/data"]), "t-vol4");
    assertEquals(await names(["-a", "-f", "volume=nothing"]), "");
    assertEquals(await names(["-a", "-f", "network=none"]), "t-net5");
    assertEquals(await names(["-f", "network=bridge"]), "t-vol4 t-up1");
    assertEquals(await names(["-a", "-f", "health=none"]), all);
    assertEquals(await names(["-a", "-f", "health=healthy"]), "");

    // -n N and -l: the newest, in any state.
    assertEquals(await names(["-n", "2"]), "t-kid6 t-net5");
    assertEquals(await names(["-l"]), "t-kid6");
    assertEquals(await names(["-n", "2", "-f", "label=app"]), "t-cr2 t-up1");

    // -s: docker's SIZE column, the container's own files and the image's.
    const wrote = await t(["exec", "t-up1", "sh", "-c", "head -c 100000 /dev/zero > /big"]);
    assertEquals(wrote.code, 0, wrote.stderr);
    const sized = await lines(t, ["ps", "-s", "-f", "name=t-up1"]);
    assertMatch(sized[0], /\bNAMES\s+SIZE$/);
    assertMatch(sized[1], /t-up1\s+100kB \(virtual [\d.]+[kMG]?B\)$/);
    const kidSize = await lines(t, ["ps", "-a", "-s", "--format", "{{.Size}}", "-f", "name=kid"]);
    assertMatch(kidSize[0], /^0B \(virtual [\d.]+[kMG]?B\)$/);

    // publish= (host ports) and expose= (container ports, ranges); is-task=, isolation=.
    const ported = await t(
      ["run", "-d", "--name", "t-port7", "-P", "--expose", "80", "--expose", "90/udp", "busybox"]
        .concat(["sleep", "1000"]),
    );
    assertEquals(ported.code, 0, ported.stderr);
    const hostPort = (await lines(t, ["port", "t-port7", "80/tcp"]))[0].split(":").at(-1);
    assertEquals(await names(["-f", `publish=${hostPort}`]), "t-port7");
    assertEquals(await names(["-f", `publish=${hostPort}/udp`]), "");
    assertEquals(await names(["-f", "expose=80"]), "t-port7");
    assertEquals(await names(["-f", "expose=90/udp"]), "t-port7");
    assertEquals(await names(["-f", "expose=70-85/tcp"]), "t-port7");
    assertEquals(await names(["-f", "expose=81-85"]), "");
    assertEquals(await names(["-f", "is-task=false"]), "t-port7 t-vol4 t-up1");
    assertEquals(await names(["-f", "is-task=true"]), "");
    assertEquals(await names(["-f", "isolation=default"]), "t-port7 t-vol4 t-up1");

    // Errors as docker's: unknown key and bad values exit 1; a bad flag value 125.
    const expectFail = async (args: string[], code: number, message: string) => {
      const r = await t(args);
      assertEquals(r.code, code, `${args.join(" ")}: ${r.stderr}`);
      assertStringIncludes(r.stderr, message);
      assertEquals(r.stdout, "");
    };
    await expectFail(["ps", "-f", "bogus=1"], 1, "invalid filter 'bogus'");
    await expectFail(["ps", "-f", "status=bogus"], 1, "invalid filter 'status=bogus'");
    await expectFail(["ps", "-f", "exited=x"], 1, 'strconv.Atoi: parsing "x": invalid syntax');
    await expectFail(["ps", "-f", "health=x"], 1, "Unrecognised filter value for health: x");
    await expectFail(["ps", "-f", "before=t-nope"], 1, "No such container: t-nope");
    await expectFail(["ps", "-f", "dangling=true"], 1, "invalid filter 'dangling'");
    await expectFail(["ps", "-f", "publish=1:2"], 1, "filter for 'publish' should not contain ':'");
    await expectFail(["ps", "-f", "expose=x"], 1, "error while looking up for expose x");
    await expectFail(["ps", "-f", "label"], 125, "bad format of filter (expected name=value)");
    await expectFail(["ps", "-n", "x"], 125, 'invalid argument "x" for "--last" flag');
  });
});

rootTest("images --filter dangling/label/reference/before/since; volume ls --filter", async () => {
  await withImages(async (t) => {
    const repos = (args: string[]) =>
      lines(t, ["images", "--format", "{{.Repository}}:{{.Tag}}", ...args])
        .then((l) => l.sort().join(" "));
    // A rebuilt tag leaves the old image dangling.
    await build(t, "t-dang:1", "FROM busybox\nCOPY file.txt /d\n", "one");
    const old = (await lines(t, ["images", "-q", "t-dang:1"]))[0];
    await build(t, "t-dang:1", "FROM busybox\nCOPY file.txt /d\n", "two");
    assertEquals(await lines(t, ["images", "-q", "--filter", "dangling=true"]), [old]);
    assertEquals(
      await repos(["-f", "dangling=false"]),
      "busybox:latest t-base:1 t-child:1 t-dang:1",
    );
    assertEquals(await repos(["-f", "dangling=true"]), "<none>:<none>");

    assertEquals(await repos(["-f", "label=com.example.tier"]), "t-base:1 t-child:1");
    assertEquals(
      await repos(["-f", "label=team=img", "-f", "label=com.example.tier=base"]),
      "t-base:1 t-child:1",
    );
    assertEquals(await repos(["-f", "label=team=other"]), "");
    assertEquals(
      await repos(["-f", "label!=team", "-f", "dangling=false"]),
      "busybox:latest t-dang:1",
    );

    assertEquals(await repos(["-f", "reference=t-*"]), "t-base:1 t-child:1 t-dang:1");
    assertEquals(await repos(["-f", "reference=busybox"]), "busybox:latest");
    assertEquals(await repos(["-f", "reference=*:latest"]), "busybox:latest");
    assertEquals(await repos(["-f", "reference=t-[bc]*:1"]), "t-base:1 t-child:1");
    // One image, two tags: only the tag that matches is listed.
    assertEquals((await t(["tag", "t-base:1", "other:2"])).code, 0);
    assertEquals(await repos(["-f", "reference=other"]), "other:2");

    assertEquals(
      await repos(["-f", "before=t-child:1", "-f", "dangling=false"]),
      "busybox:latest other:2 t-base:1",
    );
    assertEquals(await repos(["-f", "since=t-child:1", "-f", "dangling=false"]), "t-dang:1");

    const fail = async (args: string[], code: number, message: string) => {
      const r = await t(args);
      assertEquals(r.code, code, `${args.join(" ")}: ${r.stderr}`);
      assertStringIncludes(r.stderr, message);
    };
    await fail(["images", "-f", "bogus=1"], 1, "invalid filter 'bogus'");
    await fail(["images", "-f", "dangling=maybe"], 1, "invalid filter 'dangling=[maybe]'");
    await fail(["images", "-f", "before=t-nope:1"], 1, "No such image: t-nope:1");
    await fail(["images", "-f", "reference=["], 1, "syntax error in pattern");
    await fail(["images", "-f", "status=running"], 1, "invalid filter 'status'");

    // volume ls: label=, label!=, name=, driver=, dangling= (no container names it).
    for (
      const args of [
        ["volume", "create", "--label", "env=prod", "t-lv-a"],
        ["volume", "create", "--label", "env=dev", "--label", "keep", "t-lv-b"],
        ["create", "--name", "t-uses", "-v", "t-lv-c:/c", "busybox"],
      ]
    ) assertEquals((await t(args)).code, 0);
    const vols = (args: string[]) =>
      lines(t, ["volume", "ls", "-q", ...args]).then((l) => l.sort().join(" "));
    assertEquals(await vols(["--filter", "label=env=prod"]), "t-lv-a");
    assertEquals(await vols(["-f", "label=env"]), "t-lv-a t-lv-b");
    assertEquals(await vols(["-f", "label=keep"]), "t-lv-b");
    assertEquals(await vols(["-f", "label!=env=prod"]), "t-lv-b t-lv-c");
    assertEquals(await vols(["-f", "dangling=true"]), "t-lv-a t-lv-b");
    assertEquals(await vols(["-f", "dangling=false"]), "t-lv-c");
    assertEquals(await vols(["-f", "name=lv-[ab]"]), "t-lv-a t-lv-b");
    assertEquals(await vols(["-f", "driver=local"]), "t-lv-a t-lv-b t-lv-c");
    assertEquals(
      await lines(t, ["volume", "ls", "-f", "label=env=dev", "--format", "{{.Name}} {{.Labels}}"]),
      ["t-lv-b env=dev,keep="],
    );
    await fail(["volume", "ls", "-f", "bogus=1"], 1, "invalid filter 'bogus'");
    await fail(["volume", "ls", "-f", "dangling=x"], 1, "invalid filter 'dangling=[x]'");
    await fail(["volume", "create", "--label", "=v", "t-lv-bad"], 125, "invalid label '=v'");
  });
});
