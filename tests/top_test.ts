/**
 * `top CONTAINER [ps OPTIONS]` (root): docker's default `-ef` columns, BSD `aux`, `-o` lists
 * with ps's headers, each row read from /proc of the container's own processes, and ps's
 * refusals (no PID column, an unknown specifier).
 */
import { sharedBusyboxRoot } from "./busybox_store.ts";
import { assertEquals, assertStringIncludes } from "./assert.ts";
import { tsbox } from "./cli.ts";

const isRoot = Deno.uid() === 0;

function rootTest(name: string, fn: () => Promise<void>) {
  Deno.test({ name, ignore: !isRoot, sanitizeResources: false, sanitizeOps: false, fn });
}

async function cli(args: string[]) {
  return await tsbox(args, { root: await sharedBusyboxRoot() });
}

async function ok(args: string[]): Promise<string> {
  const r = await cli(args);
  assertEquals(r.code, 0, `tsbox ${args.join(" ")}: ${r.stderr}`);
  return r.stdout.trimEnd();
}

/** Cells of each line of a tabwriter table (runs of two or more spaces separate them). */
function cells(text: string): string[][] {
  return text.split("\n").map((l) => l.trim().split(/\s{2,}/));
}

rootTest("top: -ef by default, aux, and -o lists, for the container's processes", async () => {
  await ok([
    "run",
    "-d",
    "--name",
    "t-c21-top",
    "-u",
    "app",
    "busybox",
    "sh",
    "-c",
    "exec sleep 1000",
  ]);
  try {
    const pid = await ok(["inspect", "-f", "{{.State.Pid}}", "t-c21-top"]);
    const ef = cells(await ok(["top", "t-c21-top"]));
    assertEquals(ef[0], ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]);
    assertEquals(ef.length, 2);
    assertEquals(ef[1][1], pid);
    assertEquals(ef[1].at(-1), "sleep 1000");
    assertEquals(ef[1][5], "?");
    // ps resolves the uid on the host, as docker's top does: 1000 has no name there or a host's.
    const hostName = Deno.readTextFileSync("/etc/passwd").split("\n")
      .find((l) => l.split(":")[2] === "1000")?.split(":")[0] ?? "1000";
    assertEquals(ef[1][0], hostName);
    const o = cells(await ok(["top", "t-c21-top", "-o", "pid,uid,args"]));
    assertEquals(o, [["PID", "UID", "COMMAND"], [pid, "1000", "sleep 1000"]]);
    const aux = cells(await ok(["container", "top", "t-c21-top", "aux"]));
    assertEquals(aux[0], [
      "USER",
      "PID",
      "%CPU",
      "%MEM",
      "VSZ",
      "RSS",
      "TTY",
      "STAT",
      "START",
      "TIME",
      "COMMAND",
    ]);
    assertEquals(aux[1][1], pid);
    assertEquals(aux[1][7].startsWith("S"), true, aux[1][7]);
    assertEquals(Number(aux[1][5]) > 0, true, aux[1][5]);
    const noPid = await cli(["top", "t-c21-top", "-o", "user,args"]);
    assertEquals(noPid.code, 1);
    assertStringIncludes(noPid.stderr, "Couldn't find PID field in ps output");
    const unknown = await cli(["top", "t-c21-top", "-o", "pid,bogus"]);
    assertEquals(unknown.code, 1);
    assertStringIncludes(unknown.stderr, 'unknown user-defined format specifier "bogus"');
  } finally {
    await cli(["rm", "-f", "t-c21-top"]);
  }
});
