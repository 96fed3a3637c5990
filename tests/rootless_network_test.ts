/**
 * Rootless networking against the real kernel (the suite is root; tsbox runs as a throwaway
 * user): the default network is slirp4netns (pasta by name), which forwards the container's
 * traffic as the user's sockets on the host. The test's "outside" is its own upstream namespace
 * (198.51.100.1 behind a veth of the test's, route checked before the first packet,
 * tests/upstream_ns.ts): the helper runs in the host's namespace, so the host's route to that
 * address is the test's veth. Containers resolve names only through `--dns` pointing at the
 * upstream's responder, never through the host's resolvers; the pasta container sends nothing.
 * Also: `-p` with nginx, `private` and `none` still lo-only, the helper ended by `rm -f` and
 * after a killed supervisor, and the one-line warning (with the private namespace) where no
 * helper is installed.
 */
import { assertEquals, assertMatch, assertOk, assertStringIncludes } from "./assert.ts";
import { fixtureRegistry, NGINX_MARKER } from "./fixtures/images.ts";
import { makeUpstream, UPSTREAM, UPSTREAM_HOST_SIDE } from "./upstream_ns.ts";
import { addRange, asUser, ok, type TestUser, withUser } from "./rootless_user.ts";
import { userNamespacesAllowed } from "../src/runtime/rootless.ts";
import { chooseOutbound } from "../src/network/outbound.ts";

const isRoot = Deno.uid() === 0;
const userns = userNamespacesAllowed();
const missing = chooseOutbound("slirp4netns").problem ?? chooseOutbound("pasta").problem;
if (isRoot && userns.allowed && missing !== undefined) {
  console.error(`SKIP rootless network tests: ${missing} (tests/install_deps.sh sets it up)`);
}
const tag = `${Deno.pid % 100000}`;
const HTTP_PORT = 8000;

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

/** Live processes (zombies count as gone) whose command line has an argument holding `text`. */
function processesWith(text: string, also: (argv: string[]) => boolean = () => true): number[] {
  return [...Deno.readDirSync("/proc")].map((e) => Number(e.name)).filter((pid) => {
    if (!Number.isInteger(pid)) return false;
    try {
      const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
      if (/^[ZX]$/.test(stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3))) {
        return false;
      }
      const argv = Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0");
      return argv.some((a) => a.includes(text)) && also(argv);
    } catch {
      return false;
    }
  });
}

/** The user's live slirp4netns and pasta processes. */
function helpersOf(u: TestUser): number[] {
  return processesWith("", (argv) => /(slirp4netns|pasta|passt[^/]*)$/.test(argv[0]))
    .filter((pid) => Deno.statSync(`/proc/${pid}`).uid === u.uid);
}

/** A shell command for the container: an HTTP/1.0 GET of the upstream's marker with nc. */
function httpGet(host: string): string {
  return `printf 'GET /marker HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n' | nc -w 10 ${host} ${HTTP_PORT}`;
}

/** stderr without the rootless cgroup notice, which is not this test's subject. */
function warnings(stderr: string): string {
  return stderr.split("\n").filter((l) => !l.startsWith("WARN: rootless: no writable cgroup"))
    .join("\n");
}

/** The interfaces a container's /proc/net/dev lists. */
function ifaces(netDev: string): string[] {
  return netDev.split("\n").slice(2).map((l) => l.split(":")[0].trim()).filter(Boolean).sort();
}

async function containerId(u: TestUser, name: string): Promise<string> {
  const id = ok(await asUser(u, ["ps", "-a", "-q", "--no-trunc", "-f", `name=^${name}$`]), "ps")
    .stdout.trim();
  assertMatch(id, /^[0-9a-f]{64}$/);
  return id;
}

