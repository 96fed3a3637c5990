/**
 * `tsbox build --ssh` and `RUN --mount=type=ssh` (root), against a real ssh-agent (Debian's
 * openssh-client) holding a key made by ssh-keygen: a step lists the agent's keys through
 * `SSH_AUTH_SOCK` with a small static helper (busybox has no ssh-add) speaking the agent
 * protocol's REQUEST_IDENTITIES, as `ssh-add -l` does; the socket and its mount point are not
 * in the layer; a required agent that was not given fails naming it; a key file is refused.
 */
import { join } from "node:path";
import { assertEquals, assertOk, assertStringIncludes } from "./assert.ts";
import { sharedBusyboxRoot } from "./busybox_store.ts";
import { tsbox } from "./cli.ts";

const isRoot = Deno.uid() === 0;
const dec = new TextDecoder();

function rootTest(name: string, fn: () => Promise<void>) {
  Deno.test({ name, ignore: !isRoot, sanitizeResources: false, sanitizeOps: false, fn });
}

/** `ssh-add -l` in miniature: the number of keys, then each key's comment. */
const AGENT_LIST_C = `
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

static int readn(int fd, unsigned char *b, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, b + got, n - got);
    if (r <= 0) return -1;
    got += (size_t)r;
  }
  return 0;
}

static unsigned u32(const unsigned char *p) {
  return ((unsigned)p[0] << 24) | ((unsigned)p[1] << 16) | ((unsigned)p[2] << 8) | p[3];
}

int main(void) {
  const char *path = getenv("SSH_AUTH_SOCK");
  if (!path) { puts("no SSH_AUTH_SOCK"); return 2; }
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un a = { .sun_family = AF_UNIX };
  strncpy(a.sun_path, path, sizeof a.sun_path - 1);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) { perror("connect"); return 3; }
  unsigned char req[5] = {0, 0, 0, 1, 11};
  if (write(fd, req, 5) != 5) return 4;
  unsigned char hdr[4];
  if (readn(fd, hdr, 4)) return 5;
  unsigned len = u32(hdr);
  unsigned char *b = malloc(len);
  if (!b || readn(fd, b, len) || b[0] != 12) return 6;
  unsigned n = u32(b + 1), at = 5;
  printf("keys: %u\\n", n);
  for (unsigned i = 0; i < n; i++) {
    at += 4 + u32(b + at);
    unsigned cl = u32(b + at);
    printf("%.*s\\n", (int)cl, b + at + 4);
    at += 4 + cl;
  }
  return 0;
}
`;

async function run(cmd: string, args: string[], env?: Record<string, string>): Promise<string> {
  const out = await new Deno.Command(cmd, { args, env }).output();
  assertOk(out.success, `${cmd} ${args.join(" ")}: ${dec.decode(out.stderr)}`);
  return dec.decode(out.stdout);
}

rootTest("build --ssh: a RUN lists the agent's keys through SSH_AUTH_SOCK", async () => {
  const root = await sharedBusyboxRoot();
  const dir = await Deno.makeTempDir({ prefix: "tsbox-ssh-" });
  const ctx = join(dir, "ctx");
  await Deno.mkdir(ctx);
  const sock = join(dir, "agent.sock");
  let agentPid: number | undefined;
  try {
    await Deno.writeTextFile(join(dir, "agent_list.c"), AGENT_LIST_C);
    await run("cc", ["-static", "-Os", "-o", join(ctx, "agent-list"), join(dir, "agent_list.c")]);
    const started = await run("ssh-agent", ["-s", "-a", sock]);
    agentPid = Number(/SSH_AGENT_PID=(\d+)/.exec(started)?.[1]);
    assertOk(agentPid > 0, started);
    await run("ssh-keygen", [
      "-q",
      "-t",
      "ed25519",
      "-N",
      "",
      "-C",
      "tsbox-test-key",
      "-f",
      join(dir, "key"),
    ]);
    await run("ssh-add", [join(dir, "key")], { SSH_AUTH_SOCK: sock });

    await Deno.writeTextFile(
      join(ctx, "Dockerfile"),
      `FROM busybox
COPY agent-list /usr/local/bin/agent-list
RUN --mount=type=ssh /usr/local/bin/agent-list > /keys; echo "sock=$SSH_AUTH_SOCK" >> /keys
RUN --mount=type=ssh,id=other,target=/agent,mode=0666 SSH_AUTH_SOCK=/agent /usr/local/bin/agent-list > /other; \\
    stat -c '%a %F' /agent >> /other
`,
    );
    const r = await tsbox(
      [
        "build",
        "--no-cache",
        "--ssh",
        `default=${sock}`,
        "--ssh",
        `other=${sock}`,
        "-t",
        "t-ssh:1",
        ctx,
      ],
      { root },
    );
    assertEquals(r.code, 0, r.stderr + r.stdout);
    const keys = await tsbox(["run", "--rm", "t-ssh:1", "cat", "/keys", "/other"], { root });
    assertEquals(
      keys.stdout,
      "keys: 1\ntsbox-test-key\nsock=/run/buildkit/ssh_agent.0\nkeys: 1\ntsbox-test-key\n666 socket\n",
    );
    // Neither the socket nor its mount point stayed in the image.
    const gone = await tsbox(["run", "--rm", "t-ssh:1", "sh", "-c", "ls -a /run /agent 2>&1"], {
      root,
    });
    assertOk(!gone.stdout.includes("buildkit"), gone.stdout);
    assertStringIncludes(gone.stdout, "/agent: No such file");

    // --ssh defaults to $SSH_AUTH_SOCK.
    await Deno.writeTextFile(
      join(ctx, "Dockerfile.env"),
      "FROM busybox\nCOPY agent-list /usr/local/bin/agent-list\n" +
        "RUN --mount=type=ssh /usr/local/bin/agent-list\n",
    );
    const byEnv = await tsbox(
      ["build", "--no-cache", "--ssh", "default", "-f", join(ctx, "Dockerfile.env"), ctx],
      { root, env: { SSH_AUTH_SOCK: sock } },
    );
    assertEquals(byEnv.code, 0, byEnv.stderr + byEnv.stdout);
    assertStringIncludes(byEnv.stdout, "keys: 1\ntsbox-test-key\n");
    // An optional agent not given is not mounted (as BuildKit), a required one fails by name.
    const req = join(dir, "req");
    await Deno.mkdir(req);
    await Deno.writeTextFile(
      join(req, "Dockerfile"),
      "FROM busybox\nRUN --mount=type=ssh,required true\n",
    );
    const missing = await tsbox(["build", req], { root });
    assertEquals(missing.code, 125, missing.stderr);
    assertStringIncludes(missing.stderr, "ssh agent default: not provided");
    const keyFile = await tsbox(["build", "--ssh", `default=${join(dir, "key")}`, req], { root });
    assertEquals(keyFile.code, 125, keyFile.stderr);
    assertStringIncludes(keyFile.stderr, "is not a socket");
  } finally {
    if (agentPid) Deno.kill(agentPid, "SIGTERM");
    await Deno.remove(dir, { recursive: true });
    await tsbox(["rmi", "t-ssh:1"], { root });
  }
});
