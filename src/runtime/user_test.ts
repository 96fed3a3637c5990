import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { execCandidates, planProcess } from "./config.ts";
import { resolveUser, UserError } from "./user.ts";

const passwd = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n";
const group = "root:x:0:\napp:x:1000:\nwheel:x:10:app,other\n";

Deno.test("--user resolves names, ids and supplementary groups like docker", () => {
  assertEquals(resolveUser("", passwd, group), {
    uid: 0,
    gid: 0,
    groups: [0],
    home: "/root",
    name: "root",
  });
  assertEquals(resolveUser("app", passwd, group).groups, [1000, 10]);
  assertEquals(resolveUser("app:wheel", passwd, group).gid, 10);
  assertEquals(resolveUser("4242", passwd, group), {
    uid: 4242,
    gid: 0,
    groups: [0],
    home: "/",
    name: undefined,
  });
  assertEquals(resolveUser("1000:7", passwd, group).gid, 7);
  assertThrows(() => resolveUser("nobody", passwd, group), UserError);
});

Deno.test("image config and flags merge as docker merges them", () => {
  const image = { Entrypoint: ["/ep"], Cmd: ["a"], Env: ["PATH=/x", "K=v"], WorkingDir: "/w" };
  const p = planProcess(
    image,
    { env: ["K=w", "FROMHOST"] },
    "h",
    (n) => n === "FROMHOST" ? "1" : undefined,
  );
  assertEquals(p.argv, ["/ep", "a"]);
  assertEquals(p.env, ["PATH=/x", "HOSTNAME=h", "K=w", "FROMHOST=1"]);
  assertEquals(p.cwd, "/w");
  assertEquals(planProcess(image, { command: ["b"] }, "h").argv, ["/ep", "b"]);
  assertEquals(planProcess(image, { entrypoint: "sh" }, "h").argv, ["sh"]);
  assertEquals(
    planProcess({}, { command: ["x"], tty: true }, "h").env.includes("TERM=xterm"),
    true,
  );
});

Deno.test("the PATH search lists each directory in order", () => {
  assertEquals(execCandidates("ls", ["PATH=/a:/b/:"]), ["/a/ls", "/b/ls", "ls"]);
  assertEquals(execCandidates("./x", ["PATH=/a"]), ["./x"]);
});
