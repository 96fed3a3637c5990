/**
 * README audit (issue 19), run flags checked by their effect inside a real container of the
 * runtime busybox (pulled by tsbox from the fixture registry; it has user `app` 1000 and group
 * `extra` 2000): `-u USER:GROUP`, `--ulimit nofile=`, `--read-only` (EROFS), `--tmpfs P[:opts]`,
 * `-v HOST:CTR:ro`, `-i`, `-e K` from the caller's environment, `--cap-drop ALL` / `--cap-add`,
 * `--rm`, `create` then `start`, `--userns host` under `--userns-remap`.
 */
import { assertEquals, assertMatch, assertOk, assertStringIncludes } from "./assert.ts";
import { seedStore, sharedBusyboxRoot } from "./busybox_store.ts";
import { tempRoot } from "./cli.ts";
import { type Cli, cliFor, rootTest, uniqueName } from "./readme_audit.ts";

async function env(): Promise<Cli> {
  return cliFor(await sharedBusyboxRoot());
}

/** `run --rm OPTS busybox sh -c SCRIPT`: its result. */
async function sh(e: Cli, opts: string[], script: string, stdin?: string) {
  return await e.t(["run", "--rm", ...opts, "busybox", "sh", "-c", script], { stdin });
}

rootTest("-u USER:GROUP by name and by number sets the ids id shows", async () => {
  const e = await env();
  const byName = await sh(e, ["-u", "app:extra"], "id -u; id -g; id -G");
  assertEquals(byName.code, 0, byName.stderr);
  // Group given: the primary gid is that group's, and the supplementary ones are only it.
  assertEquals(byName.stdout, "1000\n2000\n2000\n");
  const byNumber = await sh(e, ["-u", "1234:5678"], "id -u; id -g");
  assertEquals(byNumber.code, 0, byNumber.stderr);
  assertEquals(byNumber.stdout, "1234\n5678\n");
  const rootGroup = await sh(e, ["-u", "app:0"], "id -u; id -g");
  assertEquals(rootGroup.stdout, "1000\n0\n");
  // A name the image's /etc/passwd does not have is refused before the command runs.
  const missing = await sh(e, ["-u", "nobody-here:extra"], "echo ran");
  assertOk(missing.code !== 0, "an unknown user runs");
  assertOk(!missing.stdout.includes("ran"), missing.stdout);
  assertStringIncludes(missing.stderr, "nobody-here");
});

rootTest("--ulimit nofile=SOFT:HARD and nproc=N are the container's rlimits", async () => {
  const e = await env();
  const r = await sh(
    e,
    ["--ulimit", "nofile=1024:2048", "--ulimit", "nproc=300"],
    [
      "ulimit -Sn",
      "ulimit -Hn",
      "ulimit -Su",
      "ulimit -Hu",
      "grep 'Max open files' /proc/self/limits",
    ].join("; "),
  );
  assertEquals(r.code, 0, r.stderr);
  const [soft, hard, procSoft, procHard, limits] = r.stdout.trim().split("\n");
  assertEquals([soft, hard, procSoft, procHard], ["1024", "2048", "300", "300"]);
  assertMatch(limits, /^Max open files\s+1024\s+2048\s+files\s*$/);
  // Without the flag the soft limit is not 1024 (docker's default is its hard limit).
  const plain = await sh(e, [], "ulimit -Sn");
  assertOk(plain.stdout.trim() !== "1024", plain.stdout);
});

