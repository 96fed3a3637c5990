import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { parseCommandLine, RuncUsageError } from "./args.ts";

Deno.test("runc command lines as containerd's shim and conmon write them", () => {
  const shim = parseCommandLine([
    "--root",
    "/run/containerd/runc/k8s.io",
    "--log",
    "/b/log.json",
    "--log-format",
    "json",
    "create",
    "--bundle",
    "/b",
    "--pid-file",
    "/b/init.pid",
    "abc",
  ]);
  assertEquals(shim.globals, {
    root: "/run/containerd/runc/k8s.io",
    log: "/b/log.json",
    "log-format": "json",
  });
  assertEquals(shim.command, "create");
  assertEquals(shim.flags, { bundle: "/b", "pid-file": "/b/init.pid" });
  assertEquals(shim.args, ["abc"]);
  // Go-style single dashes and --flag=value.
  const single = parseCommandLine(["-root=/r", "--systemd-cgroup", "delete", "-force", "abc"]);
  assertEquals(single.globals, { root: "/r", "systemd-cgroup": true });
  assertEquals(single.flags, { force: true });
  assertEquals(parseCommandLine(["kill", "--all", "abc", "9"]).args, ["abc", "9"]);
});

Deno.test("exec: flags before the id, the process's argv after it untouched", () => {
  const line = parseCommandLine([
    "exec",
    "--tty",
    "-e",
    "A=1",
    "--env",
    "B=2",
    "--cwd",
    "/tmp",
    "abc",
    "sh",
    "-c",
    "ls -l",
  ]);
  assertEquals(line.flags, { tty: true, env: ["A=1", "B=2"], cwd: "/tmp" });
  assertEquals(line.args, ["abc", "sh", "-c", "ls -l"]);
  const detached = parseCommandLine([
    "exec",
    "--process",
    "/p.json",
    "--detach",
    "--pid-file",
    "/x",
    "abc",
  ]);
  assertEquals(detached.flags, { process: "/p.json", detach: true, "pid-file": "/x" });
  assertEquals(detached.args, ["abc"]);
});

Deno.test("unknown commands and flags are usage errors", () => {
  assertThrows(() => parseCommandLine(["frobnicate"]), RuncUsageError);
  assertThrows(() => parseCommandLine(["create", "--nope", "x"]), RuncUsageError, "-nope");
  assertThrows(() => parseCommandLine(["create", "--bundle"]), RuncUsageError, "needs an argument");
  assertEquals(parseCommandLine([]).command, "help");
  assertEquals(parseCommandLine(["--version"]).command, "--version");
});
