/**
 * `ADD` of a git repository (root), from a real `git daemon` on 127.0.0.1 serving a bare
 * repository the test made: a tag, a branch with a subdirectory, `--keep-git-dir`, the cache
 * keyed by the commit the ref names (unchanged remote: a hit; a new commit: a miss), and an
 * unknown ref refused by name.
 */
import { join } from "node:path";
import { assertEquals, assertMatch, assertOk, assertStringIncludes } from "./assert.ts";
import { sharedBusyboxRoot } from "./busybox_store.ts";
import { tsbox } from "./cli.ts";

const isRoot = Deno.uid() === 0;
const dec = new TextDecoder();

function rootTest(name: string, fn: () => Promise<void>) {
  Deno.test({ name, ignore: !isRoot, sanitizeResources: false, sanitizeOps: false, fn });
}

async function git(args: string[], cwd?: string): Promise<string> {
  const out = await new Deno.Command("git", {
    args: ["-c", "user.name=t", "-c", "user.email=t@example.invalid", ...args],
    cwd,
    env: { GIT_TERMINAL_PROMPT: "0" },
  }).output();
  assertOk(out.success, `git ${args.join(" ")}: ${dec.decode(out.stderr)}`);
  return dec.decode(out.stdout);
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function ok(root: string, args: string[]): Promise<string> {
  const r = await tsbox(args, { root });
  assertEquals(r.code, 0, `${args.join(" ")}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

rootTest(
  "ADD git://: a tag, a branch's subdirectory, --keep-git-dir, cache by commit",
  async () => {
    const root = await sharedBusyboxRoot();
    const dir = await Deno.makeTempDir({ prefix: "tsbox-git-" });
    const work = join(dir, "work");
    const ctx = join(dir, "ctx");
    let daemon: Deno.ChildProcess | undefined;
    try {
      await git(["init", "-q", "--bare", "-b", "main", join(dir, "repo.git")]);
      await git(["init", "-q", "-b", "main", work]);
      await Deno.mkdir(join(work, "sub"));
      await Deno.writeTextFile(join(work, "a.txt"), "v1\n");
      await Deno.writeTextFile(join(work, "sub", "s.txt"), "in-sub\n");
      await git(["add", "."], work);
      await git(["commit", "-q", "-m", "one"], work);
      await git(["tag", "-a", "v1", "-m", "v1"], work);
      await Deno.writeTextFile(join(work, "a.txt"), "v2\n");
      await git(["commit", "-q", "-am", "two"], work);
      await git(["push", "-q", "--tags", join(dir, "repo.git"), "main"], work);

      const port = freePort();
      daemon = new Deno.Command("git", {
        args: [
          "daemon",
          "--reuseaddr",
          "--export-all",
          `--base-path=${dir}`,
          "--listen=127.0.0.1",
          `--port=${port}`,
          dir,
        ],
        stdout: "null",
        stderr: "null",
      }).spawn();
      const repo = `git://127.0.0.1:${port}/repo.git`;
      for (let i = 0;; i++) {
        const probe = await new Deno.Command("git", { args: ["ls-remote", repo] }).output();
        if (probe.success) break;
        assertOk(i < 50, "git daemon did not answer");
        await new Promise((r) => setTimeout(r, 100));
      }

      await Deno.mkdir(ctx);
      await Deno.writeTextFile(
        join(ctx, "Dockerfile"),
        `FROM busybox
ADD ${repo}#v1 /tag
ADD ${repo}#main:sub /sub
ADD --keep-git-dir=true ${repo}#main /full
`,
      );
      await ok(root, ["build", "-q", "-t", "t-git:1", ctx]);
      const seen = await ok(root, [
        "run",
        "--rm",
        "t-git:1",
        "sh",
        "-c",
        "cat /tag/a.txt /sub/s.txt /full/a.txt; ls -a /tag | tr '\\n' ' '; echo; " +
        "test -d /full/.git && echo kept",
      ]);
      assertEquals(seen, "v1\nin-sub\nv2\n. .. a.txt sub \nkept\n");

      // Unchanged remote: every ADD is a cache hit (the refs resolve to the same commits).
      const again = await ok(root, ["build", "-t", "t-git:2", ctx]);
      assertEquals(again.match(/ ---> Using cache/g)?.length, 3, again);
      // A new commit on main: the ADDs of main run again, the tag's stays cached.
      await Deno.writeTextFile(join(work, "a.txt"), "v3\n");
      await git(["commit", "-q", "-am", "three"], work);
      await git(["push", "-q", join(dir, "repo.git"), "main"], work);
      const moved = await ok(root, ["build", "-t", "t-git:3", ctx]);
      assertMatch(moved, /Step 2\/4 : ADD [^\n]*#v1 \/tag\n ---> Using cache/);
      assertMatch(moved, /Step 4\/4 : ADD [^\n]*#main \/full\n ---> [0-9a-f]{12} /);
      assertEquals(await ok(root, ["run", "--rm", "t-git:3", "cat", "/full/a.txt"]), "v3\n");

      await Deno.writeTextFile(join(ctx, "Dockerfile"), `FROM busybox\nADD ${repo}#nope /x\n`);
      const bad = await tsbox(["build", ctx], { root });
      assertOk(bad.code !== 0, bad.stdout);
      assertStringIncludes(bad.stderr, `Dockerfile:2: ADD: git ref "nope" not found`);
    } finally {
      if (daemon) {
        daemon.kill("SIGTERM");
        await daemon.status;
      }
      await Deno.remove(dir, { recursive: true });
      await tsbox(["rmi", "t-git:1", "t-git:2", "t-git:3"], { root });
    }
  },
);
