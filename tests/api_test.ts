/**
 * The Docker Engine API (`tsbox system service`, src/api/) driven by the real docker client
 * with DOCKER_HOST at tsbox's socket (root): version, info, pull from the fixture registry on
 * 127.0.0.1, images, run (attached, exit codes, detached), ps, logs, stop, rm, inspect, tag,
 * rmi; the socket's mode and owner; hostile requests; and a service killed with -9 while
 * containers run, which loses nothing.
 */
import { authRegistry, NGINX_MARKER } from "./fixtures/images.ts";
import { assertEquals, assertMatch, assertOk, assertStringIncludes } from "./assert.ts";
import { tempRoot, tsbox } from "./cli.ts";
import { hasTmux, Tmux } from "./tmux.ts";
import {
  CLIENTS,
  DOCKER,
  MAIN,
  ok,
  rawRequest,
  rootTest,
  setup,
  startService,
} from "./api_helpers.ts";

for (const client of CLIENTS.length > 0 ? CLIENTS : ["docker"]) {
  rootTest(
    `api (${client}): version, info, pull, images, run, logs, ps, stop, rm, inspect, tag, rmi`,
    () => everyday(client),
  );
}

/** The docker client's everyday commands through tsbox's socket. */
async function everyday(client: string): Promise<void> {
  const t = await setup(client);
  try {
    // The socket: root's, 0660, a socket (never TCP).
    const st = Deno.statSync(t.socket);
    assertOk(st.isSocket);
    assertEquals(st.mode! & 0o777, 0o660);
    assertEquals([st.uid, st.gid], [0, 0]);

    const version = await ok(t.d("version", "--format", "{{.Server.APIVersion}} {{.Server.Os}}"));
    assertEquals(version.trim(), "1.41 linux");
    const info = await ok(t.d("info", "--format", "{{.Images}} {{.Containers}} {{.Driver}}"));
    assertEquals(info.trim(), "0 0 overlay2");

    const ref = t.fx.refs.busybox;
    const pull = await t.d("pull", ref);
    assertEquals(pull.code, 0, pull.stderr);
    assertStringIncludes(pull.stdout, "Pull complete");
    assertStringIncludes(pull.stdout, "Digest: sha256:");
    const images = await ok(t.d("images", "--format", "{{.Repository}}:{{.Tag}}"));
    assertEquals(images.trim(), ref);

    // Attached run: output and exit codes, removed afterwards.
    const hi = await t.d("run", "--rm", ref, "echo", "hi");
    assertEquals([hi.code, hi.stdout], [0, "hi\n"], hi.stderr);
    const three = await t.d("run", "--rm", ref, "sh", "-c", "echo out; echo err >&2; exit 3");
    assertEquals([three.code, three.stdout, three.stderr], [3, "out\n", "err\n"]);
    assertEquals((await ok(t.d("ps", "-aq"))).trim(), "");

    // Detached: ps, logs, inspect, stop, rm -f.
    const id = (await ok(
      t.d("run", "-d", "--name", "t-api1", ref, "sh", "-c", "echo started; exec sleep 600"),
    )).trim();
    assertMatch(id, /^[0-9a-f]{64}$/);
    const ps = await ok(t.d("ps", "--format", "{{.Names}} {{.State}} {{.Image}}"));
    assertEquals(ps.trim(), `t-api1 running ${ref}`);
    const filtered = await ok(t.d("ps", "-a", "--filter", "name=nothing-here", "-q"));
    assertEquals(filtered.trim(), "");
    for (let i = 0; i < 100; i++) {
      if ((await ok(t.d("logs", "t-api1"))).includes("started")) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assertEquals(await ok(t.d("logs", "t-api1")), "started\n");
    assertMatch(await ok(t.d("logs", "-t", "t-api1")), /^\d{4}-\d\d-\d\dT\S+ started\n$/);
    const state = await ok(t.d("inspect", "--format", "{{.State.Status}} {{.Name}}", "t-api1"));
    assertEquals(state.trim(), "running /t-api1");
    await ok(t.d("stop", "-t", "1", "t-api1"));
    const after = await ok(t.d("inspect", "--format", "{{.State.Status}}", "t-api1"));
    assertEquals(after.trim(), "exited");
    await ok(t.d("rm", "-f", "t-api1"));
    const gone = await t.d("inspect", "t-api1");
    assertEquals(gone.code, 1);
    assertStringIncludes(gone.stderr, "No such");

    // logs -f follows until the container ends; run without --rm waits for its next exit.
    await ok(t.d("run", "-d", "--name", "t-api-f", ref, "sh", "-c", "echo a; sleep 1; echo b"));
    assertEquals(await ok(t.d("logs", "-f", "t-api-f")), "a\nb\n");
    const kept = await t.d("run", "--name", "t-api-k", ref, "sh", "-c", "exit 7");
    assertEquals(kept.code, 7, kept.stderr);
    const status = await ok(t.d("ps", "-a", "--filter", "exited=7", "--format", "{{.Names}}"));
    assertEquals(status.trim(), "t-api-k");
    await ok(t.d("rm", "t-api-f", "t-api-k"));

    // tag, image inspect, rmi.
    await ok(t.d("tag", ref, "t-api/copy:v1"));
    const tags = await ok(t.d("image", "inspect", "--format", "{{json .RepoTags}}", ref));
    assertStringIncludes(tags, "t-api/copy:v1");
    const rmi = await ok(t.d("rmi", "t-api/copy:v1"));
    assertStringIncludes(rmi, "Untagged: t-api/copy:v1");
    // push to the test registry, then pull it back by that name.
    const pushed = `${t.fx.registry.host}/t-api/pushed-${crypto.randomUUID().slice(0, 8)}:v1`;
    await ok(t.d("tag", ref, pushed));
    const push = await ok(t.d("push", pushed));
    assertMatch(push, /v1: digest: sha256:[0-9a-f]{64} size: \d+/);
    await ok(t.d("rmi", pushed));
    assertStringIncludes(await ok(t.d("pull", pushed)), "Digest: sha256:");
    await ok(t.d("rmi", pushed));

    const missing = await t.d("rmi", "t-api/none:v1");
    assertEquals(missing.code, 1);
    assertStringIncludes(missing.stderr, "No such image");
  } finally {
    await t.cleanup();
  }
}

rootTest(
  "api: hostile requests get docker's error JSON and the service keeps serving",
  async () => {
    const t = await setup();
    try {
      const body = "{not json";
      const bad = await rawRequest(
        t.socket,
        `POST /v1.41/containers/create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
      );
      assertMatch(bad, /^HTTP\/1\.1 400 /);
      assertMatch(bad, /\{"message":"invalid JSON: [^"]+"\}/);
      const wrongType = JSON.stringify({ Image: "x", Cmd: 5 });
      const typed = await rawRequest(
        t.socket,
        `POST /containers/create HTTP/1.1\r\nHost: x\r\nContent-Length: ${wrongType.length}\r\n\r\n${wrongType}`,
      );
      assertMatch(typed, /^HTTP\/1\.1 400 /);
      assertStringIncludes(typed, "Cmd: expected a list of strings");
      const huge = await rawRequest(
        t.socket,
        `POST /containers/create HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n`,
      );
      assertMatch(huge, /^HTTP\/1\.1 413 /);
      const garbage = await rawRequest(t.socket, "\x00\x01 nonsense\r\n\r\n");
      assertMatch(garbage, /^HTTP\/1\.1 400 /);
      const noContainer = await rawRequest(
        t.socket,
        "GET /containers/t-nothing/json HTTP/1.1\r\nHost: x\r\n\r\n",
      );
      assertMatch(noContainer, /^HTTP\/1\.1 404 /);
      assertStringIncludes(noContainer, '{"message":"No such container: t-nothing"}');
      const swarm = await rawRequest(t.socket, "GET /v1.41/services HTTP/1.1\r\nHost: x\r\n\r\n");
      assertMatch(swarm, /^HTTP\/1\.1 503 /);
      assertStringIncludes(swarm, "This node is not a swarm manager.");
      const plugin = await rawRequest(
        t.socket,
        "GET /plugins/foo/json HTTP/1.1\r\nHost: x\r\n\r\n",
      );
      assertMatch(plugin, /^HTTP\/1\.1 404 /);
      assertStringIncludes(plugin, '{"message":"plugin \\"foo\\" not found"}');
      const tooNew = await rawRequest(t.socket, "GET /v1.99/version HTTP/1.1\r\nHost: x\r\n\r\n");
      assertMatch(tooNew, /^HTTP\/1\.1 400 /);
      // Still serving, with and without a version prefix.
      const ping = await rawRequest(t.socket, "GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n");
      assertMatch(ping, /^HTTP\/1\.1 200 [^]*\r\n\r\nOK$/);
      assertMatch(ping, /Api-Version: 1\.41\r\n/i);
      const v = await ok(t.d("version", "--format", "{{.Server.APIVersion}}"));
      assertEquals(v.trim(), "1.41");
    } finally {
      await t.cleanup();
    }
  },
);

rootTest("api: --timeout ends an idle service and removes its socket", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tsbox-api-" });
  const { root, cleanup } = await tempRoot();
  try {
    const socket = `${dir}/idle.sock`;
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--quiet",
        MAIN,
        "--root",
        root,
        "system",
        "service",
        "--socket",
        socket,
        "--timeout",
        "1",
      ],
      env: { DENO_NO_UPDATE_CHECK: "1" },
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const status = await child.output();
    assertEquals(status.code, 0, new TextDecoder().decode(status.stderr));
    assertEquals(await Deno.lstat(socket).then(() => "there", () => "gone"), "gone");
  } finally {
    await cleanup();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

rootTest(
  "api: kill -9 of the service loses no container; a new service lists them with their state",
  async () => {
    const t = await setup();
    try {
      const ref = t.fx.refs.busybox;
      await ok(t.d("pull", "-q", ref));
      for (const name of ["t-api-k1", "t-api-k2"]) {
        await ok(t.d("run", "-d", "--name", name, ref, "sleep", "600"));
      }
      // The third ends while no service runs, with a code the new service must report.
      await ok(
        t.d(
          "run",
          "-d",
          "--name",
          "t-api-k3",
          ref,
          "sh",
          "-c",
          "while [ ! -f /tmp/go ]; do sleep 0.1; done; exit 3",
        ),
      );
      const pids = JSON.parse(await ok(t.d("inspect", "t-api-k1", "t-api-k2", "t-api-k3")))
        .map((c: { State: { Pid: number } }) => c.State.Pid);
      t.service.child.kill("SIGKILL");
      await t.service.child.status;
      // Without the service: the containers run on, and the CLI (another client of the same
      // store and supervisors) lets the third one end.
      for (const pid of pids) {
        const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
        assertOk(!/^\d+ \(.*\) [ZX] /.test(stat), `PID ${pid} died with the service: ${stat}`);
      }
      const go = await tsbox(["exec", "t-api-k3", "touch", "/tmp/go"], { root: t.root });
      assertEquals(go.code, 0, go.stderr);
      for (let i = 0; i < 100; i++) {
        const st = await tsbox(["inspect", "--format", "{{.State.Status}}", "t-api-k3"], {
          root: t.root,
        });
        if (st.stdout.trim() === "exited") break;
        await new Promise((r) => setTimeout(r, 100));
      }
      await t.restart();
      const ps = await ok(t.d("ps", "-a", "--format", "{{.Names}} {{.State}} {{.Status}}"));
      const rows = ps.trim().split("\n").sort();
      assertEquals(rows.length, 3, ps);
      assertMatch(rows[0], /^t-api-k1 running Up /);
      assertMatch(rows[1], /^t-api-k2 running Up /);
      assertMatch(rows[2], /^t-api-k3 exited Exited \(3\) /);
      const code = await ok(t.d("inspect", "--format", "{{.State.ExitCode}}", "t-api-k3"));
      assertEquals(code.trim(), "3");
      // The new service drives them as the old one did.
      await ok(t.d("stop", "-t", "0", "t-api-k1"));
      await ok(t.d("rm", "-f", "t-api-k1", "t-api-k2", "t-api-k3"));
      assertEquals((await ok(t.d("ps", "-aq"))).trim(), "");
    } finally {
      await t.cleanup();
    }
  },
);

rootTest("api: exec (exit codes, stderr, stdin, env, workdir, -d) and run -i", async () => {
  const t = await setup();
  try {
    const ref = t.fx.refs.busybox;
    await ok(t.d("pull", "-q", ref));
    await ok(t.d("run", "-d", "--name", "t-api-x", ref, "sleep", "600"));
    assertEquals(await ok(t.d("exec", "t-api-x", "echo", "inside")), "inside\n");
    const four = await t.d("exec", "t-api-x", "sh", "-c", "echo e >&2; exit 4");
    assertEquals([four.code, four.stdout, four.stderr], [4, "", "e\n"]);
    const missing = await t.d("exec", "t-api-x", "nosuchcmd");
    assertEquals(missing.code, 127);
    assertStringIncludes(missing.stderr, "nosuchcmd");
    const envDir = await ok(
      t.d("exec", "-e", "A=b", "-w", "/tmp", "t-api-x", "sh", "-c", "pwd; echo $A"),
    );
    assertEquals(envDir, "/tmp\nb\n");
    assertEquals(await ok(t.withInput("piped\n", "exec", "-i", "t-api-x", "cat")), "piped\n");
    await ok(t.d("exec", "-d", "t-api-x", "sh", "-c", "echo detached > /tmp/d"));
    for (let i = 0; i < 50; i++) {
      if ((await t.d("exec", "t-api-x", "cat", "/tmp/d")).stdout === "detached\n") break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assertEquals(await ok(t.d("exec", "t-api-x", "cat", "/tmp/d")), "detached\n");
    await ok(t.d("rm", "-f", "t-api-x"));
    const exited = await t.d("exec", "t-api-x", "true");
    assertEquals(exited.code, 1);

    // Input through the attach socket, closed at its end (docker's StdinOnce).
    const piped = await ok(
      t.withInput("in\n", "run", "-i", "--rm", ref, "sh", "-c", "cat; echo done"),
    );
    assertEquals(piped, "in\ndone\n");
    // A command that cannot start: 127, and --rm leaves nothing behind.
    const bad = await t.d("run", "--rm", "--name", "t-api-bad", ref, "nosuchcmd");
    assertEquals(bad.code, 127, bad.stderr);
    assertEquals((await ok(t.d("ps", "-aq"))).trim(), "");
  } finally {
    await t.cleanup();
  }
});

rootTest(
  "api: attach to a running container, pause, unpause, diff, export, stats, history, prune",
  async () => {
    const t = await setup();
    try {
      const ref = t.fx.refs.busybox;
      await ok(t.d("pull", "-q", ref));
      await ok(
        t.d("run", "-d", "--name", "t-api-a", ref, "sh", "-c", "sleep 2; echo late; exit 6"),
      );
      const attached = await t.d("attach", "t-api-a");
      assertEquals([attached.code, attached.stdout], [6, "late\n"], attached.stderr);

      await ok(t.d("run", "-d", "--name", "t-api-p", ref, "sleep", "600"));
      await ok(t.d("pause", "t-api-p"));
      const paused = await ok(t.d("inspect", "--format", "{{.State.Status}}", "t-api-p"));
      assertEquals(paused.trim(), "paused");
      const again = await t.d("pause", "t-api-p");
      assertEquals(again.code, 1);
      assertStringIncludes(again.stderr, "already paused");
      await ok(t.d("unpause", "t-api-p"));
      await ok(t.d("stop", "-t", "0", "t-api-p"));

      // diff, export and a stats sample of a running container.
      await ok(
        t.d(
          "run",
          "-d",
          "--name",
          "t-api-fs",
          ref,
          "sh",
          "-c",
          "echo x > /tmp/new; exec sleep 600",
        ),
      );
      for (let i = 0; i < 100 && !(await ok(t.d("diff", "t-api-fs"))).includes("A /tmp/new"); i++) {
        await new Promise((r) => setTimeout(r, 100));
      }
      assertStringIncludes(await ok(t.d("diff", "t-api-fs")), "A /tmp/new");
      const tar = await ok(t.d("export", "-o", `${t.socket}.tar`, "t-api-fs"));
      assertEquals(tar, "");
      const listed = await new Deno.Command("tar", { args: ["tf", `${t.socket}.tar`] }).output();
      assertStringIncludes(new TextDecoder().decode(listed.stdout), "tmp/new");
      const stats = await ok(
        t.d("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", "t-api-fs"),
      );
      assertEquals(stats.trim(), "t-api-fs 1");
      await ok(t.d("rm", "-f", "t-api-fs"));

      const history = await ok(t.d("history", "--format", "{{.CreatedBy}}", ref));
      assertStringIncludes(history, "busybox");
      const pruned = await ok(t.d("container", "prune", "-f"));
      assertStringIncludes(pruned, "Deleted Containers:");
      assertEquals((await ok(t.d("ps", "-aq"))).trim(), "");
    } finally {
      await t.cleanup();
    }
  },
);

rootTest("api: run -d -p 127.0.0.1:PORT:80 nginx serves the marker; port, ps show it", async () => {
  const t = await setup();
  try {
    await ok(t.d("pull", "-q", t.fx.refs.nginx));
    // A port free right now on 127.0.0.1 (the test's traffic stays on loopback).
    const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (probe.addr as Deno.NetAddr).port;
    probe.close();
    await ok(
      t.d("run", "-d", "--name", "t-api-web", "-p", `127.0.0.1:${port}:80`, t.fx.refs.nginx),
    );
    let body = "";
    for (let i = 0; i < 100 && !body.includes(NGINX_MARKER); i++) {
      body = await fetch(`http://127.0.0.1:${port}/`).then((r) => r.text(), () => "");
      if (!body.includes(NGINX_MARKER)) await new Promise((r) => setTimeout(r, 100));
    }
    assertStringIncludes(body, NGINX_MARKER);
    assertEquals((await ok(t.d("port", "t-api-web"))).trim(), `80/tcp -> 127.0.0.1:${port}`);
    const ps = await ok(t.d("ps", "--format", "{{.Ports}}"));
    assertEquals(ps.trim(), `127.0.0.1:${port}->80/tcp`);
    await ok(t.d("rm", "-f", "t-api-web"));
  } finally {
    await t.cleanup();
  }
});

rootTest("api: volume create, ls, inspect, use, rm (refused in use), prune", async () => {
  const t = await setup();
  try {
    const ref = t.fx.refs.busybox;
    await ok(t.d("pull", "-q", ref));
    await ok(t.d("volume", "create", "--label", "a=b", "t-api-vol"));
    assertEquals((await ok(t.d("volume", "ls", "-q", "-f", "label=a=b"))).trim(), "t-api-vol");
    const inspected = JSON.parse(await ok(t.d("volume", "inspect", "t-api-vol")));
    assertEquals([inspected[0].Name, inspected[0].Labels], ["t-api-vol", { a: "b" }]);
    await ok(t.d("run", "--rm", "-v", "t-api-vol:/data", ref, "sh", "-c", "echo kept > /data/f"));
    assertEquals(
      await ok(t.d("run", "--rm", "-v", "t-api-vol:/data", ref, "cat", "/data/f")),
      "kept\n",
    );
    await ok(t.d("run", "-d", "--name", "t-api-v", "-v", "t-api-vol:/data", ref, "sleep", "600"));
    const inUse = await t.d("volume", "rm", "t-api-vol");
    assertEquals(inUse.code, 1);
    assertStringIncludes(inUse.stderr, "in use");
    await ok(t.d("rm", "-f", "t-api-v"));
    assertStringIncludes(await ok(t.d("volume", "prune", "-f")), "t-api-vol");
    assertEquals((await ok(t.d("volume", "ls", "-q"))).trim(), "");
  } finally {
    await t.cleanup();
  }
});

rootTest(
  "api: 50 concurrent clients list and inspect while containers start and stop",
  async () => {
    const t = await setup();
    try {
      const ref = t.fx.refs.busybox;
      await ok(t.d("pull", "-q", ref));
      await ok(t.d("run", "-d", "--name", "t-api-stay", ref, "sleep", "600"));
      let churned = false;
      const churn = (async () => {
        for (let i = 0; i < 3; i++) {
          await ok(t.d("run", "-d", "--name", `t-api-churn${i}`, ref, "sleep", "600"));
          await ok(t.d("stop", "-t", "0", `t-api-churn${i}`));
          await ok(t.d("rm", `t-api-churn${i}`));
        }
      })().finally(() => churned = true);
      const failures: string[] = [];
      let requests = 0;
      // Each client asks until the churn is over (10 requests at least), pausing between asks.
      const client = async () => {
        for (let i = 0; i < 10 || !churned; i++) {
          const path = i % 2 === 0 ? "/v1.41/containers/json?all=1" : "/containers/t-api-stay/json";
          const res = await rawRequest(t.socket, `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
          requests++;
          const status = /^HTTP\/1\.1 (\d+)/.exec(res)?.[1];
          const body = res.slice(res.indexOf("\r\n\r\n") + 4);
          if (status !== "200") failures.push(`${path}: ${res.slice(0, 200)}`);
          else if (i % 2 === 0) {
            const names = (JSON.parse(body) as { Names: string[] }[]).map((c) => c.Names[0]);
            if (!names.includes("/t-api-stay")) failures.push(`${path}: t-api-stay missing`);
          } else if (JSON.parse(body).State.Status !== "running") failures.push(`${path}: ${body}`);
          await new Promise((r) => setTimeout(r, 100));
        }
      };
      await Promise.all([churn, ...Array.from({ length: 50 }, client)]);
      assertOk(requests >= 500);
      assertEquals(failures, []);
      await ok(t.d("rm", "-f", "t-api-stay"));
    } finally {
      await t.cleanup();
    }
  },
);

rootTest(
  "api: run -it in a real terminal, ctrl-p ctrl-q, exec -it, attach, exit code",
  async () => {
    if (!hasTmux) throw new Error("tmux is needed (tests/install_deps.sh installs it)");
    const t = await setup();
    const env = `DOCKER_HOST=unix://${t.socket} DOCKER_CONFIG=${t.socket}.cfg`;
    const term = (cmd: string) =>
      Tmux.start(`env ${env} ${DOCKER} ${cmd}; echo code=$?; sleep 600`);
    const ref = t.fx.refs.busybox;
    const panes: Tmux[] = [];
    try {
      await ok(t.d("pull", "-q", ref));
      const run = await term(`run -it --name t-api-it ${ref} sh`);
      panes.push(run);
      await run.waitFor(/^\/ #/m);
      await run.send("echo $((6*7))", "Enter");
      await run.waitFor(/^42$/m);
      await run.send("C-p", "C-q");
      await run.waitFor(/code=0/);
      const state = await ok(
        t.d("inspect", "--format", "{{.State.Status}} {{.Config.Tty}}", "t-api-it"),
      );
      assertEquals(state.trim(), "running true");

      const exec = await term(`exec -it t-api-it sh -c 'tty; exit 3'`);
      panes.push(exec);
      await exec.waitFor(/\/dev\/pts\/\d+[^]*code=3/);

      const attach = await term("attach t-api-it");
      panes.push(attach);
      await attach.send("exit 5", "Enter");
      await attach.waitFor(/code=5/);
      const exited = await ok(t.d("inspect", "--format", "{{.State.ExitCode}}", "t-api-it"));
      assertEquals(exited.trim(), "5");
      await ok(t.d("rm", "t-api-it"));
    } finally {
      for (const p of panes) await p.kill();
      await t.cleanup();
    }
  },
);

rootTest(
  "api: login checks credentials (/auth); pull uses the client's X-Registry-Auth",
  async () => {
    const t = await setup();
    try {
      const reg = await authRegistry();
      const { host, username, password } = reg.registry;
      const denied = await t.withInput(
        "wrong\n",
        "login",
        "-u",
        username!,
        "--password-stdin",
        host,
      );
      assertEquals(denied.code, 1, denied.stdout);
      const anonymous = await t.d("pull", reg.refs.busybox);
      assertEquals(anonymous.code, 1, anonymous.stdout);
      const login = await t.withInput(
        `${password}\n`,
        "login",
        "-u",
        username!,
        "--password-stdin",
        host,
      );
      assertEquals(login.code, 0, login.stderr);
      assertStringIncludes(login.stdout, "Login Succeeded");
      // The service stored nothing: the client's config sends the credentials with the pull.
      assertStringIncludes(await ok(t.d("pull", reg.refs.busybox)), "Digest: sha256:");
    } finally {
      await t.cleanup();
    }
  },
);

rootTest("api: events reports containers' create, start, die, destroy as they happen", async () => {
  const t = await setup();
  const events = new Deno.Command(DOCKER!, {
    args: [
      "events",
      "--filter",
      "type=container",
      "--format",
      "{{.Action}} {{.Actor.Attributes.name}} {{.Actor.Attributes.exitCode}}",
    ],
    env: { DOCKER_HOST: `unix://${t.socket}`, DOCKER_CONFIG: `${t.socket}.cfg` },
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  // A missed event must fail the test, not hang it: the stream is ended after a minute.
  const stopEvents = () => {
    try {
      events.kill();
    } catch { /* ended */ }
  };
  const guard = setTimeout(stopEvents, 60_000);
  const reader = events.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  /** Waits for an event line starting with `line`. */
  const next = async (line: string) => {
    while (!seen.split("\n").some((l) => l.startsWith(line))) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`events ended before ${JSON.stringify(line)}:\n${seen}`);
      seen += value;
    }
  };
  try {
    const ref = t.fx.refs.busybox;
    await ok(t.d("pull", "-q", ref));
    await ok(
      t.d(
        "run",
        "-d",
        "--name",
        "t-api-ev",
        ref,
        "sh",
        "-c",
        "trap 'exit 4' TERM; sleep 600 & wait",
      ),
    );
    await next("create t-api-ev");
    await next("start t-api-ev");
    await ok(t.d("stop", "t-api-ev"));
    await next("die t-api-ev 4");
    await ok(t.d("rm", "t-api-ev"));
    await next("destroy t-api-ev");
  } finally {
    clearTimeout(guard);
    stopEvents();
    await reader.cancel().catch(() => {});
    await events.status;
    await t.cleanup();
  }
});

rootTest("api: --group gives the socket to a group (0660 still)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tsbox-api-" });
  const { root, cleanup } = await tempRoot();
  const service = await startService(root, `${dir}/g.sock`, ["--group", "100"]);
  try {
    const st = Deno.statSync(`${dir}/g.sock`);
    assertEquals([st.mode! & 0o777, st.uid, st.gid], [0o660, 0, 100]);
  } finally {
    await service.stop();
    await cleanup();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

rootTest(
  "api: cp both ways (files, directories, symlinks), stopped containers, hostile tars",
  async () => {
    const t = await setup();
    const dir = await Deno.makeTempDir({ prefix: "tsbox-api-cp-test-" });
    try {
      const ref = t.fx.refs.busybox;
      await ok(t.d("pull", "-q", ref));
      await ok(t.d("run", "-d", "--name", "t-api-cp", ref, "sleep", "600"));
      await Deno.mkdir(`${dir}/src/sub`, { recursive: true });
      await Deno.writeTextFile(`${dir}/src/sub/f.txt`, "hello\n");
      await Deno.symlink("f.txt", `${dir}/src/sub/link`);
      await Deno.writeTextFile(`${dir}/top.txt`, "top\n");
      await ok(t.d("cp", `${dir}/top.txt`, "t-api-cp:/tmp/"));
      await ok(t.d("cp", `${dir}/src`, "t-api-cp:/srv"));
      const inside = await ok(
        t.d(
          "exec",
          "t-api-cp",
          "sh",
          "-c",
          "cat /tmp/top.txt /srv/sub/link; readlink /srv/sub/link",
        ),
      );
      assertEquals(inside, "top\nhello\nf.txt\n");
      await ok(t.d("cp", "t-api-cp:/srv/sub", `${dir}/out`));
      assertEquals(await Deno.readTextFile(`${dir}/out/f.txt`), "hello\n");
      assertEquals(await Deno.readLink(`${dir}/out/link`), "f.txt");
      const missing = await t.d("cp", "t-api-cp:/nonexistent", `${dir}/x`);
      assertEquals(missing.code, 1);
      assertStringIncludes(missing.stderr, "No such");
      await ok(t.d("stop", "-t", "0", "t-api-cp"));
      await ok(t.d("cp", "t-api-cp:/tmp/top.txt", `${dir}/again.txt`));
      assertEquals(await Deno.readTextFile(`${dir}/again.txt`), "top\n");

      // A tar whose names leave the extraction point is refused, and nothing lands outside.
      const made = await new Deno.Command("tar", {
        args: ["-C", dir, "-P", "--transform", "s,^,../../,", "-cf", `${dir}/evil.tar`, "top.txt"],
      }).output();
      assertEquals(made.code, 0, new TextDecoder().decode(made.stderr));
      const put = await new Deno.Command("curl", {
        args: [
          "-s",
          "-o",
          "-",
          "-w",
          "%{http_code}",
          "--unix-socket",
          t.socket,
          "-X",
          "PUT",
          "-T",
          `${dir}/evil.tar`,
          "http://x/containers/t-api-cp/archive?path=/tmp",
        ],
      }).output();
      const answer = new TextDecoder().decode(put.stdout);
      assertMatch(answer, /leaves the archive.*400$/s);
      await ok(t.d("rm", "t-api-cp"));
    } finally {
      await t.cleanup();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
);

rootTest("api: save and load (streamed request body), refused archives", async () => {
  const t = await setup();
  const dir = await Deno.makeTempDir({ prefix: "tsbox-api-save-" });
  try {
    const ref = t.fx.refs.busybox;
    await ok(t.d("pull", "-q", ref));
    await ok(t.d("save", "-o", `${dir}/img.tar`, ref));
    await ok(t.d("rmi", ref));
    assertEquals(await ok(t.d("load", "-i", `${dir}/img.tar`)), `Loaded image: ${ref}\n`);
    const images = await ok(t.d("images", "--format", "{{.Repository}}:{{.Tag}}"));
    assertEquals(images.trim(), ref);
    const missing = await t.d("save", "-o", `${dir}/x.tar`, "t-api/nosuch:v1");
    assertEquals(missing.code, 1);
    assertStringIncludes(missing.stderr, "No such image");
    const garbage = await t.withInput("garbage\n", "load");
    assertEquals(garbage.code, 1);
    assertStringIncludes(garbage.stderr, "archive");
    assertEquals((await ok(t.d("images", "-q"))).trim().split("\n").length, 1);
  } finally {
    await t.cleanup();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

rootTest(
  "api: build -t from a context (ARG, COPY, RUN), run the result, a failing RUN",
  async () => {
    const t = await setup();
    const dir = await Deno.makeTempDir({ prefix: "tsbox-api-build-" });
    try {
      const ref = t.fx.refs.busybox;
      await ok(t.d("pull", "-q", ref));
      await Deno.writeTextFile(
        `${dir}/Dockerfile`,
        'ARG BASE\nFROM ${BASE}\nCOPY hello.txt /hello.txt\nRUN cat /hello.txt && echo built > /built\nCMD ["cat", "/built"]\n',
      );
      await Deno.writeTextFile(`${dir}/hello.txt`, "hello from the context\n");
      const built = await ok(
        t.d("build", "--build-arg", `BASE=${ref}`, "-t", "t-api/built:1", dir),
      );
      assertStringIncludes(built, "hello from the context");
      assertStringIncludes(built, "Successfully tagged t-api/built:1");
      assertEquals(await ok(t.d("run", "--rm", "t-api/built:1")), "built\n");
      await Deno.writeTextFile(`${dir}/Dockerfile`, `FROM ${ref}\nRUN exit 3\n`);
      const failed = await t.d("build", dir);
      assertEquals(failed.code, 1);
      assertStringIncludes(failed.stdout + failed.stderr, "returned a non-zero code: 3");
    } finally {
      await t.cleanup();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
);

rootTest(
  "api: update changes limits and the restart policy; refused limits are docker's 400",
  async () => {
    const t = await setup();
    try {
      const ref = t.fx.refs.busybox;
      await ok(t.d("pull", "-q", ref));
      await ok(t.d("run", "-d", "--name", "t-api-u", ref, "sleep", "600"));
      await ok(
        t.d("update", "--memory", "64m", "--cpus", "0.5", "--restart", "on-failure:2", "t-api-u"),
      );
      const fmt = "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} " +
        "{{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}";
      assertEquals(
        (await ok(t.d("inspect", "--format", fmt, "t-api-u"))).trim(),
        "67108864 500000000 on-failure:2",
      );
      const tiny = await t.d("update", "--memory", "1k", "t-api-u");
      assertEquals(tiny.code, 1);
      assertStringIncludes(tiny.stderr, "Minimum memory limit");
      await ok(t.d("rm", "-f", "t-api-u"));
    } finally {
      await t.cleanup();
    }
  },
);
