/**
 * README audit (issue 19), volumes on real containers of the runtime busybox (pulled by tsbox
 * from the fixture registry): `volume create [--label] [NAME]` (a generated name without one),
 * `volume inspect V...` (fields, `<root>/volumes/NAME/_data`, a missing one), `volume ls -q`,
 * `-v NAME:/path:ro`, `--mount type=volume,src=,dst=[,readonly]` and an anonymous `--mount`
 * with `--rm`, `volume rm -f` of a missing volume.
 */
import { assertEquals, assertMatch, assertOk, assertStringIncludes } from "./assert.ts";
import { sharedBusyboxRoot } from "./busybox_store.ts";
import { type Cli, cliFor, rootTest, uniqueName } from "./readme_audit.ts";

async function env(): Promise<Cli> {
  return cliFor(await sharedBusyboxRoot());
}

interface Volume {
  Name: string;
  Driver: string;
  Mountpoint: string;
  Labels: Record<string, string> | null;
  Scope: string;
  CreatedAt: string;
}

async function names(e: Cli): Promise<string[]> {
  return (await e.ok(["volume", "ls", "-q"])).split("\n").filter(Boolean);
}

rootTest(
  "volume create/inspect/ls -q: name, labels, driver and <root>/volumes/N/_data",
  async () => {
    const e = await env();
    const [a, b] = [uniqueName("vol-a"), uniqueName("vol-b")];
    let generated = "";
    try {
      const before = Date.now();
      assertEquals(
        await e.ok(["volume", "create", "--label", "tier=db", "--label", "k", a]),
        `${a}\n`,
      );
      assertEquals(await e.ok(["volume", "create", b]), `${b}\n`);
      generated = (await e.ok(["volume", "create"])).trim();
      assertMatch(generated, /^[0-9a-f]{64}$/, "a volume without a name gets 64 hex digits");

      const listed = await names(e);
      for (const n of [a, b, generated]) assertOk(listed.includes(n), `${n} in ${listed}`);

      const info = JSON.parse(await e.ok(["volume", "inspect", a, b])) as Volume[];
      assertEquals(info.map((v) => v.Name), [a, b]);
      assertEquals(info[0].Labels, { tier: "db", k: "" });
      assertOk(info[1].Labels === null || Object.keys(info[1].Labels).length === 0);
      for (const v of info) {
        assertEquals(v.Driver, "local");
        assertEquals(v.Scope, "local");
        assertEquals(v.Mountpoint, `${e.root}/volumes/${v.Name}/_data`);
        assertOk((await Deno.stat(v.Mountpoint)).isDirectory, v.Mountpoint);
        const created = Date.parse(v.CreatedAt);
        assertOk(created >= Math.floor(before / 1000) * 1000 - 1000, v.CreatedAt);
      }
      assertEquals(
        await e.ok(["volume", "inspect", "-f", "{{.Labels.tier}} {{.Driver}}", a]),
        "db local\n",
      );

      // The Mountpoint is where a container's writes land.
      await e.ok(["run", "--rm", "-v", `${a}:/data`, "busybox", "sh", "-c", "echo kept > /data/f"]);
      assertEquals(await Deno.readTextFile(`${info[0].Mountpoint}/f`), "kept\n");

      // A missing volume: docker's message and exit 1, also among existing ones.
      const missing = await e.t(["volume", "inspect", a, "t-no-such-volume"]);
      assertEquals(missing.code, 1);
      assertStringIncludes(missing.stderr, "No such volume: t-no-such-volume");
    } finally {
      await e.t(["volume", "rm", "-f", a, b, ...(generated ? [generated] : [])]);
    }
    const after = await names(e);
    for (const n of [a, b]) assertOk(!after.includes(n), `${n} removed`);
    await Deno.stat(`${e.root}/volumes/${a}`).then(() => assertOk(false, "dir left"), () => {});
  },
);

rootTest(
  "-v NAME:/p:ro and --mount ...,readonly are read-only; --mount src,dst writes",
  async () => {
    const e = await env();
    const vol = uniqueName("vol-ro");
    try {
      await e.ok(["run", "--rm", "--mount", `type=volume,src=${vol},dst=/m`, "busybox"].concat(
        ["sh", "-c", "echo via-mount > /m/f"],
      ));
      assertOk((await names(e)).includes(vol), "--mount src= creates the named volume");
      for (
        const opts of [["-v", `${vol}:/m:ro`], [
          "--mount",
          `type=volume,src=${vol},dst=/m,readonly`,
        ]]
      ) {
        const r = await e.t(["run", "--rm", ...opts, "busybox", "sh", "-c"].concat(
          ["cat /m/f; { echo x > /m/g; } 2>&1; echo rc=$?; grep ' /m ' /proc/mounts"],
        ));
        assertEquals(r.code, 0, r.stderr);
        const [content, err, rc, mount] = r.stdout.trim().split("\n");
        assertEquals(content, "via-mount", opts.join(" "));
        assertStringIncludes(err, "Read-only file system");
        assertEquals(rc, "rc=1");
        assertMatch(mount, / \/m \S+ ro[,\s]/);
      }
      const data = `${e.root}/volumes/${vol}/_data`;
      await Deno.stat(`${data}/g`).then(() => assertOk(false, "written through ro"), () => {});
      assertEquals(await Deno.readTextFile(`${data}/f`), "via-mount\n");
    } finally {
      await e.t(["volume", "rm", "-f", vol]);
    }
  },
);

rootTest(
  "an anonymous --mount type=volume,dst= goes with run --rm; rm -f of a missing one",
  async () => {
    const e = await env();
    const before = await names(e);
    const r = await e.t(["run", "--rm", "--mount", "type=volume,dst=/anon", "busybox", "sh", "-c"]
      .concat(["grep ' /anon ' /proc/mounts && echo x > /anon/f && echo wrote"]));
    assertEquals(r.code, 0, r.stderr);
    assertStringIncludes(r.stdout, "wrote");
    assertEquals((await names(e)).sort(), before.sort(), "the anonymous volume is gone");
    // A named one outlives --rm.
    const vol = uniqueName("vol-keep");
    try {
      await e.ok(["run", "--rm", "--mount", `type=volume,src=${vol},dst=/k`, "busybox", "true"]);
      assertOk((await names(e)).includes(vol));
    } finally {
      await e.t(["volume", "rm", vol]);
    }
    // rm -f of a volume that does not exist: no error (docker's -f); without -f: exit 1.
    const forced = await e.t(["volume", "rm", "-f", "t-never-made"]);
    assertEquals(forced.code, 0, forced.stderr);
    const plain = await e.t(["volume", "rm", "t-never-made"]);
    assertEquals(plain.code, 1);
    assertStringIncludes(plain.stderr, "No such volume: t-never-made");
  },
);
