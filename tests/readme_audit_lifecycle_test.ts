/**
 * README audit (issue 19), lifecycle and container commands on real containers of the runtime
 * busybox (pulled by tsbox from the fixture registry): `container ls` is `ps`, `container X` for
 * the other commands, `inspect` (containers first) / `image inspect` / `container inspect`,
 * `ps --no-trunc`, `logs` keeping stdout and stderr apart, `export` to stdout, `cp` both ways,
 * `wait` of several containers, `kill` (SIGKILL by default), `--version` and `--debug`.
 */
import { assertEquals, assertMatch, assertOk, assertStringIncludes } from "./assert.ts";
import { sharedBusyboxRoot } from "./busybox_store.ts";
import { type Cli, cliFor, rootTest, uniqueName, until } from "./readme_audit.ts";

async function env(): Promise<Cli> {
  return cliFor(await sharedBusyboxRoot());
}

/** Runs `fn`, then removes the containers `names` (forced) however `fn` ends. */
async function withNames(
  e: Cli,
  names: string[],
  fn: () => Promise<void>,
): Promise<void> {
  try {
    await fn();
  } finally {
    await e.t(["rm", "-f", ...names]);
  }
}

/** ps output without the CREATED and STATUS columns, which change from one second to the next. */
function stable(out: string): string[] {
  return out.trim().split("\n").map((l) => {
    const cols = l.split(/\s{3,}/);
    return [cols[0], cols[1], cols[2], cols.at(-1)].join("|");
  });
}

rootTest("container ls is ps: same rows, -a, -q, --no-trunc, --filter and --format", async () => {
  const e = await env();
  const [up, done] = [uniqueName("ls-up"), uniqueName("ls-done")];
  await withNames(e, [up, done], async () => {
    await e.ok(["run", "-d", "--name", up, "busybox", "sleep", "300"]);
    await e.ok(["run", "--name", done, "busybox", "true"]);
    const filter = ["--filter", "name=^t-ls-"];
    const ps = stable(await e.ok(["ps", ...filter]));
    assertEquals(ps.length, 2, ps.join("\n"));
    assertOk(ps[1].endsWith(`|${up}`), ps.join("\n"));
    assertEquals(stable(await e.ok(["container", "ls", ...filter])), ps);
    assertEquals(stable(await e.ok(["container", "ps", ...filter])), ps);
    assertEquals(stable(await e.ok(["container", "list", ...filter])), ps);

    const all = stable(await e.ok(["ps", "-a", ...filter]));
    assertEquals(all.length, 3, all.join("\n"));
    assertEquals(stable(await e.ok(["container", "ls", "-a", ...filter])), all);
    for (
      const flags of [["-a", "-q"], ["-a", "-q", "--no-trunc"], ["-a", "--format", "{{.Names}}"]]
    ) {
      const fromPs = await e.ok(["ps", ...flags, ...filter]);
      assertEquals(await e.ok(["container", "ls", ...flags, ...filter]), fromPs, flags.join(" "));
    }
    const full = (await e.ok(["container", "ls", "-q", "--no-trunc", "--filter", `name=${up}`]))
      .trim();
    assertEquals(full, (await e.ok(["inspect", "-f", "{{.Id}}", up])).trim());
    assertMatch(full, /^[0-9a-f]{64}$/);
  });
});

rootTest("ps --no-trunc shows the full id and command; ps cuts them", async () => {
  const e = await env();
  const name = uniqueName("notrunc");
  const script = "echo a-rather-long-command-line-that-ps-cuts; sleep 300";
  await withNames(e, [name], async () => {
    const id = (await e.ok(["run", "-d", "--name", name, "busybox", "sh", "-c", script])).trim();
    const filter = ["--filter", `name=${name}`];
    const cut = (await e.ok(["ps", ...filter])).trim().split("\n")[1].split(/\s{3,}/);
    assertEquals(cut[0], id.slice(0, 12));
    assertOk(!cut[2].includes("sleep 300"), cut[2]);
    assertStringIncludes(cut[2], "…");
    const full = (await e.ok(["ps", "--no-trunc", ...filter])).trim().split("\n")[1]
      .split(/\s{3,}/);
    assertEquals(full[0], id);
    assertStringIncludes(full[2], script);
  });
});

