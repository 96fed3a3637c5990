/**
 * Container lifecycle against real containers (root): detached runs, ps, logs, stop/start,
 * rm -f, concurrency, crashed supervisors, restart policies. Images come from the fixture
 * registry on 127.0.0.1.
 */
import { fixtureRegistry, NGINX_MARKER } from "./fixtures/images.ts";
import { assertEquals, assertMatch, assertOk, assertStringIncludes } from "./assert.ts";
import { tempRoot, tsbox } from "./cli.ts";
import { diffTrees, scanTree } from "./tree_compare.ts";

const isRoot = Deno.uid() === 0;

function rootTest(name: string, fn: () => Promise<void>) {
  Deno.test({ name, ignore: !isRoot, sanitizeResources: false, sanitizeOps: false, fn });
}

async function setup() {
  const fx = await fixtureRegistry();
  const { root, cleanup } = await tempRoot();
  const t = (args: string[]) => tsbox(args, { root });
  for (const name of ["busybox", "nginx"] as const) {
    const r = await t(["pull", "-q", fx.refs[name]]);
    assertEquals(r.code, 0, r.stderr);
  }
  return { root, t, cleanup, refs: fx.refs };
}

async function ok(p: Promise<{ code: number; stdout: string; stderr: string }>) {
  const r = await p;
  assertEquals(r.code, 0, `${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

function mounts(): string {
  return Deno.readTextFileSync("/proc/self/mountinfo");
}

async function cgroupDirs(id: string): Promise<string[]> {
  const found: string[] = [];
  for await (const e of Deno.readDir("/sys/fs/cgroup")) {
    for (const dir of [`/sys/fs/cgroup/${e.name}/tsbox/${id}`]) {
      try {
        await Deno.stat(dir);
        found.push(dir);
      } catch { /* absent */ }
    }
  }
  return found;
}

function psRows(out: string): string[][] {
  return out.trim().split("\n").slice(1).map((l) => l.split(/\s{3,}/));
}

async function leftovers(root: string, id: string): Promise<string[]> {
  const problems: string[] = [];
  if (mounts().includes(id)) problems.push("mount");
  problems.push(...await cgroupDirs(id));
  try {
    await Deno.stat(`${root}/containers/${id}`);
    problems.push("dir");
  } catch { /* gone */ }
  return problems;
}

async function until(what: string, cond: () => Promise<boolean>, ms = 20_000) {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

rootTest(
  "run -d nginx: ps Up, logs, stop, ps -a Exited, start keeps files, rm -f cleans",
  async () => {
    const { root, t, cleanup, refs } = await setup();
    try {
      const id = (await ok(t(["run", "-d", "--name", "web", refs.nginx]))).trim();
      assertMatch(id, /^[0-9a-f]{64}$/);
      const ps = psRows(await ok(t(["ps"])));
      assertEquals(ps.length, 1);
      assertEquals(ps[0][0], id.slice(0, 12));
      assertMatch(ps[0][4], /^Up /);
      assertEquals(ps[0].at(-1), "web");
      const inspect = JSON.parse(await ok(t(["container", "inspect", "web"])))[0];
      const pid = inspect.State.Pid as number;
      assertOk(pid > 0);
      assertEquals(Deno.readTextFileSync(`/proc/${pid}/comm`).trim(), "nginx");
      // Something written into the container before the stop.
      await ok(t(["cp", "/etc/hostname", "web:/marker"]));
      // A request from inside the container's network namespace; nginx logs it on stdout
      // (access_log /dev/stdout) and its startup notices on stderr (error_log notice).
      const page = await ok(t(["exec", "web", "wget", "-qO-", "http://127.0.0.1/"]));
      assertEquals(page.trim(), NGINX_MARKER);
      let logs = { stdout: "", stderr: "" };
      await until("nginx's access log line", async () => {
        logs = await t(["logs", "web"]);
        return logs.stdout.includes('"GET / HTTP/1.1" 200');
      });
      assertMatch(
        logs.stdout,
        /^127\.0\.0\.1 - - \[[^\]]+\] "GET \/ HTTP\/1\.1" 200 \d+ "-" "Wget"/m,
      );
      assertStringIncludes(logs.stderr, "[notice]");
      assertStringIncludes(logs.stderr, "start worker process");
      assertOk(!logs.stdout.includes("[notice]"), "stderr lines stay on stderr");
      await ok(t(["stop", "-t", "5", "web"]));
      assertOk(!Deno.readDirSync("/proc").some((e) => e.name === String(pid)), "PID 1 is gone");
      const exited = psRows(await ok(t(["ps", "-a"])));
      assertMatch(exited[0][4], /^Exited \(\d+\) /);
      assertEquals(psRows(await ok(t(["ps"]))).length, 0);
      await ok(t(["start", "web"]));
      const again = JSON.parse(await ok(t(["container", "inspect", "web"])))[0];
      assertEquals(again.State.Running, true);
      assertOk(again.State.Pid !== pid);
      const out = await Deno.makeTempDir();
      await ok(t(["cp", "web:/marker", `${out}/marker`]));
      assertEquals(Deno.readTextFileSync(`${out}/marker`), Deno.readTextFileSync("/etc/hostname"));
      await Deno.remove(out, { recursive: true });
      await ok(t(["rm", "-f", "web"]));
      assertEquals(await leftovers(root, id), []);
      assertOk(!Deno.readDirSync("/proc").some((e) => e.name === String(again.State.Pid)));
      assertEquals(psRows(await ok(t(["ps", "-a"]))).length, 0);
    } finally {
      await cleanup();
    }
  },
);

rootTest(
  "30 concurrent run -d get unique names and ids; 30 concurrent rm -f leave nothing",
  async () => {
    const { root, t, cleanup, refs } = await setup();
    try {
      const ids = await Promise.all(
        Array.from({ length: 30 }, () => ok(t(["run", "-d", refs.busybox, "sleep", "300"]))),
      ).then((outs) => outs.map((o) => o.trim()));
      assertEquals(new Set(ids).size, 30);
      const rows = psRows(await ok(t(["ps", "--no-trunc"])));
      assertEquals(rows.length, 30);
      assertEquals(new Set(rows.map((r) => r[0])), new Set(ids));
      assertEquals(new Set(rows.map((r) => r.at(-1))).size, 30);
      for (const r of rows) assertMatch(r.at(-1)!, /^[a-z]+_[a-z]+\d?$/);
      await Promise.all(ids.map((id) => ok(t(["rm", "-f", id]))));
      assertEquals(psRows(await ok(t(["ps", "-a"]))).length, 0);
      for (const id of ids) assertEquals(await leftovers(root, id), [], id);
    } finally {
      await cleanup();
    }
  },
);

rootTest(
  "kill -9 of a supervisor and of PID 1: ps -a tells the truth, rm -f succeeds",
  async () => {
    const { root, t, cleanup, refs } = await setup();
    try {
      await ok(t(["run", "-d", "--name", "t-a", refs.busybox, "sleep", "300"]));
      await ok(t(["run", "-d", "--name", "t-b", refs.busybox, "sleep", "300"]));
      const db = async (name: string) => JSON.parse(await ok(t(["container", "inspect", name])))[0];
      const a = await db("t-a");
      // The supervisor is PID 1's parent.
      const stat = Deno.readTextFileSync(`/proc/${a.State.Pid}/stat`);
      const supervisor = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      assertOk(supervisor > 1);
      Deno.kill(supervisor, "SIGKILL");
      await until("PID 1 of a to die with its supervisor", () =>
        Promise.resolve(
          !Deno.readDirSync("/proc").some((e) => e.name === String(a.State.Pid)),
        ));
      const b = await db("t-b");
      Deno.kill(b.State.Pid, "SIGKILL");
      await until(
        "b to be recorded as exited",
        async () => (await db("t-b")).State.Status === "exited",
      );
      assertEquals((await db("t-b")).State.ExitCode, 137);
      const rows = psRows(await ok(t(["ps", "-a"])));
      const byName = new Map(rows.map((r) => [r.at(-1), r[4]]));
      assertMatch(byName.get("t-a")!, /^Exited \(137\)/);
      assertMatch(byName.get("t-b")!, /^Exited \(137\)/);
      assertEquals(psRows(await ok(t(["ps"]))).length, 0);
      await ok(t(["rm", "-f", "t-a", "t-b"]));
      assertEquals(await leftovers(root, a.Id), []);
      assertEquals(await leftovers(root, b.Id), []);
    } finally {
      await cleanup();
    }
  },
);

rootTest("logs -f follows a container printing every 100 ms and ends when it exits", async () => {
  const { t, cleanup, refs } = await setup();
  try {
    await ok(t([
      "run",
      "-d",
      "--name",
      "ticker",
      refs.busybox,
      "sh",
      "-c",
      "i=0; while [ $i -lt 20 ]; do echo line$i; i=$((i+1)); usleep 100000; done; echo bye >&2",
    ]));
    const r = await t(["logs", "-f", "ticker"]);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(r.stdout.trim().split("\n"), Array.from({ length: 20 }, (_, i) => `line${i}`));
    assertEquals(r.stderr.trim(), "bye");
    const tail = await ok(t(["logs", "--tail", "2", "-t", "ticker"]));
    const lines = tail.trim().split("\n");
    assertEquals(lines.length, 1, "the last 2 entries: one on stdout, one on stderr");
    assertMatch(lines[0], /^\d{4}-\d\d-\d\dT[\d:.]+Z line19$/);
    await ok(t(["rm", "ticker"]));
  } finally {
    await cleanup();
  }
});

rootTest("--restart on-failure:3 runs a failing command 4 times in all", async () => {
  const { t, cleanup, refs } = await setup();
  try {
    await ok(
      t([
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:3",
        refs.busybox,
        "sh",
        "-c",
        "echo run; exit 1",
      ]),
    );
    const code = await ok(t(["wait", "flaky"]));
    // wait returns when a run ends; the policy may still be restarting: wait for the end.
    assertMatch(code.trim(), /^\d+$/);
    await until("the last restart", async () => {
      const c = JSON.parse(await ok(t(["container", "inspect", "flaky"])))[0];
      return c.State.Status === "exited" && c.RestartCount === 3;
    });
    const logs = await ok(t(["logs", "flaky"]));
    assertEquals(logs.trim().split("\n"), ["run", "run", "run", "run"]);
    const c = JSON.parse(await ok(t(["container", "inspect", "flaky"])))[0];
    assertEquals(c.State.ExitCode, 1);
    assertStringIncludes(JSON.stringify(c.HostConfig.RestartPolicy), "on-failure");
    await ok(t(["rm", "flaky"]));
  } finally {
    await cleanup();
  }
});

async function sh(cmd: string, ...args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const dec = new TextDecoder();
  if (!out.success) throw new Error(`${cmd} ${args.join(" ")}: ${dec.decode(out.stderr)}`);
  return dec.decode(out.stdout);
}

/** What the runtime adds to every container (mount targets), as docker's export has them too. */
const RUNTIME_PATHS = ["proc", "sys", "dev", "etc/hostname", "etc/hosts", "etc/resolv.conf"];

rootTest(
  "export of a multi-layer image's container, unpacked by GNU tar, equals umoci's unpack",
  async () => {
    const fx = await fixtureRegistry();
    const { root, cleanup } = await tempRoot();
    const t = (args: string[]) => tsbox(args, { root });
    const work = await Deno.makeTempDir({ prefix: "tsbox-export-" });
    try {
      await ok(t(["pull", "-q", fx.refs.layered]));
      await ok(t(["run", "--name", "ex", fx.refs.layered, "true"]));
      await ok(t(["export", "-o", `${work}/ex.tar`, "ex"]));
      await Deno.mkdir(`${work}/tar`);
      await sh(
        "tar",
        "-xpf",
        `${work}/ex.tar`,
        "--xattrs",
        "--xattrs-include=*",
        "--numeric-owner",
        "-C",
        `${work}/tar`,
      );
      await sh("umoci", "unpack", "--image", fx.layouts.layered.image, `${work}/bundle`);
      const ignore = (p: string) => RUNTIME_PATHS.includes(p);
      const xattrs = (name: string) => name.startsWith("user.");
      const diffs = diffTrees(
        await scanTree(`${work}/tar`, { xattrs, ignore }),
        await scanTree(`${work}/bundle/rootfs`, { xattrs, ignore }),
        ["export", "umoci"],
      );
      assertEquals(diffs, []);
      // Not vacuous: content of every layer, the deletions absent, the link kept as a link.
      const tree = await scanTree(`${work}/tar`, { xattrs });
      for (const p of ["opq/new.txt", "data/layer3.txt", "data/suid", "bin/sh", "data/xattr"]) {
        assertOk(tree.has(p), p);
      }
      for (const gone of ["data/gone.txt", "data/gonedir", "opq/old.txt", "bin/vi"]) {
        assertOk(!tree.has(gone), `${gone} is deleted by a whiteout`);
      }
      assertEquals(tree.get("data/suid")!.mode, 0o4755);
      assertEquals(tree.get("data/owned")!.uid, 1000);
      assertEquals(tree.get("data/xattr")!.xattrs, ["user.tsbox=31"]);
      const keep = Deno.lstatSync(`${work}/tar/data/keep.txt`);
      assertEquals(Deno.lstatSync(`${work}/tar/data/hard`).ino, keep.ino, "hardlink kept");
      // The runtime's mount targets are there, empty, as in docker's export.
      for (const p of ["proc", "sys", "dev"]) assertEquals(tree.get(p)?.type, "dir", p);
      assertEquals(tree.get("etc/hostname")?.size, 0);

      // diff against the merged image: a path a whiteout or an opaque directory removed is
      // added again, not changed.
      await ok(t([
        "run",
        "--name",
        "re",
        fx.refs.layered,
        "sh",
        "-c",
        "echo v > /bin/vi; echo o > /opq/old.txt; echo g > /data/gonedir; echo k >> /data/keep.txt",
      ]));
      const changes = (await ok(t(["diff", "re"]))).trim().split("\n");
      for (const line of ["A /bin/vi", "A /opq/old.txt", "A /data/gonedir", "C /data/keep.txt"]) {
        assertOk(changes.includes(line), `${line} in ${changes.join(", ")}`);
      }
      await ok(t(["rm", "re"]));

      // A running container: read through its own mounts, which are not its filesystem (a
      // volume's files, /proc, the bind-mounted /etc/hostname) are left out; devices and
      // fifos it made are archived as such.
      await Deno.mkdir(`${work}/vol`);
      await Deno.writeTextFile(`${work}/vol/secret`, "not part of the container\n");
      await ok(t([
        "run",
        "-d",
        "--name",
        "live",
        "-v",
        `${work}/vol:/vol`,
        fx.refs.layered,
        "sh",
        "-c",
        "mknod /data/dev c 10 300 && mkfifo /data/fifo && touch /ready && exec sleep 300",
      ]));
      await until(
        "the container's setup",
        async () => (await t(["diff", "live"])).stdout.includes("/ready"),
      );
      await ok(t(["export", "-o", `${work}/live.tar`, "live"]));
      await Deno.mkdir(`${work}/live`);
      await sh(
        "tar",
        "-xpf",
        `${work}/live.tar`,
        "--xattrs",
        "--xattrs-include=*",
        "--numeric-owner",
        "-C",
        `${work}/live`,
      );
      const added = ["data/dev", "data/fifo", "ready", "vol"];
      const ignoreLive = (p: string) => ignore(p) || added.includes(p);
      assertEquals(
        diffTrees(
          await scanTree(`${work}/live`, { xattrs, ignore: ignoreLive }),
          await scanTree(`${work}/bundle/rootfs`, { xattrs, ignore: ignoreLive }),
          ["export", "umoci"],
        ),
        [],
      );
      const live = await scanTree(`${work}/live`);
      assertEquals(live.get("data/fifo")?.type, "fifo");
      assertEquals(live.get("data/dev")?.type, "char");
      // makedev(10, 300) as glibc encodes it: minor's high bits above major's.
      assertEquals(live.get("data/dev")?.rdev, (300 & 0xff) | (10 << 8) | ((300 & ~0xff) << 12));
      assertEquals(live.get("vol")?.type, "dir");
      assertOk(!live.has("vol/secret"), "a volume's files are not exported");
      assertEquals(live.get("etc/hostname")?.size, 0, "the bind-mounted hostname is not exported");
      assertEquals([...live.keys()].filter((p) => p.startsWith("proc/")), []);
    } finally {
      await t(["rm", "-f", "live"]);
      await t(["rm", "-f", "ex"]);
      await Deno.remove(work, { recursive: true }).catch(() => {});
      await cleanup();
    }
  },
);

rootTest(
  "pause freezes every process (counter stops, ps shows Paused), unpause resumes; top; stats",
  async () => {
    const { t, cleanup, refs } = await setup();
    try {
      await ok(t([
        "run",
        "-d",
        "--name",
        "counter",
        refs.busybox,
        "sh",
        "-c",
        "i=0; while :; do i=$((i+1)); echo $i > /tmp/count; usleep 20000; done",
      ]));
      const pid = JSON.parse(await ok(t(["inspect", "counter"])))[0].State.Pid as number;
      const count = () => {
        try {
          return Number(Deno.readTextFileSync(`/proc/${pid}/root/tmp/count`).trim());
        } catch {
          return 0; // not written yet, or caught between truncate and write
        }
      };
      await until("the counter to run", () => Promise.resolve(count() > 2));
      // How long the running counter takes for 5 ticks on this machine now: a paused one must
      // stay still for twice that (a stillness cannot be polled for; a fixed window could be
      // too short on a loaded machine to tell frozen from slow).
      const c0 = count();
      const t0 = Date.now();
      await until("the counter to tick 5 times", () => Promise.resolve(count() >= c0 + 5));
      const window = 2 * (Date.now() - t0);
      await ok(t(["pause", "counter"]));
      const ps = psRows(await ok(t(["ps"])));
      assertMatch(ps[0][4], /^Up .* \(Paused\)$/);
      const paused = JSON.parse(await ok(t(["inspect", "counter"])))[0].State;
      assertEquals([paused.Status, paused.Paused, paused.Running], ["paused", true, true]);
      const frozenAt = count();
      await new Promise((r) => setTimeout(r, window));
      assertEquals(count(), frozenAt, `a paused container's counter stays still for ${window} ms`);
      // pause twice is an error, as in docker; unpause resumes.
      assertEquals((await t(["pause", "counter"])).code, 1);
      await ok(t(["unpause", "counter"]));
      await until("the counter to advance", () => Promise.resolve(count() > frozenAt));
      assertMatch(psRows(await ok(t(["ps"])))[0][4], /^Up [^(]*$/);
      // A paused container stops.
      await ok(t(["pause", "counter"]));
      await ok(t(["stop", "-t", "1", "counter"]));
      assertMatch(psRows(await ok(t(["ps", "-a"])))[0][4], /^Exited \(\d+\)/);

      // top and stats of a container with three processes.
      await ok(t([
        "run",
        "-d",
        "--name",
        "three",
        "--memory",
        "64m",
        refs.busybox,
        "sh",
        "-c",
        "sleep 301 & sleep 302 & wait",
      ]));
      const three = JSON.parse(await ok(t(["inspect", "three"])))[0].State.Pid as number;
      let top: string[][] = [];
      await until("both sleeps", async () => {
        top = psRows(await ok(t(["top", "three"])));
        return top.length === 3;
      });
      const hdr = (await ok(t(["top", "three"]))).split("\n")[0].split(/\s{3,}/);
      // docker's top: ps -ef's columns, the uid by its host name.
      assertEquals(hdr, ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]);
      const byCmd = new Map(top.map((r) => [r[7], r]));
      assertEquals(byCmd.get("sh -c sleep 301 & sleep 302 & wait")?.[1], String(three));
      for (const s of ["sleep 301", "sleep 302"]) {
        assertEquals(byCmd.get(s)?.[2], String(three), `${s} is a child of PID 1`);
        assertEquals(byCmd.get(s)?.[0], "root");
      }
      const stats = JSON.parse(await ok(t(["stats", "--no-stream", "--format", "json", "three"])));
      assertEquals(stats.Name, "three");
      assertEquals(stats.PIDs, "3");
      assertEquals(stats.MemLimitBytes, 64 * 1024 * 1024);
      // Three busybox processes: more than a page, far less than the limit.
      assertOk(
        stats.MemUsageBytes > 4096 && stats.MemUsageBytes < 32 * 1024 * 1024,
        stats.MemUsage,
      );
      const table = psRows(await ok(t(["stats", "--no-stream"])));
      assertEquals(table.length, 1, "only running containers");
      assertEquals(table[0][1], "three");
      assertEquals((await t(["top", "counter"])).code, 125, "top of a stopped container fails");
      await ok(t(["rm", "-f", "three", "counter"]));
    } finally {
      await cleanup();
    }
  },
);