rootTest("--read-only: writes to / fail with EROFS; --tmpfs mounts a writable tmpfs", async () => {
  const e = await env();
  const r = await sh(
    e,
    ["--read-only", "--tmpfs", "/scratch", "--tmpfs", "/sized:size=1m,mode=1777"],
    [
      "{ echo x > /x; } 2>/dev/null; echo write-root=$?",
      "mkdir /etc/new 2>&1; echo mkdir=$?",
      "echo data > /scratch/f && cat /scratch/f",
      "grep -E ' /(scratch|sized) ' /proc/mounts",
      "stat -c %a /sized",
      "grep -E '^[^ ]+ / ' /proc/mounts",
    ].join("; "),
  );
  assertEquals(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split("\n");
  assertEquals(lines[0], "write-root=1");
  assertStringIncludes(lines[1], "Read-only file system");
  assertEquals(lines[2], "mkdir=1");
  assertEquals(lines[3], "data");
  assertMatch(lines[4], /^tmpfs \/scratch tmpfs rw,/);
  assertMatch(lines[5], /^tmpfs \/sized tmpfs rw,.*size=1024k/);
  assertEquals(lines[6], "1777");
  assertMatch(lines[7], /^\S+ \/ \S+ ro[,\s]/, "the root is mounted ro");
  // Without --read-only the same write works and / is rw.
  const rw = await sh(e, [], "echo x > /x && echo wrote; grep -E '^[^ ]+ / ' /proc/mounts");
  assertEquals(rw.stdout.split("\n")[0], "wrote");
  assertMatch(rw.stdout.split("\n")[1], /^\S+ \/ \S+ rw[,\s]/);
});

rootTest("-v HOST:CTR:ro is read-only inside; without :ro writes reach the host", async () => {
  const e = await env();
  const dir = await Deno.makeTempDir({ prefix: "tsbox-audit-bind-" });
  try {
    await Deno.writeTextFile(`${dir}/in`, "from-host\n");
    const ro = await sh(
      e,
      ["-v", `${dir}:/data:ro`],
      "cat /data/in; { echo no > /data/out; } 2>&1; echo rc=$?; grep ' /data ' /proc/mounts",
    );
    assertEquals(ro.code, 0, ro.stderr);
    const [content, err, rc, mount] = ro.stdout.trim().split("\n");
    assertEquals(content, "from-host");
    assertStringIncludes(err, "Read-only file system");
    assertEquals(rc, "rc=1");
    assertMatch(mount, / \/data \S+ ro[,\s]/);
    await Deno.stat(`${dir}/out`).then(() => assertOk(false, "written through :ro"), () => {});

    const rw = await sh(e, ["-v", `${dir}:/data`], "echo yes > /data/out");
    assertEquals(rw.code, 0, rw.stderr);
    assertEquals(await Deno.readTextFile(`${dir}/out`), "yes\n");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

rootTest("-i passes stdin to the command; without -i it reads end of file", async () => {
  const e = await env();
  const withI = await sh(e, ["-i"], "wc -l; echo end", "one\ntwo\nthree\n");
  assertEquals(withI.code, 0, withI.stderr);
  assertEquals(withI.stdout.trim().split("\n").map((l) => l.trim()), ["3", "end"]);
  const without = await sh(e, [], "wc -l; echo end", "one\ntwo\nthree\n");
  assertEquals(without.code, 0, without.stderr);
  assertEquals(without.stdout.trim().split("\n").map((l) => l.trim()), ["0", "end"]);
});

rootTest("-e K takes K's value from tsbox's environment; -e K=V overrides the image", async () => {
  const e = await env();
  const r = await e.t(
    ["run", "--rm", "-e", "AUDIT_FROM_HOST", "-e", "PATH=/bin", "-e", "UNSET_HERE", "busybox"]
      .concat(["sh", "-c", 'echo "$AUDIT_FROM_HOST|$PATH|${UNSET_HERE-unset}"']),
    { env: { AUDIT_FROM_HOST: "host-value" } },
  );
  assertEquals(r.code, 0, r.stderr);
  assertEquals(r.stdout, "host-value|/bin|unset\n");
});

rootTest("--cap-drop ALL empties the sets; --cap-add NET_ADMIN adds bit 12", async () => {
  const e = await env();
  const caps = async (opts: string[]) => {
    const r = await sh(e, opts, "grep -E '^Cap(Eff|Bnd)' /proc/self/status");
    assertEquals(r.code, 0, r.stderr);
    return Object.fromEntries(
      r.stdout.trim().split("\n").map((l) => l.split(/:\s+/)).map((
        [k, v],
      ) => [k, BigInt(`0x${v}`)]),
    );
  };
  const none = await caps(["--cap-drop", "ALL"]);
  assertEquals(none, { CapBnd: 0n, CapEff: 0n });
  const base = await caps([]);
  assertEquals(base.CapEff & (1n << 12n), 0n, "NET_ADMIN is not docker's default");
  const added = await caps(["--cap-add", "NET_ADMIN"]);
  assertEquals(added.CapEff, base.CapEff | (1n << 12n));
  // Effect: NET_ADMIN lets root bring lo down, docker's default set does not.
  const down = await sh(e, ["--cap-add", "NET_ADMIN"], "ip link set lo down && echo down");
  assertEquals(down.stdout, "down\n", down.stderr);
  const refused = await sh(e, [], "ip link set lo down 2>&1; echo rc=$?");
  assertMatch(refused.stdout, /rc=[1-9]/);
});

rootTest("create makes a container that does not run; start runs it; --rm removes it", async () => {
  const e = await env();
  const name = uniqueName("created");
  try {
    const id = (await e.ok(["create", "--name", name, "busybox", "sh", "-c", "echo ran; exit 4"]))
      .trim();
    assertMatch(id, /^[0-9a-f]{64}$/);
    assertEquals(
      await e.ok(["inspect", "-f", "{{.State.Status}} {{.State.Pid}}", name]),
      "created 0\n",
    );
    assertEquals(await e.ok(["logs", name]), "", "a created container has run nothing");
    await e.ok(["start", name]);
    assertEquals(await e.ok(["wait", name]), "4\n");
    assertEquals(await e.ok(["logs", name]), "ran\n");
  } finally {
    await e.t(["rm", "-f", name]);
  }
  // --rm: gone after it ran, with its output shown.
  const gone = uniqueName("rm");
  assertEquals(await e.ok(["run", "--rm", "--name", gone, "busybox", "echo", "once"]), "once\n");
  assertEquals(await e.ok(["ps", "-a", "-q", "--filter", `name=${gone}`]), "");
});

rootTest(
  "--userns-remap default maps root to a subuid range; run --userns host does not",
  async () => {
    const { root, cleanup } = await tempRoot();
    // --userns-remap=default appends a range to /etc/subuid and /etc/subgid: the commands run in a
    // private mount namespace where copies are bound over them, so the host's files never change.
    const dir = await Deno.makeTempDir({ prefix: "tsbox-audit-subids-" });
    try {
      await seedStore(root);
      for (const f of ["subuid", "subgid"]) {
        let text = "";
        try {
          text = await Deno.readTextFile(`/etc/${f}`);
        } catch { /* none on this host */ }
        await Deno.writeTextFile(`${dir}/${f}`, text);
      }
      const main = new URL("../main.ts", import.meta.url).pathname;
      const tsbox = `'${Deno.execPath()}' run -A --quiet '${main}' --root '${root}' ` +
        "--userns-remap=default run --rm";
      const script = [
        `mount --bind ${dir}/subuid /etc/subuid && mount --bind ${dir}/subgid /etc/subgid`,
        `echo remapped; ${tsbox} busybox sh -c 'id -u; cat /proc/self/uid_map /proc/self/gid_map'`,
        `echo host; ${tsbox} --userns host busybox sh -c 'id -u; cat /proc/self/uid_map'`,
      ].join(" && ");
      const out = await new Deno.Command("unshare", {
        args: ["-m", "--propagation", "private", "sh", "-c", script],
        env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(out.stdout);
      assertEquals(out.code, 0, `${text}\n${new TextDecoder().decode(out.stderr)}`);
      const entry = /^tsbox:(\d+):65536$/m.exec(await Deno.readTextFile(`${dir}/subuid`));
      assertOk(entry, "a tsbox range in the (copied) /etc/subuid");
      const base = entry[1];
      const gentry = /^tsbox:(\d+):65536$/m.exec(await Deno.readTextFile(`${dir}/subgid`));
      assertOk(gentry, "a tsbox range in the (copied) /etc/subgid");
      const lines = text.trim().split("\n").map((l) => l.trim().split(/\s+/).join(" "));
      assertEquals(lines, [
        "remapped",
        "0",
        `0 ${base} 65536`,
        `0 ${gentry[1]} 65536`,
        "host",
        "0",
        "0 0 4294967295",
      ]);
    } finally {
      await cleanup();
      await Deno.remove(dir, { recursive: true });
    }
  },
);
