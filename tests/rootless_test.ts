/**
 * Rootless tsbox against the real kernel: the suite (root) creates a throwaway user with a
 * subordinate id range, then runs tsbox as that user — pull from the fixture registry on
 * 127.0.0.1 into the per-user default root, run in a user namespace (root inside is the user,
 * ids 1.. the user's range, written by newuidmap/newgidmap), files in a bind-mounted dir owned
 * by the user on the host, ps/logs/rm of the user's containers, host and private networks,
 * limits refused without a writable cgroup, and the single-id mapping once the range is gone.
 */
import { dirname, join } from "node:path";
import { assertEquals, assertMatch, assertOk, assertStringIncludes } from "./assert.ts";
import { fixtureRegistry, NGINX_MARKER } from "./fixtures/images.ts";
import { VERSION } from "../src/version.ts";
import { userNamespacesAllowed } from "../src/runtime/rootless.ts";
import { freeRange, parseSubIds } from "../src/runtime/userns.ts";
import { addRange, ok, type Result, run, type TestUser, withUser } from "./rootless_user.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const isRoot = Deno.uid() === 0;
const userns = userNamespacesAllowed();
if (isRoot && !userns.allowed) {
  console.error(
    `SKIP rootless tests: this kernel refuses unprivileged user namespaces ` +
      `(${userns.reason})`,
  );
}

/** How {@link asUser} runs tsbox: an installed launcher instead of main.ts, other variables. */
interface AsUserOptions {
  /** The `./tsbox` compile.sh wrote; run with HOME and DENO_DIR as `env` gives them. */
  readonly launcher?: string;
  readonly env?: Record<string, string>;
}

