/**
 * `commit` against real containers (root): the container's changes become a layer of a new
 * image whose containers see them, `-c` instructions change its config, `-a`/`-m` show in its
 * history, a running container is frozen during the commit and runs on after it, and bad
 * changes are refused before anything is made.
 */
import { sharedBusyboxRoot } from "./busybox_store.ts";
import { assertEquals, assertMatch, assertStringIncludes } from "./assert.ts";
import { tsbox } from "./cli.ts";
import { Store } from "../src/store/mod.ts";
import { fixtureRegistry } from "./fixtures/images.ts";
import { join } from "node:path";
import { podmanConfText } from "./podman_conf.ts";

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

/** Image ids in the store, to check that a refused commit made none. */
async function imageIds(): Promise<string[]> {
  return (await ok(["images", "-q", "--no-trunc"])).split("\n").filter(Boolean).sort();
}

rootTest(
  "commit: a file made in the container is in a container of the committed image",
  async () => {
    await ok([
      "run",
      "--name",
      "t-c21-made",
      "-e",
      "GREETING=hi",
      "busybox",
      "sh",
      "-c",
      "echo made-here > /f && mkdir -p /d/e && echo deep > /d/e/g && rm /etc/group",
    ]);
    try {
      const id = await ok([
        "commit",
        "-a",
        "Jane Doe <jane@example.com>",
        "-m",
        "the first commit",
        "t-c21-made",
        "t-c21/made:v1",
      ]);
      assertMatch(id, /^sha256:[0-9a-f]{64}$/);
      assertEquals(
        await ok(["run", "--rm", "t-c21/made:v1", "cat", "/f", "/d/e/g"]),
        "made-here\ndeep",
      );
      // The deletion is a whiteout in the new layer; the container's environment is the config's.
      const r = await cli(["run", "--rm", "t-c21/made:v1", "cat", "/etc/group"]);
      assertEquals(r.code, 1, r.stdout);
      assertEquals(await ok(["run", "--rm", "t-c21/made:v1", "sh", "-c", "echo $GREETING"]), "hi");
      const inspect = JSON.parse(await ok(["image", "inspect", "t-c21/made:v1"]))[0];
      assertEquals(inspect.Author, "Jane Doe <jane@example.com>");
      assertEquals(inspect.Id, id);
      const history = await ok([
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}|{{.Comment}}",
        "t-c21/made:v1",
      ]);
      const top = history.split("\n")[0];
      assertStringIncludes(top, "echo made-here > /f");
      assertStringIncludes(top, "|the first commit");
      assertEquals(history.split("\n").length, 2, history);
      // The layer: the container's files and the whiteout, no runtime mount target.
      const store = await Store.open(await sharedBusyboxRoot());
      try {
        const layer = store.findImage("t-c21/made:v1")!.layers.at(-1)!.dir;
        assertEquals([...Deno.readDirSync(layer)].map((e) => e.name).sort(), ["d", "etc", "f"]);
        // /etc holds only the whiteout of group (a 0/0 device once unpacked), no hostname.
        assertEquals([...Deno.readDirSync(`${layer}/etc`)].map((e) => e.name), ["group"]);
        assertEquals(Deno.lstatSync(`${layer}/etc/group`).isCharDevice, true);
      } finally {
        store.close();
      }
    } finally {
      await cli(["rm", "-f", "t-c21-made"]);
      await cli(["rmi", "t-c21/made:v1"]);
    }
  },
);

rootTest(
  "commit -c: CMD, ENV, WORKDIR, LABEL, EXPOSE, USER, ENTRYPOINT apply to the image",
  async () => {
    await ok(["run", "--name", "t-c21-change", "busybox", "sh", "-c", "echo changed > /f"]);
    try {
      await ok([
        "commit",
        "-c",
        'CMD ["cat","/f"]',
        "-c",
        "ENV A=1",
        "-c",
        // Expanded with the environment before the instruction, as docker's: B sees A=1.
        "ENV B=$A-2 A=3",
        "-c",
        "WORKDIR /tmp",
        "-c",
        'LABEL t-c21="yes"',
        "-c",
        "EXPOSE 8080",
        "-c",
        "STOPSIGNAL SIGINT",
        "t-c21-change",
        "t-c21/change",
      ]);
      assertEquals(await ok(["run", "--rm", "t-c21/change"]), "changed");
      assertEquals(
        await ok(["run", "--rm", "t-c21/change", "sh", "-c", 'echo "$A $B $(pwd)"']),
        "3 1-2 /tmp",
      );
      const cfg = JSON.parse(await ok(["image", "inspect", "t-c21/change"]))[0].Config;
      assertEquals(cfg.Labels["t-c21"], "yes");
      assertEquals(Object.keys(cfg.ExposedPorts), ["8080/tcp"]);
      assertEquals(cfg.StopSignal, "SIGINT");
      // An ENTRYPOINT without a CMD among the changes drops the CMD, as docker's.
      await ok([
        "commit",
        "-c",
        "ENTRYPOINT echo via-entrypoint",
        "-c",
        "USER app",
        "t-c21-change",
        "t-c21/entry",
      ]);
      assertEquals(await ok(["run", "--rm", "t-c21/entry"]), "via-entrypoint");
      const entry = JSON.parse(await ok(["image", "inspect", "t-c21/entry"]))[0].Config;
      assertEquals(entry.Cmd, null);
      assertEquals(entry.User, "app");
    } finally {
      await cli(["rm", "-f", "t-c21-change"]);
      await cli(["rmi", "t-c21/change", "t-c21/entry"]);
    }
  },
);