Deno.test({
  name: "rootless network: the default reaches the test's upstream, -p serves nginx, " +
    "slirp4netns and pasta end with their container, warning without them",
  ignore: !isRoot || !userns.allowed || missing !== undefined,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const { refs } = await fixtureRegistry();
    const www = await Deno.makeTempDir({ prefix: "tsbox-rlnet-www-" });
    await Deno.chmod(www, 0o755);
    await Deno.writeTextFile(`${www}/marker`, `upstream ${tag}\n`);
    // The route to UPSTREAM is checked here, before anything is sent.
    const upstream = await makeUpstream(`tsbox-rlup-${tag}`, `tsbr${tag}`, www, HTTP_PORT, {
      "upstream.test": UPSTREAM,
    });
    const names: string[] = [];
    try {
      await withUser(async (u) => {
        await addRange(u);
        ok(await asUser(u, ["pull", "-q", refs.busybox]), "pull busybox");
        ok(await asUser(u, ["pull", "-q", refs.nginx]), "pull nginx");
        const dns = ["--dns", UPSTREAM];
        try {
          await t.step("the default network fetches a page from the upstream", async () => {
            const r = ok(
              await asUser(u, [
                "run",
                "--rm",
                ...dns,
                refs.busybox,
                "sh",
                "-c",
                `cat /etc/resolv.conf; cat /proc/net/dev; ${httpGet(UPSTREAM)}`,
              ]),
              "run --rm, GET by address",
            );
            assertStringIncludes(r.stdout, `upstream ${tag}\n`);
            // Its resolver is the test's responder only.
            assertEquals(
              r.stdout.split("\n").filter((l) => l.startsWith("nameserver")),
              [`nameserver ${UPSTREAM}`],
            );
            assertOk(ifaces(r.stdout).length > 1, `only lo: ${r.stdout}`);
            assertEquals(warnings(r.stderr), "");
            // pasta forwards as the host: the request comes from the host's end of the veth.
            assertStringIncludes(upstream.log(), `${UPSTREAM_HOST_SIDE} - -`);
          });

          await t.step("a name resolves through --dns and the page is fetched by it", async () => {
            const r = ok(
              await asUser(u, [
                "run",
                "--rm",
                "--network",
                "bridge",
                ...dns,
                refs.busybox,
                "sh",
                "-c",
                httpGet("upstream.test"),
              ]),
              "run --network bridge, GET by name",
            );
            assertMatch(r.stdout, /^HTTP\/1\.0 200 /);
            assertOk(r.stdout.endsWith(`\r\n\r\nupstream ${tag}\n`), r.stdout);
          });

          await t.step("private and none keep lo only; inspect says slirp4netns", async () => {
            for (const mode of ["private", "none"]) {
              const r = ok(
                await asUser(u, [
                  "run",
                  "--rm",
                  "--network",
                  mode,
                  refs.busybox,
                  "cat",
                  "/proc/net/dev",
                ]),
                `--network ${mode}`,
              );
              assertEquals(ifaces(r.stdout), ["lo"], mode);
            }
            ok(await asUser(u, ["create", "--name", "rl-made", ...dns, refs.busybox]), "create");
            names.push("rl-made");
            const mode = ok(
              await asUser(u, ["inspect", "-f", "{{.HostConfig.NetworkMode}}", "rl-made"]),
              "inspect",
            );
            assertEquals(mode.stdout.trim(), "slirp4netns");
            const listed = ok(
              await asUser(u, ["ps", "-a", "--format", "{{.Names}}", "-f", "network=slirp4netns"]),
              "ps -f network=slirp4netns",
            );
            assertEquals(listed.stdout.trim(), "rl-made");
          });

          await t.step(
            "-p 127.0.0.1:PORT:80 serves nginx; rm -f ends its slirp4netns",
            async () => {
              const port = freePort();
              ok(
                await asUser(u, [
                  "run",
                  "-d",
                  "--name",
                  "rl-web",
                  ...dns,
                  "-p",
                  `127.0.0.1:${port}:80`,
                  refs.nginx,
                ]),
                "run -d -p nginx",
              );
              names.push("rl-web");
              const id = await containerId(u, "rl-web");
              const page = await until("nginx through the rootless proxy", async () => {
                const res = await fetch(`http://127.0.0.1:${port}/`);
                const text = await res.text();
                return res.status === 200 && text.includes(NGINX_MARKER) ? text : undefined;
              });
              assertStringIncludes(page, NGINX_MARKER);
              assertEquals(helpersOf(u).length, 1, "one slirp4netns runs for the container");
              ok(await asUser(u, ["rm", "-f", id]), "rm -f");
              await until("its slirp4netns to end", () => {
                return Promise.resolve(helpersOf(u).length === 0 ? true : undefined);
              });
            },
          );

          await t.step("a killed supervisor: its slirp4netns ends", async () => {
            ok(
              await asUser(u, [
                "run",
                "-d",
                "--name",
                "rl-kill",
                ...dns,
                refs.busybox,
                "sleep",
                "300",
              ]),
              "run -d",
            );
            names.push("rl-kill");
            const id = await containerId(u, "rl-kill");
            assertEquals(helpersOf(u).length, 1, "one slirp4netns runs for the container");
            const supervisors = processesWith(
              id,
              (argv) => argv.some((a) => a.includes("supervis")),
            );
            assertEquals(supervisors.length, 1, "its supervisor");
            Deno.kill(supervisors[0], "SIGKILL");
            await until("ps -a to show it exited", async () => {
              const out = ok(
                await asUser(u, ["ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Status}}"]),
                "ps -a",
              ).stdout;
              return out.includes(`${id} Exited (137)`) ? out : undefined;
            });
            await until("its slirp4netns to end", () => {
              return Promise.resolve(helpersOf(u).length === 0 ? true : undefined);
            });
            ok(await asUser(u, ["rm", "rl-kill"]), "rm");
          });

          await t.step(
            "--network pasta: an interface with the host's address; ends with it",
            async () => {
              // Nothing is sent from this container (see outbound.ts for Debian 12's pasta).
              const r = ok(
                await asUser(u, [
                  "run",
                  "--rm",
                  "--network",
                  "pasta",
                  ...dns,
                  refs.busybox,
                  "cat",
                  "/proc/net/dev",
                ]),
                "run --network pasta",
              );
              assertOk(ifaces(r.stdout).length > 1, `only lo: ${r.stdout}`);
              await until("its pasta to end", () => {
                return Promise.resolve(helpersOf(u).length === 0 ? true : undefined);
              });
              // pasta forks away from the supervisor and outlives a killed one: the next
              // command that finds the supervisor dead ends it.
              const id = ok(
                await asUser(u, [
                  "run",
                  "-d",
                  "--network",
                  "pasta",
                  ...dns,
                  refs.busybox,
                  "sleep",
                  "300",
                ]),
                "run -d --network pasta",
              ).stdout.trim();
              names.push(id);
              assertEquals(helpersOf(u).length, 1, "one pasta runs for the container");
              const supervisors = processesWith(
                id,
                (argv) => argv.some((a) => a.includes("supervis")),
              );
              assertEquals(supervisors.length, 1, "its supervisor");
              Deno.kill(supervisors[0], "SIGKILL");
              await until("ps -a to show it exited, and its pasta to end", async () => {
                const out = ok(
                  await asUser(u, ["ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Status}}"]),
                  "ps -a",
                ).stdout;
                return out.includes(`${id} Exited (137)`) && helpersOf(u).length === 0
                  ? true
                  : undefined;
              });
              ok(await asUser(u, ["rm", id]), "rm");
            },
          );

          await t.step("without helpers: one warning line and the private namespace", async () => {
            const env = {
              TSBOX_PASTA: "/nonexistent/pasta",
              TSBOX_SLIRP4NETNS: "/nonexistent/slirp4netns",
            };
            const r = ok(
              await asUser(u, ["run", "--rm", refs.busybox, "cat", "/proc/net/dev"], env),
              "run without pasta",
            );
            assertEquals(ifaces(r.stdout), ["lo"]);
            assertEquals(
              warnings(r.stderr),
              "WARNING: slirp4netns or pasta is not installed (Debian: apt-get install " +
                "slirp4netns or passt): the container gets a private network namespace with no " +
                "route out\n",
            );
            const explicit = await asUser(
              u,
              ["run", "--rm", "--network", "pasta", refs.busybox, "true"],
              env,
            );
            assertEquals(explicit.code, 125, explicit.stderr);
            assertStringIncludes(explicit.stderr, "pasta is not installed");
          });
        } finally {
          if (names.length > 0) await asUser(u, ["rm", "-f", ...names]);
        }
        const left = ok(await asUser(u, ["ps", "-a", "-q"]), "ps -a");
        assertEquals(left.stdout, "");
        assertEquals(helpersOf(u), []);
      });
    } finally {
      await upstream.remove();
      await Deno.remove(www, { recursive: true });
    }
  },
});
