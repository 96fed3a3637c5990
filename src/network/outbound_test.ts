/**
 * The parts of the user-mode networks that need no namespace: the helpers' arguments (as
 * podman passes them, namespaces by /proc path), finding a helper, how the mode is shown, and
 * that a recorded helper is signalled only when its start time and command line match.
 */
import { assertEquals, assertOk } from "../../tests/assert.ts";
import { bridgeNetworkName, networkModeName } from "./endpoints.ts";
import { findHelper, pastaArgs, readPidFile, stopRecorded } from "./pasta.ts";
import { slirpArgs } from "./slirp4netns.ts";
import { startTime } from "../container/proc.ts";

Deno.test("pasta: podman's defaults, no port forwarding, namespaces of PID 1", () => {
  const args = pastaArgs(42, "/c/pasta.pid", true);
  assertEquals(args.slice(0, 3), ["--config-net", "--no-map-gw", "--quiet"]);
  for (const flag of ["-t", "-u", "-T", "-U"]) {
    assertEquals(args[args.indexOf(flag) + 1], "none", flag);
  }
  assertEquals(args.slice(-6), [
    "--userns",
    "/proc/42/ns/user",
    "--netns",
    "/proc/42/ns/net",
    "--pid",
    "/c/pasta.pid",
  ]);
  assertOk(!pastaArgs(42, "/c/pasta.pid", false).includes("--userns"));
});

Deno.test("slirp4netns: configured tap0, no host loopback, exit fd on stdin", () => {
  const args = slirpArgs(42, true);
  for (const a of ["--configure", "--mtu=65520", "--disable-host-loopback", "--enable-seccomp"]) {
    assertOk(args.includes(a), a);
  }
  assertEquals(args[args.indexOf("-e") + 1], "0");
  assertEquals(args.slice(-4), [
    "--userns-path=/proc/42/ns/user",
    "--netns-type=path",
    "/proc/42/ns/net",
    "tap0",
  ]);
  assertOk(!slirpArgs(42, false).some((a) => a.startsWith("--userns-path")));
});

Deno.test("a helper is found by its variable (an absolute path) or on PATH", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tsbox-helper-test-" });
  try {
    await Deno.writeTextFile(`${dir}/slirp4netns`, "#!/bin/sh\n", { mode: 0o755 });
    await Deno.writeTextFile(`${dir}/pasta`, "not executable\n", { mode: 0o644 });
    assertEquals(findHelper("slirp4netns", "X", { PATH: `relative:${dir}` }), `${dir}/slirp4netns`);
    assertEquals(findHelper("slirp4netns", "X", { X: `${dir}/slirp4netns` }), `${dir}/slirp4netns`);
    assertEquals(findHelper("slirp4netns", "X", { X: "slirp4netns", PATH: dir }), undefined);
    assertEquals(findHelper("slirp4netns", "X", { X: "/nonexistent", PATH: dir }), undefined);
    assertOk(findHelper("pasta", "X", { PATH: dir }) !== `${dir}/pasta`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the mode shown: a bridge network first, then the helper, then the namespace", () => {
  assertEquals(
    networkModeName("private", { endpoints: [], outbound: "slirp4netns" }),
    "slirp4netns",
  );
  assertEquals(networkModeName("private", { endpoints: [] }), "private");
  assertEquals(networkModeName("none", undefined), "none");
  assertEquals(bridgeNetworkName("pasta", false), undefined);
  assertEquals(bridgeNetworkName("slirp4netns", true), undefined);
});

Deno.test("a recorded helper is signalled only when start time and command line match", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tsbox-helper-test-" });
  const mark = `${dir}/mark`;
  // A shell waiting in its builtin `read` (no child of its own) with the mark as its $0.
  const child = new Deno.Command("sh", { args: ["-c", "read x", mark], stdin: "piped" }).spawn();
  try {
    const start = startTime(child.pid)!;
    const file = `${dir}/helper.pid`;
    Deno.writeTextFileSync(file, `${child.pid} ${start + 1}\n`);
    assertEquals(readPidFile(file), { pid: child.pid, start: start + 1 });
    assertEquals(stopRecorded(file, mark), false, "another start time");
    Deno.writeTextFileSync(file, `${child.pid} ${start}\n`);
    assertEquals(stopRecorded(file, `${dir}/other`), false, "another command line");
    Deno.writeTextFileSync(file, `${child.pid}\n`);
    assertEquals(stopRecorded(file, mark), true, "its own pid file, no start time yet");
    assertEquals((await child.status).signal, "SIGKILL");
    assertEquals(readPidFile(file), undefined, "the file is gone");
  } finally {
    try {
      child.kill("SIGKILL");
    } catch { /* ended */ }
    await child.status;
    await child.stdin.close().catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
});
