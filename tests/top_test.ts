/**
 * `tsbox top C [ps OPTIONS]` through the real command line (root): the host's ps over the
 * container's processes only, with docker's default `-ef`, `-o` columns and BSD `aux`.
 */
import { assertEquals, assertMatch, assertOk, assertStringIncludes } from "./assert.ts";
import { sharedBusyboxRoot } from "./busybox_store.ts";
import { tsbox } from "./cli.ts";

const isRoot = Deno.uid() === 0;

Deno.test({
  name: "top runs ps's options over the container's processes only",
  ignore: !isRoot,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const root = await sharedBusyboxRoot();
    const t = (args: string[]) => tsbox(args, { root });
    const run = await t([
      "run",
      "-d",
      "--name",
      "t-top1",
      "busybox",
      "sh",
      "-c",
      "sleep 600 & sleep 601",
    ]);
    assertEquals(run.code, 0, run.stderr);
    try {
      const pid1 = Number((await t(["inspect", "-f", "{{.State.Pid}}", "t-top1"])).stdout);
      // Until the shell has started both sleeps.
      let rows: string[] = [];
      for (const deadline = Date.now() + 30_000; Date.now() < deadline;) {
        const r = await t(["top", "t-top1", "-o", "pid,user,args"]);
        assertEquals(r.code, 0, r.stderr);
        rows = r.stdout.trimEnd().split("\n");
        if (
          rows.some((l) => l.endsWith("sleep 600")) && rows.some((l) => l.endsWith("sleep 601"))
        ) {
          break;
        }
        await new Promise((res) => setTimeout(res, 100));
      }
      assertMatch(rows[0], /^PID\s+USER\s+COMMAND$/);
      const body = rows.slice(1).map((l) => l.trim().split(/\s+/));
      // Only the container's: every row is root's sh or sleep, PID 1 among them.
      assertOk(body.some((f) => Number(f[0]) === pid1), rows.join("\n"));
      for (const f of body) {
        assertEquals(f[1], "root");
        assertMatch(f.slice(2).join(" "), /^(sh -c .*|sleep 60[01])$/);
      }
      assertOk(body.length >= 2 && body.length <= 3, rows.join("\n"));

      const ef = await t(["top", "t-top1"]);
      assertEquals(ef.code, 0, ef.stderr);
      assertMatch(ef.stdout.split("\n")[0], /^UID\s+PID\s+PPID\s+C\s+STIME\s+TTY\s+TIME\s+CMD$/);
      assertStringIncludes(ef.stdout, "sleep 600");
      assertEquals(ef.stdout.trimEnd().split("\n").length, body.length + 1);

      const aux = await t(["top", "t-top1", "aux"]);
      assertEquals(aux.code, 0, aux.stderr);
      assertMatch(aux.stdout.split("\n")[0], /^USER\s+PID\s+%CPU\s+%MEM/);
      assertEquals(aux.stdout.trimEnd().split("\n").length, body.length + 1);

      const noPid = await t(["top", "t-top1", "-o", "user,args"]);
      assertEquals(noPid.code, 125);
      assertStringIncludes(noPid.stderr, "Couldn't find PID field in ps output");
    } finally {
      await t(["rm", "-f", "t-top1"]);
    }
    const gone = await t(["create", "--name", "t-top2", "busybox", "true"]);
    assertEquals(gone.code, 0, gone.stderr);
    const notRunning = await t(["top", "t-top2"]);
    assertEquals(notRunning.code, 125);
    assertStringIncludes(notRunning.stderr, "is not running");
    await t(["rm", "t-top2"]);
  },
});