rootTest(
  "diff lists A/C/D; cp out of a stopped container; wait prints exit codes; inspect finds containers; rmi -f",
  async () => {
    const { root, t, cleanup, refs } = await setup();
    const out = await Deno.makeTempDir();
    try {
      await ok(t([
        "run",
        "--name",
        "t-d",
        refs.busybox,
        "sh",
        "-c",
        "echo x > /new; echo y >> /etc/passwd; rm /bin/vi; mkdir /tmp/d; echo z > /tmp/d/f; chown 33:33 /tmp/d/f",
      ]));
      assertEquals((await ok(t(["diff", "t-d"]))).trim().split("\n"), [
        "C /bin",
        "D /bin/vi",
        "C /etc",
        "C /etc/passwd",
        "A /new",
        "C /tmp",
        "A /tmp/d",
        "A /tmp/d/f",
      ]);
      // Nothing changed: nothing listed, not even the runtime's mount targets.
      await ok(t(["run", "--name", "quiet", refs.busybox, "true"]));
      assertEquals(await ok(t(["diff", "quiet"])), "");

      await ok(t(["cp", "t-d:/tmp/d", out]));
      assertEquals(Deno.readTextFileSync(`${out}/d/f`), "z\n");
      assertEquals(Deno.lstatSync(`${out}/d/f`).uid, 33);
      await ok(t(["cp", "t-d:/etc/passwd", `${out}/passwd`]));
      assertOk(Deno.readTextFileSync(`${out}/passwd`).endsWith("\ny\n"));
      assertEquals((await t(["cp", "t-d:/no/such", out])).code, 125);

      await ok(t(["run", "-d", "--name", "w", refs.busybox, "sh", "-c", "sleep 1; exit 3"]));
      assertEquals((await ok(t(["wait", "w", "t-d"]))).trim().split("\n"), ["3", "0"]);
      assertEquals((await ok(t(["wait", "w"]))).trim(), "3", "wait on an exited container");

      // Top-level inspect: containers first, images otherwise.
      const [c] = JSON.parse(await ok(t(["inspect", "t-d"])));
      assertEquals(c.Name, "/t-d");
      assertEquals(c.State.Status, "exited");
      assertEquals(c.Config.Image, refs.busybox);
      const [img] = JSON.parse(await ok(t(["inspect", refs.busybox])));
      assertEquals(img.Id, c.Image);
      assertEquals(img.RepoTags, [refs.busybox]);

      // rmi refuses an image containers use, unless forced; the containers keep working.
      const refused = await t(["rmi", refs.busybox]);
      assertEquals(refused.code, 1);
      assertStringIncludes(refused.stderr, "must force");
      assertStringIncludes(await ok(t(["images", "-q"])), img.Id.slice(7, 19));
      assertStringIncludes(await ok(t(["rmi", "-f", refs.busybox])), "Untagged:");
      assertEquals(await ok(t(["start", "-a", "quiet"])), "");
      assertEquals((await ok(t(["inspect", "quiet"]))).includes('"ExitCode": 0'), true);

      // prune: stopped and created containers go, running ones stay.
      const created = (await ok(t(["create", "--name", "fresh", img.Id]))).trim();
      const running = (await ok(t(["run", "-d", img.Id, "sleep", "300"]))).trim();
      const pruned = await ok(t(["container", "prune", "-f"]));
      const gone = await t(["inspect", "t-d", "quiet", "w"]);
      assertEquals([gone.code, JSON.parse(gone.stdout)], [1, []]);
      for (const id of [c.Id, created]) {
        assertStringIncludes(pruned, id);
        assertEquals(await leftovers(root, id), []);
      }
      assertOk(!pruned.includes(running), "a running container is not pruned");
      assertEquals((await ok(t(["ps", "-aq", "--no-trunc"]))).trim(), running);
      await ok(t(["rm", "-f", running]));
    } finally {
      await Deno.remove(out, { recursive: true });
      await cleanup();
    }
  },
);
