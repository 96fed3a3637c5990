/**
 * `pull --platform` of an image index (issue 23) records the variant asked for under the name,
 * as docker's classic store does: after `pull --platform a NAME` and `pull --platform b NAME`,
 * `run NAME` starts the last pulled variant, and `images` lists one row for NAME. Both variants
 * stay in the store, the earlier one untagged (`images -a` lists it as `<none>`).
 */
import { assertEquals, assertStringIncludes } from "./assert.ts";
import { rootTest, tempRoot, tsbox } from "./cli.ts";
import { platformFixtures } from "./fixtures/arm64.ts";

async function ok(root: string, args: string[]): Promise<string> {
  const r = await tsbox(args, { root });
  assertEquals(r.code, 0, `tsbox ${args.join(" ")}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** The architecture of what `run NAME` (no --platform) starts: its /arch file. */
async function runs(root: string, name: string): Promise<string> {
  const r = await tsbox(["run", "--rm", name, "cat", "/arch"], { root });
  assertEquals(r.code, 0, r.stderr);
  return r.stdout.trim();
}

rootTest(
  "pull --platform a then --platform b: run NAME starts the last pulled variant",
  async () => {
    const p = await platformFixtures();
    const { root, cleanup } = await tempRoot();
    try {
      for (const [first, second] of [["arm64", "amd64"], ["amd64", "arm64"]]) {
        await ok(root, ["pull", "-q", "--platform", `linux/${first}`, p.multi]);
        assertEquals(await runs(root, p.multi), first);
        await ok(root, ["pull", "-q", "--platform", `linux/${second}`, p.multi]);
        assertEquals(await runs(root, p.multi), second);
        const inspected = JSON.parse(await ok(root, ["image", "inspect", p.multi]))[0];
        assertEquals(inspected.Architecture, second);
        const rows = await ok(root, ["images", "--format", "{{.Repository}}:{{.Tag}}"]);
        assertEquals(rows.trim().split("\n").filter((r) => r === p.multi), [p.multi]);
      }
      // --platform picks the other variant.
      const r = await tsbox(["run", "--rm", "--platform", "linux/amd64", p.multi, "cat", "/arch"], {
        root,
      });
      assertEquals([r.code, r.stdout], [0, "amd64\n"], r.stderr);
      // A pull without --platform is the host's variant again.
      await ok(root, ["pull", "-q", p.multi]);
      assertEquals(await runs(root, p.multi), "amd64");
      assertStringIncludes(await ok(root, ["images", "-a"]), "<none>");
    } finally {
      await cleanup();
    }
  },
);
