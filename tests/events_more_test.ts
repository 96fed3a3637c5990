/**
 * More of docker's events through the real command line (root), beside tests/events_test.ts:
 * `oom` before `die`, exec's `exec_create`/`exec_start`/`exec_die`, a build's and a load's
 * `tag`/`load`, `image prune`'s `untag`/`delete`, volumes' and networks' `create`/`destroy`,
 * and networks' `connect`/`disconnect` of a container.
 */
import { assertEquals } from "./assert.ts";
import { seedStore } from "./busybox_store.ts";
import { type CliResult, tempRoot, tsbox } from "./cli.ts";

const isRoot = Deno.uid() === 0;

type Run = (args: string[]) => Promise<CliResult>;

async function ok(t: Run, args: string[]): Promise<string> {
  const r = await t(args);
  assertEquals(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

function unixNow(): string {
  return (Date.now() / 1000).toFixed(3);
}

/** The events since `since` until now that `filters` let through, in `format`. */
function events(t: Run, since: string, format: string, ...filters: string[]) {
  return ok(t, [
    "events",
    "--since",
    since,
    "--until",
    unixNow(),
    ...filters.flatMap((f) => ["-f", f]),
    "--format",
    format,
  ]);
}

Deno.test({
  name: "events: oom, exec_*, build and load tags, prune, volumes, networks and their connects",
  ignore: !isRoot,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const { root, cleanup } = await tempRoot();
    const t: Run = (args) => tsbox(args, { root });
    const ctx = await Deno.makeTempDir({ prefix: "tsbox-ctx-" });
    const archive = `${ctx}.tar`;
    try {
      await seedStore(root);

      // The OOM killer: `oom`, then `die` with 137.
      let since = unixNow();
      const oom = await t([
        "run",
        "--name",
        "t-evm-oom",
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
        await events(t, since, "{{.Action}}", "container=t-evm-oom"),
        "create\nstart\noom\ndie\n",
      );
      assertEquals(
        await events(
          t,
          since,
          "{{.Actor.Attributes.exitCode}}",
          "container=t-evm-oom",
          "event=die",
        ),
        "137\n",
      );

      // exec: created, started, and its end with the command's code.
      since = unixNow();
      await ok(t, ["run", "-d", "--name", "t-evm-exec", "busybox", "sleep", "60"]);
      assertEquals((await t(["exec", "t-evm-exec", "sh", "-c", "exit 4"])).code, 4);
      assertEquals(
        await events(
          t,
          since,
          "{{.Action}}|{{len .Actor.Attributes.execID}}",
          "container=t-evm-exec",
          "event=exec_create: sh -c exit 4",
          "event=exec_start: sh -c exit 4",
          "event=exec_die",
        ),
        "exec_create: sh -c exit 4|64\nexec_start: sh -c exit 4|64\nexec_die|64\n",
      );
      assertEquals(
        await events(
          t,
          since,
          "{{.Actor.Attributes.exitCode}}",
          "container=t-evm-exec",
          "event=exec_die",
        ),
        "4\n",
      );
      await ok(t, ["rm", "-f", "t-evm-exec"]);

      // A build's name, a save/rmi/load round, and image prune.
      await Deno.writeTextFile(`${ctx}/Dockerfile`, "FROM busybox\nLABEL built=1\n");
      since = unixNow();
      await ok(t, ["build", "-q", "-t", "t-evm-built:1", ctx]);
      const built = (await ok(t, ["inspect", "-f", "{{.Id}}", "t-evm-built:1"])).trim();
      await ok(t, ["save", "-o", archive, "t-evm-built:1"]);
      await ok(t, ["rmi", "t-evm-built:1"]);
      await ok(t, ["load", "-i", archive]);
      await ok(t, ["image", "prune", "-a", "-f"]);
      const images = (await events(t, since, "{{.Action}} {{.Actor.ID}}", "type=image"))
        .trim().split("\n");
      assertEquals(images.filter((l) => l.endsWith(built)), [
        `tag ${built}`,
        `untag ${built}`,
        `delete ${built}`,
        `load ${built}`,
        `tag ${built}`,
        `untag ${built}`,
        `delete ${built}`,
      ]);

      // Volumes and networks: create, destroy; a container connects and disconnects.
      since = unixNow();
      await ok(t, ["volume", "create", "t-evm-vol"]);
      await ok(t, ["volume", "rm", "t-evm-vol"]);
      assertEquals(
        await events(
          t,
          since,
          "{{.Action}} {{.Actor.ID}} {{.Actor.Attributes.driver}}",
          "type=volume",
        ),
        "create t-evm-vol local\ndestroy t-evm-vol local\n",
      );
      since = unixNow();
      const net = (await ok(t, ["network", "create", "--subnet", "10.91.236.0/24", "t-evm-net"]))
        .trim();
      await ok(t, ["run", "--name", "t-evm-on", "--network", "t-evm-net", "busybox", "true"]);
      const on = (await ok(t, ["inspect", "-f", "{{.Id}}", "t-evm-on"])).trim();
      await ok(t, ["rm", "t-evm-on"]);
      await ok(t, ["network", "rm", "t-evm-net"]);
      assertEquals(
        await events(
          t,
          since,
          "{{.Action}} {{.Actor.ID}} {{.Actor.Attributes.name}}",
          "network=t-evm-net",
        ),
        `create ${net} t-evm-net\nconnect ${net} t-evm-net\n` +
          `disconnect ${net} t-evm-net\ndestroy ${net} t-evm-net\n`,
      );
      assertEquals(
        await events(
          t,
          since,
          "{{.Action}} {{.Actor.Attributes.container}}",
          "network=t-evm-net",
          "event=connect",
          "event=disconnect",
        ),
        `connect ${on}\ndisconnect ${on}\n`,
      );
    } finally {
      await Deno.remove(ctx, { recursive: true });
      await Deno.remove(archive).catch(() => {});
      await cleanup();
    }
  },
});
