/**
 * `tsbox build --pull` and `--no-cache-filter` (root), with real builds: a base image replaced
 * in a registry on 127.0.0.1 is used by a later build only with --pull; a stage named by
 * --no-cache-filter runs again while the other stages' steps stay cached.
 */
import { join } from "node:path";
import { assertEquals, assertMatch, assertStringIncludes } from "./assert.ts";
import { seedStore, sharedBusyboxRoot } from "./busybox_store.ts";
import { dirWith, rootTest, tempRoot, tsbox } from "./cli.ts";
import { startRegistry } from "./fixtures/registry.ts";

async function ok(root: string, args: string[]): Promise<string> {
  const r = await tsbox(args, { root });
  assertEquals(r.code, 0, `${args.join(" ")}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

rootTest("build --pull: a base replaced in the registry is used only with --pull", async () => {
  const publisher = await sharedBusyboxRoot();
  const registry = await startRegistry();
  const { root, cleanup } = await tempRoot();
  const base = `${registry.host}/t-pull/base:1`;
  const v1 = await dirWith({ Dockerfile: "FROM busybox\nRUN echo v1 > /marker\n" });
  const v2 = await dirWith({ Dockerfile: "FROM busybox\nRUN echo v2 > /marker\n" });
  const app = await dirWith({ Dockerfile: `FROM ${base}\nRUN cp /marker /seen\n` });
  try {
    await seedStore(root);
    await ok(publisher, ["build", "-q", "-t", base, v1]);
    await ok(publisher, ["push", "-q", base]);
    await ok(root, ["build", "-q", "-t", "t-pull:1", app]);
    assertEquals(await ok(root, ["run", "--rm", "t-pull:1", "cat", "/seen"]), "v1\n");

    await ok(publisher, ["build", "-q", "-t", base, v2]);
    await ok(publisher, ["push", "-q", base]);
    // Without --pull the store's copy of the base serves (and the RUN is a cache hit).
    const stale = await ok(root, ["build", "-t", "t-pull:2", app]);
    assertStringIncludes(stale, "Using cache");
    assertEquals(await ok(root, ["run", "--rm", "t-pull:2", "cat", "/seen"]), "v1\n");
    // --pull fetches the new base: the RUN runs on it.
    const fresh = await ok(root, ["build", "--pull", "-t", "t-pull:3", app]);
    assertMatch(fresh, /Step 2\/2 : RUN cp \/marker \/seen\n ---> [0-9a-f]{12} /);
    assertEquals(await ok(root, ["run", "--rm", "t-pull:3", "cat", "/seen"]), "v2\n");
    // BuildKit's plain progress shows the pull under the FROM's vertex.
    const plain = await tsbox(["build", "--pull", "--progress", "plain", app], { root });
    assertEquals(plain.code, 0, plain.stderr);
    assertMatch(plain.stderr, /^#1 \[1\/2\] FROM 127\.0\.0\.1:\d+\/t-pull\/base:1$/m);
    assertMatch(
      plain.stderr,
      /^#1 \d+\.\d{3} resolve \S+\/t-pull\/base:1@sha256:[0-9a-f]{64} done$/m,
    );
  } finally {
    for (const d of [v1, v2, app]) await Deno.remove(d, { recursive: true });
    await tsbox(["rmi", base], { root: publisher });
    await cleanup();
    await registry.stop();
  }
});

rootTest("build --no-cache-filter: that stage runs again, the others stay cached", async () => {
  const root = await sharedBusyboxRoot();
  const ctx = await dirWith({
    Dockerfile: `FROM busybox AS tool
RUN head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \\n' > /tool

FROM busybox AS other
RUN head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \\n' > /other

FROM busybox
COPY --from=tool /tool /tool
COPY --from=other /other /other
`,
  });
  try {
    await ok(root, ["build", "-q", "-t", "t-ncf:1", ctx]);
    const before = await ok(root, ["run", "--rm", "t-ncf:1", "cat", "/tool", "/other"]);
    const out = await ok(root, ["build", "--no-cache-filter", "tool", "-t", "t-ncf:2", ctx]);
    assertMatch(out, /Step 4\/7 : RUN head[^\n]*\n ---> Using cache/);
    const after = await ok(root, ["run", "--rm", "t-ncf:2", "cat", "/tool", "/other"]);
    // /tool is new (its stage ran again), /other the same (its step was a cache hit).
    assertEquals(after.slice(16), before.slice(16));
    assertEquals(after.slice(0, 16) === before.slice(0, 16), false, `${before} ${after}`);
    const bad = await tsbox(["build", "--no-cache-filter", "nope", ctx], { root });
    assertEquals(bad.code, 125);
    assertStringIncludes(bad.stderr, `--no-cache-filter: stage "nope" could not be found`);
  } finally {
    await Deno.remove(ctx, { recursive: true });
    await tsbox(["rmi", "t-ncf:1", "t-ncf:2"], { root });
  }
});

rootTest("COPY keeps setuid and setgid bits, as given or from --chmod, with --chown", async () => {
  const root = await sharedBusyboxRoot();
  const ctx = await dirWith({
    Dockerfile: `FROM busybox
COPY suid sgid /bin/
COPY --chmod=4750 plain /bin/chmodded
COPY --chown=1000:1000 suid /bin/owned
`,
    suid: "a\n",
    sgid: "b\n",
    plain: "c\n",
  });
  try {
    await Deno.chmod(join(ctx, "suid"), 0o4755);
    await Deno.chmod(join(ctx, "sgid"), 0o2755);
    await ok(root, ["build", "-q", "-t", "t-suid:1", ctx]);
    const modes = await ok(root, [
      "run",
      "--rm",
      "t-suid:1",
      "stat",
      "-c",
      "%n %a %u",
      "/bin/suid",
      "/bin/sgid",
      "/bin/chmodded",
      "/bin/owned",
    ]);
    // chown clears these bits even for root: the owner is set first, as docker's COPY keeps them.
    assertEquals(
      modes,
      "/bin/suid 4755 0\n/bin/sgid 2755 0\n/bin/chmodded 4750 0\n/bin/owned 4755 1000\n",
    );
  } finally {
    await Deno.remove(ctx, { recursive: true });
    await tsbox(["rmi", "t-suid:1"], { root });
  }
});

rootTest("RUN --security=insecure: refused unless build --allow security.insecure", async () => {
  const root = await sharedBusyboxRoot();
  const ctx = await dirWith({
    Dockerfile: `FROM busybox
RUN mkdir -p /m && (mount -t tmpfs none /m 2>/dev/null && echo sandbox-mounted || echo sandbox-refused)
RUN --security=insecure mount -t tmpfs none /m && echo insecure-mounted && umount /m
`,
  });
  try {
    const refused = await tsbox(["build", "--no-cache", ctx], { root });
    assertEquals(refused.code, 125, refused.stderr);
    assertStringIncludes(
      refused.stderr,
      "Dockerfile:3: RUN: --security=insecure is not allowed (give build --allow security.insecure)",
    );
    const allowed = await ok(root, ["build", "--no-cache", "--allow", "security.insecure", ctx]);
    // The sandboxed step cannot mount; the insecure one can (all capabilities, no seccomp).
    assertStringIncludes(allowed, "sandbox-refused");
    assertStringIncludes(allowed, "insecure-mounted");
    const unknown = await tsbox(["build", "--allow", "network.sky", ctx], { root });
    assertEquals(unknown.code, 125);
  } finally {
    await Deno.remove(ctx, { recursive: true });
  }
});
