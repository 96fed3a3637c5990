/**
 * Rootless tsbox against the real kernel: the suite (root) creates a throwaway user with a
 * subordinate id range, then runs tsbox as that user — pull from the fixture registry on
 * 127.0.0.1 into the per-user default root, run in a user namespace (root inside is the user,
 * ids 1.. the user's range, written by newuidmap/newgidmap), files in a bind-mounted dir owned
 * by the user on the host, ps/logs/rm of the user's containers, host and private networks,
 * limits refused without a writable cgroup, and the single-id mapping once the range is gone.
 */
import { join } from "node:path";
import { assertEquals, assertMatch, assertOk, assertStringIncludes } from "./assert.ts";
import { fixtureRegistry } from "./fixtures/images.ts";
import { userNamespacesAllowed } from "../src/runtime/rootless.ts";
import { freeRange, parseSubIds } from "../src/runtime/userns.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const isRoot = Deno.uid() === 0;
const userns = userNamespacesAllowed();
if (isRoot && !userns.allowed) {
  console.error(
    `SKIP rootless tests: this kernel refuses unprivileged user namespaces ` +
      `(${userns.reason})`,
  );
}

async function run(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return text;
}

/** A throwaway login: home, ids, a copy of Deno's cache it can read and write. */
interface TestUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  readonly home: string;
  readonly denoDir: string;
}

function mentions(path: string, name: string): boolean {
  return parseSubIds(Deno.readTextFileSync(path)).some((e) => e.name === name);
}

async function withUser(fn: (u: TestUser) => Promise<void>): Promise<void> {
  const name = `tsbrl${crypto.randomUUID().replaceAll("-", "").slice(0, 8)}`;
  // No automatic subordinate range (login.defs may assign one): the test adds its own.
  await run("useradd", [
    "-m",
    "-s",
    "/bin/sh",
    "-K",
    "SUB_UID_COUNT=0",
    "-K",
    "SUB_GID_COUNT=0",
    name,
  ]);
  try {
    const uid = Number((await run("id", ["-u", name])).trim());
    const gid = Number((await run("id", ["-g", name])).trim());
    const home = (await run("getent", ["passwd", name])).trim().split(":")[5];
    // Deno's module cache (npm packages) copied for the user: nothing of root's is opened up.
    const info = JSON.parse(await run(Deno.execPath(), ["info", "--json"]));
    const denoDir = join(home, ".cache", "deno");
    await Deno.mkdir(denoDir, { recursive: true });
    for (const sub of ["npm", "remote"]) {
      try {
        await Deno.stat(join(info.denoDir, sub));
      } catch {
        continue;
      }
      await run("cp", ["-a", join(info.denoDir, sub), denoDir]);
    }
    await run("chown", ["-R", `${uid}:${gid}`, join(home, ".cache")]);
    await fn({ name, uid, gid, home, denoDir });
  } finally {
    await run("userdel", ["-r", name]).catch((err) => console.error(String(err)));
    // userdel drops the user's subordinate ranges; make sure, as a failed test must not
    // leave an entry behind.
    for (const [file, flag] of [["/etc/subuid", "-v"], ["/etc/subgid", "-w"]] as const) {
      if (!mentions(file, name)) continue;
      const e = parseSubIds(Deno.readTextFileSync(file)).find((e) => e.name === name)!;
      await run("usermod", [flag, `${e.start}-${e.start + e.count - 1}`, name]).catch(() => {});
      const text = Deno.readTextFileSync(file).split("\n")
        .filter((l) => !l.startsWith(`${name}:`)).join("\n");
      Deno.writeTextFileSync(file, text);
    }
  }
}

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `tsbox ARGS` as the user, with a login-like environment and no --root. */
async function asUser(u: TestUser, args: string[]): Promise<Result> {
  const out = await new Deno.Command("setpriv", {
    args: [
      `--reuid=${u.uid}`,
      `--regid=${u.gid}`,
      "--init-groups",
      "--",
      Deno.execPath(),
      "run",
      "-A",
      "--quiet",
      "--cached-only",
      MAIN,
      ...args,
    ],
    cwd: u.home,
    clearEnv: true,
    env: {
      HOME: u.home,
      USER: u.name,
      PATH: "/usr/local/bin:/usr/bin:/bin",
      DENO_DIR: u.denoDir,
      NO_COLOR: "1",
    },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

function ok(r: Result, what: string): Result {
  assertEquals(r.code, 0, `${what}: exit ${r.code}\n${r.stderr}`);
  return r;
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
      const priv = ok(await asUser(u, ["run", "--rm", ref, "cat", "/proc/net/dev"]), "private");
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

/** Gives the user a fresh 65536-id subordinate range; returns its first id and its text. */
async function addRange(u: TestUser): Promise<{ start: number; range: string }> {
  const start = Math.max(
    freeRange(parseSubIds(Deno.readTextFileSync("/etc/subuid"))),
    freeRange(parseSubIds(Deno.readTextFileSync("/etc/subgid"))),
  );
  const range = `${start}-${start + 65535}`;
  await run("usermod", ["--add-subuids", range, "--add-subgids", range, u.name]);
  return { start, range };
}

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
