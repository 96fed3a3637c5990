/**
 * The supervisor and its watcher watch each other (issue 24, root): a watcher killed on its own
 * is replaced, so a later kill of the supervisor still brings the container back; the two killed
 * together leave nothing of tsbox to act, and the container is then shown exited, truthfully,
 * until a command starts it again.
 */
import { sharedBusyboxRoot } from "./busybox_store.ts";
import { assertEquals, assertMatch, assertOk } from "./assert.ts";
import {
  alive,
  cgroupProcs,
  childrenNamed,
  cli,
  comm,
  namingId,
  rootTest,
  stat,
  until,
} from "./stay_up.ts";

rootTest("a killed watcher is replaced; a watcher and supervisor killed together", async () => {
  const root = await sharedBusyboxRoot();
  const { t, ok, inspect } = cli(root);
  const name = "t-watch-always";
  try {
    const id = (await ok([
      "run",
      "-d",
      "--name",
      name,
      "--restart",
      "always",
      "busybox",
      "sh",
      "-c",
      "echo up; exec sleep 1000",
    ])).trim();
    await until("its first line", async () => (await ok(["logs", name])).includes("up"));
    const pid = (await inspect(name)).State.Pid as number;
    const supervisor = Number(stat(pid)![1]);
    const [watcher, ...more] = childrenNamed(supervisor, "tsbox-watch");
    assertOk(watcher !== undefined && more.length === 0, `one watcher of ${supervisor}`);

    // The watcher alone: the supervisor starts another; the container never stops.
    Deno.kill(watcher, "SIGKILL");
    await until("a new watcher", () => {
      const now = childrenNamed(supervisor, "tsbox-watch");
      return now.length === 1 && now[0] !== watcher;
    });
    assertOk(alive(pid) && alive(supervisor), "the container and its supervisor run on");
    // The new watcher does the first one's job.
    Deno.kill(supervisor, "SIGKILL");
    await until(
      "the container to run again",
      () => cgroupProcs(id).some((p) => p !== pid && comm(p) === "sleep"),
      10_000,
    );
    const back = await inspect(name);
    assertEquals([back.State.Running, back.RestartCount], [true, 1]);

    // Both at once: nothing is left to bring it back. PID 1 dies with its supervisor, and the
    // first command to look shows the container exited.
    const pid2 = back.State.Pid as number;
    const supervisor2 = Number(stat(pid2)![1]);
    await until("the new supervisor's watcher", () => {
      return childrenNamed(supervisor2, "tsbox-watch").length === 1;
    });
    const pair = [...childrenNamed(supervisor2, "tsbox-watch"), supervisor2];
    for (const p of pair) Deno.kill(p, "SIGKILL");
    await until("PID 1 to die with its supervisor", () => !alive(pid2));
    // No process of the container's, and none that could start it (a supervisor or watcher
    // names its id on its command line), is left.
    await until("nothing of the pair to be left", () => namingId(id).length === 0);
    assertEquals(cgroupProcs(id), []);
    const ps = await ok(["ps", "-a", "--format", "{{.Names}} {{.Status}}"]);
    assertMatch(ps, new RegExp(`^${name} Exited \\(137\\) `, "m"));
    const down = await inspect(name);
    assertEquals([down.State.Running, down.State.ExitCode, down.RestartCount], [false, 137, 1]);

    // A start brings it back, watched again.
    await ok(["start", name]);
    const again = await inspect(name);
    assertEquals(again.State.Running, true);
    assertEquals(childrenNamed(Number(stat(again.State.Pid)![1]), "tsbox-watch").length, 1);
  } finally {
    await t(["rm", "-f", name]);
  }
});

rootTest("the policy that counts is the one recorded when the supervisor dies", async () => {
  const root = await sharedBusyboxRoot();
  const { t, ok, inspect } = cli(root);
  const names = ["t-watch-upd-always", "t-watch-upd-no"];
  try {
    const ids: string[] = [];
    for (const [name, policy] of [[names[0], "no"], [names[1], "always"]]) {
      ids.push(
        (await ok(["run", "-d", "--name", name, "--restart", policy, "busybox", "sleep", "1000"]))
          .trim(),
      );
    }
    const pids: number[] = [];
    const supervisors: number[] = [];
    for (const name of names) {
      const pid = (await inspect(name)).State.Pid as number;
      pids.push(pid);
      supervisors.push(Number(stat(pid)![1]));
    }
    const watchers = (i: number) => childrenNamed(supervisors[i], "tsbox-watch").length;
    assertEquals([watchers(0), watchers(1)], [0, 1], "a watcher while there is a policy");
    await ok(["update", "--restart", "always", names[0]]);
    await ok(["update", "--restart", "no", names[1]]);
    // The supervisor of the first one sees its new policy and starts a watcher.
    await until(`a watcher of ${names[0]}`, () => watchers(0) === 1);
    for (const supervisor of supervisors) Deno.kill(supervisor, "SIGKILL");
    // Made `always` by update: back with no command typed.
    await until(
      `${names[0]} to run again`,
      () => cgroupProcs(ids[0]).some((p) => p !== pids[0] && comm(p) === "sleep"),
      10_000,
    );
    // Made `no` by update: its watcher's supervisor finds nothing to do and ends; it stays down.
    await until(`${names[1]}'s PID 1 to die`, () => !alive(pids[1]));
    await until(`nothing of ${names[1]} to be left`, () => namingId(ids[1]).length === 0);
    assertEquals(cgroupProcs(ids[1]), []);
    const ps = await ok(["ps", "-a", "--format", "{{.Names}} {{.Status}}"]);
    assertMatch(ps, new RegExp(`^${names[0]} Up `, "m"));
    assertMatch(ps, new RegExp(`^${names[1]} Exited \\(137\\) `, "m"));
    assertEquals((await inspect(names[0])).RestartCount, 1);
    assertEquals((await inspect(names[1])).RestartCount, 0);
  } finally {
    await t(["rm", "-f", ...names]);
  }
});