/** Runs `tsbox ARGS` as the user, with a login-like environment and no --root. */
async function asUser(u: TestUser, args: string[], opts: AsUserOptions = {}): Promise<Result> {
  const program = opts.launcher
    ? [opts.launcher]
    : [Deno.execPath(), "run", "-A", "--quiet", "--cached-only", MAIN];
  const out = await new Deno.Command("setpriv", {
    args: [
      `--reuid=${u.uid}`,
      `--regid=${u.gid}`,
      "--init-groups",
      "--",
      ...program,
      ...args,
    ],
    cwd: opts.launcher ? "/" : u.home,
    clearEnv: true,
    env: {
      HOME: u.home,
      USER: u.name,
      PATH: `${dirname(Deno.execPath())}:/usr/local/bin:/usr/bin:/bin`,
      ...(opts.launcher ? {} : { DENO_DIR: u.denoDir }),
      NO_COLOR: "1",
      ...opts.env,
    },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test({
  name: "rootless: pull and run as an ordinary user with a subordinate id range",
  ignore: !isRoot || !userns.allowed,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const { refs } = await fixtureRegistry();
    const ref = refs.busybox;
    await withUser(async (u) => {
      const start = Math.max(
        freeRange(parseSubIds(Deno.readTextFileSync("/etc/subuid"))),
        freeRange(parseSubIds(Deno.readTextFileSync("/etc/subgid"))),
      );
      const range = `${start}-${start + 65535}`;
      await run("usermod", ["--add-subuids", range, "--add-subgids", range, u.name]);

      ok(await asUser(u, ["pull", ref]), "pull");
      const root = join(u.home, ".local", "share", "tsbox");
      const rootInfo = await Deno.stat(root);
      assertEquals(rootInfo.uid, u.uid, "the default root is the user's, under the home");

      const id = ok(await asUser(u, ["run", "--rm", ref, "id"]), "run id");
      assertMatch(id.stdout, /^uid=0\(root\) gid=0\(root\)/);

      // Root inside is the user: what it creates in the user's dir is the user's.
      const shared = join(u.home, "shared");
      await Deno.mkdir(shared);
      await Deno.chown(shared, u.uid, u.gid);
      const made = ok(
        await asUser(u, [
          "run",
          "--rm",
          "-v",
          `${shared}:/data`,
          ref,
          "sh",
          "-c",
          "touch /data/made && cat /proc/self/uid_map /proc/self/gid_map",
        ]),
        "run with a volume",
      );
      const info = await Deno.stat(join(shared, "made"));
      assertEquals([info.uid, info.gid], [u.uid, u.gid]);
      const lines = made.stdout.trim().split("\n").map((l) => l.trim().split(/\s+/).map(Number));
      assertEquals(lines, [[0, u.uid, 1], [1, start, 65536], [0, u.gid, 1], [1, start, 65536]]);

      // A second id works inside: it is the first subordinate id on the host.
      const other = ok(
        await asUser(u, [
          "run",
          "--rm",
          "-u",
          "1:1",
          "-v",
          `${shared}:/data`,
          ref,
          "sh",
          "-c",
          "id -u && cat /data/made && echo ok",
        ]),
        "run -u 1",
      );
      assertEquals(other.stdout.trim().split("\n"), ["1", "ok"]);

      // Networks: a private one with only lo, or the host's.
      const priv = ok(
        await asUser(u, ["run", "--rm", "--network", "private", ref, "cat", "/proc/net/dev"]),
        "private",
      );
      const ifaces = (s: string) =>
        s.split("\n").slice(2).map((l) => l.split(":")[0].trim()).filter(Boolean).sort();
      assertEquals(ifaces(priv.stdout), ["lo"]);
      const host = ok(
        await asUser(u, ["run", "--rm", "--network", "host", ref, "cat", "/proc/net/dev"]),
        "host network",
      );
      assertEquals(ifaces(host.stdout), ifaces(Deno.readTextFileSync("/proc/net/dev")));

      // No cgroup is writable for the user here: limits are refused, not ignored.
      const limited = await asUser(u, ["run", "--rm", "--memory", "32m", ref, "true"]);
      assertOk(limited.code !== 0, "a memory limit without a cgroup fails");
      assertStringIncludes(limited.stderr, "--memory");
      assertStringIncludes(limited.stderr, "cgroup");

      // The user's containers in ps, logs and rm.
      const detached = ok(
        await asUser(u, ["run", "-d", "--name", "rl1", ref, "sh", "-c", "echo hello; sleep 60"]),
        "run -d",
      );
      const cid = detached.stdout.trim();
      assertMatch(cid, /^[0-9a-f]{64}$/);
      const ps = ok(await asUser(u, ["ps"]), "ps");
      assertStringIncludes(ps.stdout, "rl1");
      let logs = "";
      for (let i = 0; i < 100 && !logs.includes("hello"); i++) {
        logs = ok(await asUser(u, ["logs", "rl1"]), "logs").stdout;
        if (!logs.includes("hello")) await new Promise((r) => setTimeout(r, 100));
      }
      assertEquals(logs, "hello\n");
      ok(await asUser(u, ["rm", "-f", "rl1"]), "rm -f");
      const after = ok(await asUser(u, ["ps", "-a"]), "ps -a");
      assertOk(!after.stdout.includes("rl1"), after.stdout);
      const left = [...Deno.readDirSync(join(root, "containers"))].map((e) => e.name);
      assertOk(!left.includes(cid), "the container's directory is gone");

      // Without a subordinate range only the user's own id is mapped, and tsbox says so.
      await run("usermod", ["--del-subuids", range, "--del-subgids", range, u.name]);
      const single = ok(
        await asUser(u, ["run", "--rm", ref, "sh", "-c", "id -u; cat /proc/self/uid_map"]),
        "run with no range",
      );
      const out = single.stdout.trim().split("\n");
      assertEquals(out[0], "0");
      assertEquals(out.slice(1).map((l) => l.trim().split(/\s+/).map(Number)), [[0, u.uid, 1]]);
      assertEquals(single.stderr.match(/only your own id is mapped/g)?.length, 1);
    });
  },
});

/** Paths under `dir` owned by host uid `uid` (read as root). */
async function ownedBy(dir: string, uid: number): Promise<string[]> {
  const out = await run("find", [dir, "-uid", String(uid)]);
  return out.split("\n").filter(Boolean);
}

Deno.test({
  name: "rootless: rm removes files the container wrote as a subordinate id",
  ignore: !isRoot || !userns.allowed,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const { refs } = await fixtureRegistry();
    const ref = refs.busybox;
    await withUser(async (u) => {
      const { start, range } = await addRange(u);
      ok(await asUser(u, ["pull", ref]), "pull");
      const containers = join(u.home, ".local", "share", "tsbox", "containers");
      const script = "echo x > /tmp/made && mkdir -m 700 /tmp/priv && echo y > /tmp/priv/f";
      const made = async (name: string) => {
        const r = ok(
          await asUser(u, ["run", "--name", name, "-u", "1:1", ref, "sh", "-c", script]),
          `run ${name}`,
        );
        assertEquals(r.stdout, "");
        const ps = ok(
          await asUser(u, ["ps", "-a", "-q", "--no-trunc", "-f", `name=${name}`]),
          "ps",
        );
        const id = ps.stdout.trim();
        assertMatch(id, /^[0-9a-f]{64}$/);
        const dir = join(containers, id);
        // The situation of the bug: the files are the first subordinate id's on the host,
        // one of them in a directory the user cannot even read.
        const mine = (await ownedBy(dir, start)).map((p) => p.slice(dir.length));
        assertOk(mine.some((p) => p.endsWith("/tmp/made")), mine.join("\n"));
        assertOk(mine.some((p) => p.endsWith("/tmp/priv/f")), mine.join("\n"));
        return { id, dir };
      };
      const exists = async (p: string) => await Deno.lstat(p).then(() => true, () => false);

      const first = await made("rlown");
      ok(await asUser(u, ["rm", "rlown"]), "rm");
      assertOk(!(await exists(first.dir)), "the container's directory is gone");
      const after = ok(await asUser(u, ["ps", "-a"]), "ps -a");
      assertOk(!after.stdout.includes("rlown"), after.stdout);

      // Without the range the namespace cannot reach those files: rm fails, says so, keeps the
      // container, and succeeds once the range is back.
      const second = await made("rlown2");
      await run("usermod", ["--del-subuids", range, "--del-subgids", range, u.name]);
      const refusedRm = await asUser(u, ["rm", "rlown2"]);
      assertOk(refusedRm.code !== 0, "rm without the range fails");
      assertStringIncludes(refusedRm.stderr, "could not be removed");
      assertOk(await exists(second.dir), "its files are still there");
      const kept = ok(await asUser(u, ["ps", "-a"]), "ps -a");
      assertStringIncludes(kept.stdout, "rlown2");
      await run("usermod", ["--add-subuids", range, "--add-subgids", range, u.name]);
      ok(await asUser(u, ["rm", "rlown2"]), "rm again");
      assertOk(!(await exists(second.dir)), "the second directory is gone");
      const none = ok(await asUser(u, ["ps", "-a"]), "ps -a");
      assertOk(!none.stdout.includes("rlown2"), none.stdout);
    });
  },
});

/**
 * An installed tsbox as compile.sh leaves it on a machine without denort: a copy of the
 * checkout, root's, with the `./tsbox` launcher. compile.sh runs without a network (`unshare
 * -n`), so deno compile fails and the npm packages come from a copy of root's Deno cache.
 */
async function installedTsbox(): Promise<{ dir: string; launcher: string }> {
  const dir = await Deno.makeTempDir({ prefix: "tsbox-installed-" });
  const checkout = new URL("..", import.meta.url).pathname;
  const parts = [
    "main.ts",
    "mod.ts",
    "deno.json",
    "deno.lock",
    "compile.sh",
    "ffi",
    "src",
    "registry",
  ];
  await run("cp", ["-a", ...parts.map((p) => join(checkout, p)), dir]);
  const info = JSON.parse(await run(Deno.execPath(), ["info", "--json"]));
  await Deno.mkdir(join(dir, ".deno"));
  await run("cp", ["-a", join(info.denoDir, "npm"), join(dir, ".deno")]);
  const env = Object.entries(Deno.env.toObject())
    .filter(([k]) => k !== "DENORT_BIN" && k !== "DENO_DIR").map(([k, v]) => `${k}=${v}`);
  await run("unshare", ["-n", "--", "env", "-i", ...env, join(dir, "compile.sh")]);
  await Deno.chmod(dir, 0o755);
  return { dir, launcher: join(dir, "tsbox") };
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

Deno.test({
  name: "rootless: installed tsbox with HOME unwritable: -p serves nginx, exec works",
  ignore: !isRoot || !userns.allowed,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const { refs } = await fixtureRegistry();
    const installed = await installedTsbox();
    try {
      await withUser(async (u) => {
        await addRange(u);
        // HOME is not there and cannot be made: nothing may depend on a per-user cache. The
        // store is named explicitly, since its default lives under HOME.
        const store = join(u.home, "store");
        const env = {
          HOME: "/nonexistent",
          // Nothing leaves the machine, not even a Deno that would fetch npm packages: only
          // the fixture registry on 127.0.0.1 is reached directly, the rest meets a dead proxy.
          HTTP_PROXY: "http://127.0.0.1:9",
          HTTPS_PROXY: "http://127.0.0.1:9",
          NO_PROXY: "127.0.0.1,localhost",
        };
        const opts = { launcher: installed.launcher, env: { ...env, TSBOX_ROOT: store } };
        try {
          const version = ok(await asUser(u, ["--version"], opts), "--version");
          assertEquals(version.stdout.trim(), VERSION);
          // The default store lives under HOME: without one, a clear error naming the way out.
          const noStore = await asUser(u, ["ps"], { launcher: installed.launcher, env });
          assertEquals(noStore.code, 125, noStore.stderr);
          assertStringIncludes(noStore.stderr, "/nonexistent/.local/share/tsbox");
          assertStringIncludes(noStore.stderr, "--root DIR or TSBOX_ROOT");
          ok(await asUser(u, ["pull", "-q", refs.nginx], opts), "pull nginx");
          ok(await asUser(u, ["pull", "-q", refs.busybox], opts), "pull busybox");

          // -p: the proxy reaches into a network namespace owned by the user's user namespace.
          const port = freePort();
          ok(
            await asUser(u, [
              "run",
              "-d",
              "--name",
              "rl-web",
              "-p",
              `127.0.0.1:${port}:80`,
              refs.nginx,
            ], opts),
            "run -d -p nginx",
          );
          const page = await until("nginx through the rootless proxy", async () => {
            const res = await fetch(`http://127.0.0.1:${port}/`);
            const text = await res.text();
            return res.status === 200 && text.includes(NGINX_MARKER) ? text : undefined;
          });
          assertStringIncludes(page, NGINX_MARKER);
          // Many connections in a row: more than one batch of the helper's sockets.
          for (let i = 0; i < 40; i++) {
            const res = await fetch(`http://127.0.0.1:${port}/`);
            assertStringIncludes(await res.text(), NGINX_MARKER);
          }
          const ps = ok(await asUser(u, ["ps"], opts), "ps");
          assertStringIncludes(ps.stdout, `127.0.0.1:${port}->80/tcp`);

          // exec: in the container's PID namespace (its PID 1 is sleep), output and exit code.
          ok(
            await asUser(u, ["run", "-d", "--name", "rl-bb", refs.busybox, "sleep", "600"], opts),
            "run -d busybox",
          );
          const exec = await asUser(u, [
            "exec",
            "rl-bb",
            "sh",
            "-c",
            "cat /proc/1/cmdline | tr '\\0' ' '; echo; id -u; echo out; echo err >&2; exit 3",
          ], opts);
          assertEquals(exec.code, 3, exec.stderr);
          assertEquals(exec.stdout, "sleep 600 \n0\nout\n");
          assertEquals(exec.stderr, "err\n");
          // -t: a pty of the container's devpts, made inside its user namespace.
          const tty = await asUser(u, ["exec", "-t", "rl-bb", "tty"], opts);
          assertEquals(tty.code, 0, tty.stderr);
          assertMatch(tty.stdout, /^\/dev\/pts\/\d+\r?\n$/);
          const missing = await asUser(u, ["exec", "rl-bb", "no-such-command"], opts);
          assertEquals(missing.code, 127, missing.stderr);

          ok(await asUser(u, ["rm", "-f", "rl-web", "rl-bb"], opts), "rm -f");
          const left = ok(await asUser(u, ["ps", "-a", "-q"], opts), "ps -a");
          assertEquals(left.stdout, "");
          await assertRefused(port);
        } finally {
          // A failure above must not leave the user's containers (and their supervisors) up.
          await asUser(u, ["rm", "-f", "rl-web", "rl-bb"], opts);
        }
      });
    } finally {
      await Deno.remove(installed.dir, { recursive: true });
    }
  },
});

async function assertRefused(port: number): Promise<void> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port }).catch((e: Error) => e);
  if (conn instanceof Error) return;
  conn.close();
  throw new Error(`port ${port} still answers after rm -f`);
}
