import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { MountSpecError, parseMountFlag } from "./run_mounts.ts";
import { parseSecretFlag } from "./secrets.ts";
import { PrefixedLines } from "./output.ts";

Deno.test("run mounts: BuildKit's defaults and aliases", () => {
  assertEquals(parseMountFlag("type=cache,target=/root/.cache"), {
    type: "cache",
    target: "/root/.cache",
    id: "/root/.cache",
    sharing: "shared",
    from: undefined,
    source: "/",
    mode: 0o755,
    uid: 0,
    gid: 0,
    readOnly: false,
  });
  assertEquals(parseMountFlag("target=/m,from=build,src=/out"), {
    type: "bind",
    target: "/m",
    source: "/out",
    from: "build",
    readWrite: false,
  });
  assertEquals(parseMountFlag("type=bind,dst=/m,rw").type === "bind", true);
  assertEquals((parseMountFlag("type=bind,dst=/m,rw") as { readWrite: boolean }).readWrite, true);
  assertEquals(parseMountFlag("type=tmpfs,destination=/t,size=2m"), {
    type: "tmpfs",
    target: "/t",
    sizeBytes: 2 * 1024 * 1024,
  });
  assertEquals(parseMountFlag("type=secret,id=npm"), {
    type: "secret",
    id: "npm",
    target: "/run/secrets/npm",
    env: undefined,
    required: false,
    mode: 0o400,
    uid: 0,
    gid: 0,
  });
  const envOnly = parseMountFlag("type=secret,id=tok,env=TOKEN,required=true");
  assertEquals(envOnly.type === "secret" && [envOnly.target, envOnly.required], [undefined, true]);
  const byTarget = parseMountFlag("type=secret,target=/etc/key,mode=0444,uid=5");
  assertEquals(byTarget.type === "secret" && [byTarget.id, byTarget.mode, byTarget.uid], [
    "key",
    0o444,
    5,
  ]);
  assertEquals(
    (parseMountFlag('type=cache,"target=/a,b",sharing=locked') as { target: string }).target,
    "/a,b",
  );
});

Deno.test("run mounts: type=ssh with BuildKit's defaults", () => {
  assertEquals(parseMountFlag("type=ssh"), {
    type: "ssh",
    id: "default",
    target: undefined,
    required: false,
    mode: 0o600,
    uid: 0,
    gid: 0,
  });
  assertEquals(parseMountFlag("type=ssh,id=gh,target=/s,required,mode=0644,uid=1"), {
    type: "ssh",
    id: "gh",
    target: "/s",
    required: true,
    mode: 0o644,
    uid: 1,
    gid: 0,
  });
});

Deno.test("run mounts: what cannot be honoured is refused by name", () => {
  for (
    const [spec, message] of [
      ["type=ssh,env=X", 'unknown key "env"'],
      ["type=volume,target=/x", 'unsupported mount type "volume"'],
      ["type=cache", "target is required"],
      ["type=cache,target=/x,sharing=sometimes", "invalid sharing"],
      ["type=cache,target=/x,mode=999", "invalid mode"],
      ["type=tmpfs,target=/x,size=lots", "invalid size"],
      ["type=bind,target=/x,id=a", 'unknown key "id"'],
      ["type=secret", "id or target is required"],
      ["type=secret,id=a,env=1X", "invalid env name"],
      ['type=bind,"target=/x', "unterminated quote"],
    ]
  ) assertThrows(() => parseMountFlag(spec), MountSpecError, message);
});

Deno.test("secrets: --secret forms", () => {
  assertEquals(parseSecretFlag("id=a,src=/f"), { id: "a", src: "/f", env: undefined });
  assertEquals(parseSecretFlag("id=a,source=/f"), { id: "a", src: "/f", env: undefined });
  assertEquals(parseSecretFlag("id=a,env=VAR"), { id: "a", src: undefined, env: "VAR" });
  assertEquals(parseSecretFlag("id=VAR"), { id: "VAR", src: undefined, env: "VAR" });
  assertEquals(parseSecretFlag("id=a,type=file"), { id: "a", src: "a", env: undefined });
  assertEquals(parseSecretFlag("src=/dir/key"), { id: "key", src: "/dir/key", env: undefined });
  assertThrows(() => parseSecretFlag("id=a,colour=red"), Error, 'unknown key "colour"');
  assertThrows(() => parseSecretFlag("src="), Error, "no id");
});

Deno.test("output: lines of a step prefixed, partial lines kept until their end", () => {
  const out: string[] = [];
  const dec = new TextDecoder();
  const enc = new TextEncoder();
  const lines = new PrefixedLines("[a 2/5] ", (d) => out.push(dec.decode(d)));
  lines.write(enc.encode("one\ntw"));
  lines.write(enc.encode("o\n\nthr"));
  lines.flush();
  lines.flush();
  assertEquals(out, ["[a 2/5] one\n", "[a 2/5] two\n", "[a 2/5] \n", "[a 2/5] thr\n"]);
});