rootTest("container X runs each lifecycle command on containers only", async () => {
  const e = await env();
  const name = uniqueName("cx");
  await withNames(e, [name], async () => {
    const id = (await e.ok([
      "container",
      "create",
      "--name",
      name,
      "busybox",
      "sh",
      "-c",
      "echo started; exec sleep 300",
    ])).trim();
    assertEquals(
      await e.ok(["container", "inspect", "-f", "{{.State.Status}}", name]),
      "created\n",
    );
    assertEquals((await e.ok(["container", "start", name])).trim(), name);
    await until(
      "started in the logs",
      async () => (await e.ok(["container", "logs", name])) === "started\n" ? true : undefined,
    );
    const top = await e.ok(["container", "top", name]);
    assertStringIncludes(top, "sleep 300");
    await e.ok(["container", "pause", name]);
    assertEquals(await e.ok(["container", "inspect", "-f", "{{.State.Status}}", name]), "paused\n");
    await e.ok(["container", "unpause", name]);
    assertEquals(
      await e.ok(["container", "inspect", "-f", "{{.State.Status}}", name]),
      "running\n",
    );
    assertEquals((await e.ok(["container", "kill", name])).trim(), name);
    assertEquals(await e.ok(["container", "wait", name]), "137\n");
    assertEquals(await e.ok(["container", "inspect", "-f", "{{.State.ExitCode}}", name]), "137\n");
    assertEquals((await e.ok(["container", "rm", name])).trim(), name);
    assertEquals(await e.ok(["ps", "-a", "-q", "--no-trunc", "--filter", `id=${id}`]), "");
  });
});

rootTest(
  "inspect finds containers before images; image/container inspect find one kind",
  async () => {
    const e = await env();
    // A container and an image both called NAME (the image as NAME:latest).
    const name = uniqueName("both");
    await withNames(e, [name], async () => {
      try {
        await e.ok(["tag", "busybox", name]);
        const cid = (await e.ok(["create", "--name", name, "busybox", "true"])).trim();
        const iid = (await e.ok(["image", "inspect", "-f", "{{.Id}}", "busybox"])).trim();
        const both = JSON.parse(await e.ok(["inspect", name]));
        assertEquals(both.length, 1);
        assertEquals(both[0].Id, cid, "inspect takes the container first");
        assertEquals(both[0].State.Status, "created");
        const image = JSON.parse(await e.ok(["image", "inspect", name]));
        assertEquals(image[0].Id, iid);
        assertEquals(image[0].RootFS.Type, "layers");
        assertEquals(JSON.parse(await e.ok(["container", "inspect", name]))[0].Id, cid);
        // container inspect of an image name, and image inspect of a container id: not found.
        const noContainer = await e.t(["container", "inspect", "busybox"]);
        assertEquals(noContainer.code, 1, noContainer.stderr);
        assertStringIncludes(noContainer.stderr, "No such container");
        const noImage = await e.t(["image", "inspect", cid]);
        assertEquals(noImage.code, 1, noImage.stderr);
        // docker says "No such image"; tsbox says "No such object" (reported, issue 19 audit).
        assertMatch(noImage.stderr, /No such (image|object): /);
        // Several names: a container and an image, in order.
        const mixed = JSON.parse(await e.ok(["inspect", name, "busybox"]));
        assertEquals(mixed.map((o: { Id: string }) => o.Id), [cid, iid]);
      } finally {
        await e.t(["rmi", name]);
      }
    });
  },
);

rootTest("logs keeps stdout and stderr apart; wait prints each container's code", async () => {
  const e = await env();
  const [a, b] = [uniqueName("out"), uniqueName("other")];
  await withNames(e, [a, b], async () => {
    await e.ok([
      "run",
      "-d",
      "--name",
      a,
      "busybox",
      "sh",
      "-c",
      "echo o1; echo e1 >&2; echo o2; exit 5",
    ]);
    await e.ok(["run", "-d", "--name", b, "busybox", "sh", "-c", "exit 9"]);
    assertEquals(await e.ok(["wait", a, b]), "5\n9\n");
    const logs = await e.t(["logs", a]);
    assertEquals(logs.code, 0);
    assertEquals(logs.stdout, "o1\no2\n");
    assertEquals(logs.stderr, "e1\n");
  });
});