rootTest(
  "commit of a running container, paused or not: the image has its files, it runs on",
  async () => {
    await ok([
      "run",
      "-d",
      "--name",
      "t-c21-live",
      "busybox",
      "sh",
      "-c",
      "echo live > /live; exec sleep 1000",
    ]);
    try {
      const deadline = Date.now() + 20_000;
      while ((await cli(["exec", "t-c21-live", "cat", "/live"])).stdout.trim() !== "live") {
        if (Date.now() > deadline) throw new Error("the container never wrote /live");
        await new Promise((r) => setTimeout(r, 100));
      }
      await ok(["commit", "t-c21-live", "t-c21/live"]);
      assertEquals(await ok(["inspect", "-f", "{{.State.Status}}", "t-c21-live"]), "running");
      // Thawed: it still answers.
      assertEquals(await ok(["exec", "t-c21-live", "echo", "awake"]), "awake");
      assertEquals(await ok(["run", "--rm", "t-c21/live", "cat", "/live"]), "live");
      await ok(["commit", "--pause=false", "t-c21-live", "t-c21/live2"]);
      assertEquals(await ok(["run", "--rm", "t-c21/live2", "cat", "/live"]), "live");
    } finally {
      await cli(["rm", "-f", "t-c21-live"]);
      await cli(["rmi", "t-c21/live", "t-c21/live2"]);
    }
  },
);

rootTest("commit refuses bad changes and references with 125, making no image", async () => {
  await ok(["create", "--name", "t-c21-bad", "busybox", "true"]);
  try {
    const before = await imageIds();
    for (
      const [args, message] of [
        [["-c", "RUN echo no"], "run is not a valid change command"],
        [["-c", "FROM busybox"], "from is not a valid change command"],
        [["-c", "ONBUILD RUN x"], "ONBUILD is not supported"],
        [["-c", "BOGUS x"], "unknown instruction"],
      ] as const
    ) {
      const r = await cli(["commit", ...args, "t-c21-bad", "t-c21/bad"]);
      assertEquals(r.code, 125, r.stderr);
      assertStringIncludes(r.stderr, message);
    }
    const r = await cli(["commit", "t-c21-bad", "Not:A:Ref"]);
    assertEquals(r.code, 125, r.stderr);
    assertStringIncludes(r.stderr, "invalid reference format");
    const missing = await cli(["commit", "t-c21-nothere", "t-c21/bad"]);
    assertEquals(missing.code, 125);
    assertStringIncludes(missing.stderr, "No such container: t-c21-nothere");
    assertEquals(await imageIds(), before);
    // A container never started has no changes: the image is its base with an empty step.
    await ok(["commit", "t-c21-bad", "t-c21/empty"]);
    const layers = JSON.parse(await ok(["image", "inspect", "t-c21/empty"]))[0].RootFS.Layers;
    const base = JSON.parse(await ok(["image", "inspect", "busybox"]))[0].RootFS.Layers;
    assertEquals(layers, base);
  } finally {
    await cli(["rm", "-f", "t-c21-bad"]);
    await cli(["rmi", "t-c21/empty"]);
  }
});

/** Runs a host program (skopeo, podman) for a check, with its output. */
async function host(cmd: string, args: string[], env?: Record<string, string>) {
  const out = await new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped" }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

rootTest("a committed image, pushed, is run by podman as by tsbox", async () => {
  const fx = await fixtureRegistry();
  const target = `${fx.registry.host}/committed/app:1`;
  const podmanDir = await Deno.makeTempDir({ prefix: "tsbox-podman-" });
  const podman = ["--root", join(podmanDir, "root"), "--runroot", join(podmanDir, "runroot")];
  await ok(["run", "--name", "t-c21-push", "busybox", "sh", "-c", "echo committed > /f"]);
  try {
    await ok(["commit", "-c", 'CMD ["cat", "/f"]', "t-c21-push", target]);
    const pushed = await cli(["push", target]);
    assertEquals(pushed.code, 0, pushed.stderr + pushed.stdout);
    const inspect = await host("skopeo", ["inspect", "--tls-verify=false", `docker://${target}`]);
    assertEquals(inspect.code, 0, inspect.stderr);
    assertEquals(JSON.parse(inspect.stdout).Layers.length, 2);
    await Deno.writeTextFile(
      join(podmanDir, "containers.conf"),
      podmanConfText(podmanDir),
    );
    const ran = await host("podman", [
      ...podman,
      "run",
      "--rm",
      "--tls-verify=false",
      "--network",
      "none",
      "--runtime",
      "runc",
      target,
    ], { ...Deno.env.toObject(), CONTAINERS_CONF: join(podmanDir, "containers.conf") });
    assertEquals(ran.code, 0, ran.stderr);
    assertEquals(ran.stdout, "committed\n");
  } finally {
    await host("podman", [...podman, "system", "reset", "-f"]);
    await Deno.remove(podmanDir, { recursive: true }).catch(() => {});
    await cli(["rm", "-f", "t-c21-push"]);
    await cli(["rmi", target]);
  }
});