rootTest("cp into and out of a container; export without -o writes a tar to stdout", async () => {
  const e = await env();
  const name = uniqueName("cp");
  const work = await Deno.makeTempDir({ prefix: "tsbox-audit-cp-" });
  await withNames(e, [name], async () => {
    try {
      await e.ok(["run", "-d", "--name", name, "busybox", "sleep", "300"]);
      await Deno.mkdir(`${work}/dir/sub`, { recursive: true });
      await Deno.writeTextFile(`${work}/dir/sub/f`, "host-file\n");
      await e.ok(["cp", `${work}/dir`, `${name}:/copied`]);
      assertEquals(await e.ok(["exec", name, "cat", "/copied/sub/f"]), "host-file\n");
      await e.ok(["exec", name, "sh", "-c", "echo made-inside > /tmp/inside"]);
      await e.ok(["cp", `${name}:/tmp/inside`, `${work}/back`]);
      assertEquals(await Deno.readTextFile(`${work}/back`), "made-inside\n");

      // export to stdout: a tar holding the image's files and the container's own.
      const main = new URL("../main.ts", import.meta.url).pathname;
      const out = await new Deno.Command("sh", {
        args: [
          "-c",
          'exec "$0" run -A --quiet "$1" --root "$2" export "$3" > "$4"',
          Deno.execPath(),
          main,
          e.root,
          name,
          `${work}/ex.tar`,
        ],
        env: { DENO_NO_UPDATE_CHECK: "1" },
        stderr: "piped",
      }).output();
      assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
      const list = await new Deno.Command("tar", { args: ["-tf", `${work}/ex.tar`] }).output();
      assertOk(list.success);
      const raw = new TextDecoder().decode(list.stdout).split("\n").filter(Boolean);
      const norm = (l: string) => l.replace(/^\.?\//, "").replace(/\/$/, "");
      const entries = raw.map(norm);
      for (const want of ["bin/busybox", "etc/passwd", "copied/sub/f", "tmp/inside"]) {
        assertOk(entries.includes(want), `${want} in the export: ${entries.slice(0, 20)}`);
      }
      const member = raw.find((l) => norm(l) === "tmp/inside")!;
      const inside = await new Deno.Command("tar", {
        args: ["-xOf", `${work}/ex.tar`, member],
      }).output();
      assertEquals(new TextDecoder().decode(inside.stdout), "made-inside\n");
    } finally {
      await Deno.remove(work, { recursive: true });
    }
  });
});

rootTest("--version prints the version; --debug prints a failure's stack", async () => {
  const e = await env();
  const version = await e.ok(["--version"]);
  assertMatch(version, /^\d+\.\d+\.\d+\S*\n$/);
  assertStringIncludes(await e.ok(["version"]), version.trim());
  // A missing image with --pull never (nothing leaves the machine): one line, or the stack.
  const args = ["run", "--rm", "--pull", "never", "t-no-such-image:1", "true"];
  const plain = await e.t(args);
  const debug = await e.t(["--debug", ...args]);
  assertEquals([plain.code, debug.code], [125, 125]);
  assertEquals(plain.stderr, "tsbox: No such image: t-no-such-image:1\n");
  assertStringIncludes(debug.stderr, "No such image: t-no-such-image:1");
  assertMatch(debug.stderr, /\n\s+at /, "a stack trace with --debug");
});

rootTest("generate systemd --files writes the unit printed without it into the cwd", async () => {
  const e = await env();
  const name = uniqueName("gen");
  const dir = await Deno.makeTempDir({ prefix: "tsbox-audit-units-" });
  await withNames(e, [name], async () => {
    try {
      await e.ok(["create", "--name", name, "busybox", "sleep", "300"]);
      const printed = await e.ok([
        "generate",
        "systemd",
        "--name",
        "--restart-policy",
        "always",
        name,
      ]);
      const r = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "--quiet", new URL("../main.ts", import.meta.url).pathname, "--root"]
          .concat([e.root, "generate", "systemd", "--files", "--name", "--restart-policy"])
          .concat(["always", name]),
        cwd: dir,
        env: { DENO_NO_UPDATE_CHECK: "1" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      assertEquals(r.code, 0, new TextDecoder().decode(r.stderr));
      const file = `${dir}/container-${name}.service`;
      assertEquals(new TextDecoder().decode(r.stdout), `${file}\n`);
      assertEquals([...Deno.readDirSync(dir)].map((f) => f.name), [`container-${name}.service`]);
      assertEquals((await Deno.readTextFile(file)).trimEnd(), printed.trimEnd());
      assertStringIncludes(printed, "\nRestart=always\n");
      assertStringIncludes(printed, `start ${name}\n`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
});

rootTest("stop, start and restart take several containers and name each", async () => {
  const e = await env();
  const names = [uniqueName("multi-a"), uniqueName("multi-b")];
  await withNames(e, names, async () => {
    for (const n of names) await e.ok(["run", "-d", "--name", n, "busybox", "sleep", "300"]);
    const state = async () =>
      (await Promise.all(names.map((n) => e.ok(["inspect", "-f", "{{.State.Status}}", n]))))
        .join("");
    assertEquals(await e.ok(["stop", "-t", "1", ...names]), names.map((n) => `${n}\n`).join(""));
    assertEquals(await state(), "exited\nexited\n");
    assertEquals(await e.ok(["start", ...names]), names.map((n) => `${n}\n`).join(""));
    assertEquals(await state(), "running\nrunning\n");
    const pids = await e.ok(["inspect", "-f", "{{.State.Pid}}", ...names]);
    assertEquals(await e.ok(["restart", "-t", "1", ...names]), names.map((n) => `${n}\n`).join(""));
    assertEquals(await state(), "running\nrunning\n");
    const after = (await e.ok(["inspect", "-f", "{{.State.Pid}}", ...names])).split("\n");
    pids.split("\n").filter(Boolean).forEach((p, i) => assertOk(p !== after[i], "a new PID"));
  });
});
